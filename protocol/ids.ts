/**
 * What a target and an agent ID may be: one definition, checked by the agent (local API, `ferry
 * send`, rule targets in its config) and again by the gateway (each packet, HELLO's agent ID,
 * the agent registry). Both end up in every handler's protocol, so the rule is what all of them
 * accept and carry back unchanged:
 * - MQTT (topic levels and user properties): well-formed UTF-8, so no lone surrogates in the JS
 *   string (they would be sent as U+FFFD); no U+0000, no control characters U+0001–U+001F and
 *   U+007F–U+009F, no noncharacters (U+FDD0–U+FDEF, U+xFFFE and U+xFFFF on every plane): mosquitto
 *   treats any of these as a malformed packet and drops the connection every agent shares. No `+`
 *   or `#`: a topic holding a wildcard cannot be published to (the same malformed packet).
 * - HTTP: the webhook handler puts IDs into a URL path segment (percent-encoded) and into headers
 *   (percent-encoded outside printable ASCII). A segment of only `.` or `..` is removed or climbs a
 *   level when the URL is resolved, also when written `%2e`, so such an ID is refused.
 * - Files: the file handler writes IDs inside a JSON line only; no ID becomes a path.
 * docs/protocol.md ("Targets and agent IDs") says the same for users.
 */
import { ErrorCode, FerryError } from './errors.js';

export const targetBytesMax = 255;

/**
 * An agent ID: 1–255 of ASCII letters, digits and `. _ : -`, and not `.` or `..`. Narrower than a
 * target on purpose: it names a device in logs, tokens, certificates and file names of operators.
 */
export const agentIdPattern = /^(?!\.\.?$)[A-Za-z0-9._:-]{1,255}$/;
export const agentIdRule = '1-255 of letters, digits and . _ : - (not "." or "..")';

const utf8 = new TextEncoder();

function hex(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Why `s` holds a code point no MQTT string may carry (mosquitto's own UTF-8 check), or undefined:
 * a lone surrogate, a control character (C0, DEL, C1) or a noncharacter. Names the first one found.
 */
export function charProblem(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i)!;
    if (cp > 0xffff) i++; // the low half of a pair
    else if (cp >= 0xd800 && cp <= 0xdfff) return `a lone surrogate (${hex(cp)}), which is not UTF-8`;
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f)) return `a control character (${hex(cp)})`;
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return `a Unicode noncharacter (${hex(cp)})`;
  }
  return undefined;
}

/** True for `.` and `..`: a URL path segment that resolution removes or climbs out of. */
export function isDotSegment(s: string): boolean {
  return s === '.' || s === '..';
}

/** Why `target` is not a valid target, or undefined. */
export function targetProblem(target: unknown): string | undefined {
  if (typeof target !== 'string' || target.length === 0) return 'target must be a non-empty string';
  const bytes = utf8.encode(target).length;
  if (bytes > targetBytesMax) return `target is ${bytes} bytes; the maximum is ${targetBytesMax}`;
  const chars = charProblem(target);
  if (chars !== undefined) return `target must not contain ${chars}`;
  if (target.includes('+') || target.includes('#')) return 'target must not contain + or # (MQTT wildcards, which a topic to publish to may not hold)';
  if (isDotSegment(target)) return `target must not be "${target}" (a URL path segment of only dots escapes its place)`;
  return undefined;
}

/** Throws TARGET_INVALID unless `target` is valid (targetProblem); returns it unchanged. */
export function checkTarget(target: unknown): string {
  const problem = targetProblem(target);
  if (problem !== undefined) throw new FerryError(ErrorCode.TARGET_INVALID, problem);
  return target as string;
}

/** Why `id` is not a valid agent ID, or undefined. */
export function agentIdProblem(id: unknown): string | undefined {
  if (typeof id === 'string' && agentIdPattern.test(id)) return undefined;
  return `agent ID must be ${agentIdRule}`;
}
