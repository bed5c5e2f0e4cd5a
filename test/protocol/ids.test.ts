import t from 'tap';
import { ErrorCode } from '../../protocol/errors.js';
import { agentIdPattern, agentIdProblem, charProblem, checkTarget, isDotSegment, targetProblem } from '../../protocol/ids.js';
import { checkPacket, packetLimitsDefault } from '../../protocol/limits.js';
import { checkTarget as packetCheckTarget } from '../../protocol/packet.js';
import { refuses } from '../helpers/refuses.js';

const hex = (s: string): string => [...s].map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`).join(' ');

/** Every code point MQTT (mosquitto's UTF-8 check) refuses in a topic or a user property, as a JS string. */
function mqttForbidden(): string[] {
  const out: string[] = [];
  for (let cp = 0; cp <= 0x1f; cp++) out.push(String.fromCodePoint(cp));
  for (let cp = 0x7f; cp <= 0x9f; cp++) out.push(String.fromCodePoint(cp));
  for (let cp = 0xfdd0; cp <= 0xfdef; cp++) out.push(String.fromCodePoint(cp));
  for (let plane = 0; plane <= 0x10; plane++) out.push(String.fromCodePoint(plane * 0x10000 + 0xfffe), String.fromCodePoint(plane * 0x10000 + 0xffff));
  out.push('\ud800', '\udbff', '\udc00', '\udfff', 'a\ud83c', '\udf21b'); // lone surrogates: not UTF-8
  return out;
}

t.test('ids - a target with any code point MQTT refuses is TARGET_INVALID, at the agent and at the gateway', async (t) => {
  let refused = 0;
  for (const bad of mqttForbidden()) {
    const target = `x${bad}`;
    t.not(charProblem(target), undefined, `charProblem: ${hex(bad)}`);
    const e1 = refuses(t, () => checkTarget(target), ErrorCode.TARGET_INVALID, `checkTarget ${hex(bad)}`);
    const e2 = refuses(t, () => checkPacket({ target, data: 1 }, packetLimitsDefault), ErrorCode.TARGET_INVALID, `checkPacket ${hex(bad)}`);
    if (e1 && e2) refused++;
  }
  t.equal(refused, mqttForbidden().length, 'every one refused by both');
  t.equal(packetCheckTarget, checkTarget, 'protocol/packet.ts re-exports the one definition');
  t.match(targetProblem('x\uffff'), /noncharacter \(U\+FFFF\)/, 'the message names the code point');
  t.match(targetProblem('x\ud800'), /lone surrogate/, 'a lone surrogate is named as such');
});

t.test('ids - the neighbours of the refused ranges, and other Unicode, are valid targets', async (t) => {
  const fine = [' ', '~', '\u00a0', '\u00ff', '\ufdcf', '\ufdf0', '\ufffd', '\ue000', '\u{1fffd}', '\u{10000}', '\u{10fffd}', '🌡️', 'é', '北京', '%', '%2e', '...', '.a', 'a.', '.hidden', 'a/../b', '/', '//', 'a b', ' lead', 'trail ', '$SYS', "!*'()", '?&=;'];
  for (const target of fine) {
    t.equal(targetProblem(target), undefined, `${JSON.stringify(target)} (${hex(target)})`);
    t.equal(checkTarget(target), target, 'returned unchanged');
  }
  // A surrogate pair is one code point, not two lone halves.
  t.equal(charProblem('\ud83c\udf21'), undefined, 'a pair is well-formed');
});

t.test('ids - MQTT wildcards and URL dot segments are TARGET_INVALID', async (t) => {
  for (const target of ['+', '#', 'a/+/b', 'a/#', 'x+y', 'x#y', '.', '..']) {
    refuses(t, () => checkTarget(target), ErrorCode.TARGET_INVALID, JSON.stringify(target));
  }
  t.ok(isDotSegment('.') && isDotSegment('..'), '. and .. are dot segments');
  t.notOk(isDotSegment('...') || isDotSegment('.a') || isDotSegment('%2e'), '... and .a are not; %2e is encoded to %252e on the way, so it is not either');
});

t.test('ids - an agent ID is 1-255 of letters, digits and . _ : -, and not . or ..', async (t) => {
  for (const id of ['a', 'pi-7', 'dev_3', 'site:a.b', '...', '.a', 'a.', 'x'.repeat(255), '-', '_', ':']) {
    t.equal(agentIdProblem(id), undefined, JSON.stringify(id));
    t.ok(agentIdPattern.test(id), `pattern: ${JSON.stringify(id)}`);
  }
  for (const id of ['', '.', '..', 'x'.repeat(256), 'a b', 'a/b', 'a+b', 'a#b', 'é', 'a\uffff', 'a%2e', 'a\n', 7, undefined]) {
    t.match(agentIdProblem(id), /agent ID must be/, `${JSON.stringify(id)} refused`);
  }
});
