/**
 * Issue 10: random targets and agent IDs (unicode edge cases, dots, slashes, `+#`, long ones,
 * noncharacters, surrogates, control characters, percent signs, CRLF) through every handler to
 * its real backend: mosquitto, an HTTP server, the file system. Each ID is either refused by the
 * one check (protocol/ids.ts: TARGET_INVALID at checkPacket, the agent ID rule at HELLO) or
 * arrives intact: topic and user properties, URL path segment and headers, JSON line all decode
 * back to it. Refused IDs are also handed to the handlers directly (as if the check were
 * bypassed): each then either delivers intact or refuses for good, never retryably, and never
 * costs the backend connection: a normal packet after every case is delivered, and the mqtt
 * handler connects once. Seeded: prints its seed, replays with SEED=; CASES= sets the count.
 */
import t from 'tap';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { FileHandler } from '../../gateway/handlers/file.js';
import type { DispatchPacket, Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import { createMqttHandler } from '../../gateway/handlers/mqtt.js';
import { createWebhookHandler } from '../../gateway/handlers/webhook.js';
import { isFerryError, ErrorCode } from '../../protocol/errors.js';
import { agentIdProblem } from '../../protocol/ids.js';
import { checkPacket, packetLimitsDefault } from '../../protocol/limits.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { prng, testSeed } from '../helpers/seed.js';
import { pollUntil } from '../helpers/wait.js';

const show = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…(${s.length})` : s).replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);

/** Pieces IDs are built from: the edges of every rule in protocol/ids.ts and of what the handlers encode. */
function pieces(rnd: () => number): (() => string)[] {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const cp = (lo: number, hi: number): string => String.fromCodePoint(lo + Math.floor(rnd() * (hi - lo + 1)));
  return [
    () => pick(['a', 'b', 'Z', '0', '9', '-', '_', ':', 'sensor', 'temp']),
    () => pick(['.', '..', '...', '/', '//', '/..', '../', '%', '%2e', '%2E', '%2F', '%00', '?', '&', '=', ';', "'", '*', '(', '!', '~', '$', '$SYS/']),
    () => pick(['+', '#', '/+/', '/#']),
    () => pick([' ', '  ', '\u00a0', '\u3000', '\u2028', '\ufeff', '\u200b']),
    () => pick(['\r\n', '\n', '\r', '\t', '\u0000', '\u001b', '\u007f']) ,
    () => cp(0x80, 0x9f), // C1 controls
    () => cp(0xfdd0, 0xfdef), // noncharacters
    () => String.fromCodePoint(Math.floor(rnd() * 17) * 0x10000 + 0xfffe + Math.floor(rnd() * 2)), // U+xFFFE/U+xFFFF
    () => pick(['\ufffd', '\ufdcf', '\ufdf0', '\ue000', '\u{10fffd}', '\u{1fffd}']), // their valid neighbours
    () => cp(0xd800, 0xdfff), // a lone surrogate
    () => pick(['é', 'ü', '北京', '🌡️', '👩‍👩‍👧', 'Ω', 'ß']),
    () => 'x'.repeat(50 + Math.floor(rnd() * 220)), // long: some over 255 bytes with the rest
    () => pick(['€', '北']).repeat(20 + Math.floor(rnd() * 70)),
  ];
}

function randomId(rnd: () => number, ps: (() => string)[], agentLike: boolean): string {
  if (rnd() < 0.05) return ['.', '..', '', ' '][Math.floor(rnd() * 4)]!;
  // Mostly plausible IDs (agent: its alphabet; target: text, dots, spaces, unicode), some from every piece.
  const plausible = rnd() < (agentLike ? 0.8 : 0.4);
  const from = plausible ? (agentLike ? [ps[0]!] : [ps[0]!, ps[1]!, ps[3]!, ps[8]!, ps[10]!]) : ps;
  const n = 1 + Math.floor(rnd() * 4);
  let s = '';
  for (let i = 0; i < n; i++) s += from[Math.floor(rnd() * from.length)]!();
  return s;
}

/** The one check, as the gateway applies it: TARGET_INVALID for the target; the agent ID rule at HELLO. */
function theCheck(agent: string, target: string): string | undefined {
  try {
    checkPacket({ target, data: 1 }, packetLimitsDefault);
  } catch (err) {
    if (!isFerryError(err, ErrorCode.TARGET_INVALID)) throw err;
    return ErrorCode.TARGET_INVALID;
  }
  return agentIdProblem(agent) === undefined ? undefined : 'AGENT_ID';
}

interface Backends {
  mqtt: Map<string, { topic: string; agent: string; target: string }>;
  http: Map<string, { path: string; agent: string; target: string }>;
}

/** Seeds that once failed, run every time: 991851720 gave target `$&\u2028`, which the mqtt topic template read as a replacement pattern. */
const regressionSeeds = [991851720];

t.test('id fuzz - random targets and agent IDs are refused by the one check or arrive intact at mosquitto, HTTP and a file; backends stay connected', (t) => fuzz(t, testSeed((m) => t.comment(m))));

for (const seed of regressionSeeds) {
  t.test(`id fuzz - regression seed ${seed}`, (t) => fuzz(t, seed));
}

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function fuzz(t: Test, seed: number): Promise<void> {
  const cases = Number(process.env.CASES ?? 600);
  const rnd = prng(seed);
  const ps = pieces(rnd);

  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const got: Backends = { mqtt: new Map(), http: new Map() };
  const sub = await connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => sub.endAsync(true));
  sub.on('message', (topic, _p, packet) => {
    const u = packet.properties?.userProperties ?? {};
    got.mqtt.set(String(u['ferry-seq']), { topic, agent: String(u['ferry-agent']), target: String(u['ferry-target']) });
  });
  await sub.subscribeAsync('ferry/#', { qos: 1 });

  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      got.http.set(String(req.headers['ferry-seq']), { path: req.url ?? '', agent: String(req.headers['ferry-agent']), target: String(req.headers['ferry-target']) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const dir = await mkdtemp(join(tmpdir(), 'ferry-id-fuzz-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'out.jsonl');

  let mqttConnects = 0;
  const connect = (url: string, opts: IClientOptions): MqttClient => {
    const c = mqttConnect(url, opts);
    c.on('connect', () => mqttConnects++);
    return c;
  };
  const handlers: Record<'mqtt' | 'webhook' | 'file', Handler> = {
    mqtt: createMqttHandler({ url: broker.url, topic: 'ferry/{agent}/{target}', publishTimeoutMs: 3000, reconnectPeriodMs: 100 }, { connect }),
    webhook: createWebhookHandler({ url: `${base}/in/{agent}/{target}` }),
    file: await FileHandler.open({ path: file, sync: 'none' }),
  };
  t.teardown(() => Promise.all(Object.values(handlers).map((h) => h.close())));

  let seq = 0;
  /** seq → the IDs a handler said it delivered, to check at each backend */
  const delivered: Record<keyof typeof handlers, Map<string, { agent: string; target: string }>> = { mqtt: new Map(), webhook: new Map(), file: new Map() };
  const failures: string[] = [];
  const fail = (msg: string): void => {
    if (failures.length < 10) failures.push(msg);
  };
  const counts = { accepted: 0, refused: 0, refusedButCarried: 0, refusedByHandler: 0 };

  async function through(name: keyof typeof handlers, agent: string, target: string, mustDeliver: boolean): Promise<void> {
    const p: DispatchPacket = { agent, seq: ++seq, target, ts: 1_700_000_000_000 + seq, data: { seq } };
    let r: HandlerResult;
    try {
      r = await handlers[name].handle(p);
    } catch (err) {
      return fail(`${name}: handle threw for agent ${show(agent)} target ${show(target)}: ${(err as Error).message}`);
    }
    if (r.ok) {
      delivered[name].set(String(p.seq), { agent, target });
      return;
    }
    if (mustDeliver) return fail(`${name}: refused agent ${show(agent)} target ${show(target)}, which the check accepts: ${r.code} ${r.message}`);
    if (r.retryable) return fail(`${name}: a retryable failure for agent ${show(agent)} target ${show(target)} (it would come back forever): ${r.code} ${r.message}`);
    counts.refusedByHandler++;
  }

  for (let i = 0; i < cases; i++) {
    const agent = randomId(rnd, ps, true);
    const target = randomId(rnd, ps, false);
    const refusedBy = theCheck(agent, target);
    if (refusedBy === undefined) counts.accepted++;
    else counts.refused++;
    for (const name of ['mqtt', 'webhook', 'file'] as const) {
      await through(name, agent, target, refusedBy === undefined);
      await through(name, 'normal', 'after/each', true); // the backend connection survived
    }
  }

  // What each backend holds must decode back to exactly what the handler said it delivered.
  await pollUntil(() => got.mqtt.size >= delivered.mqtt.size, 10_000, 'every delivered publish at the subscriber');
  for (const [s, want] of delivered.mqtt) {
    const m = got.mqtt.get(s);
    if (!m || m.topic !== `ferry/${want.agent}/${want.target}` || m.agent !== want.agent || m.target !== want.target) fail(`mqtt seq ${s}: sent ${show(want.agent)} ${show(want.target)}, got ${m ? `${show(m.topic)} ${show(m.agent)} ${show(m.target)}` : 'nothing'}`);
  }
  for (const [s, want] of delivered.webhook) {
    const h = got.http.get(s);
    const segs = h?.path.split('/') ?? [];
    const intact = h !== undefined && segs.length === 4 && segs[1] === 'in' && decodeURIComponent(segs[2]!) === want.agent && decodeURIComponent(segs[3]!) === want.target && decodeURIComponent(h.agent) === want.agent && decodeURIComponent(h.target) === want.target;
    if (!intact) fail(`webhook seq ${s}: sent ${show(want.agent)} ${show(want.target)}, got ${h ? `${show(h.path)} ${show(h.agent)} ${show(h.target)}` : 'nothing'}`);
  }
  const lines = new Map((await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { seq: number; agent: string; target: string }).map((l) => [String(l.seq), l]));
  for (const [s, want] of delivered.file) {
    const l = lines.get(s);
    if (!l || l.agent !== want.agent || l.target !== want.target) fail(`file seq ${s}: sent ${show(want.agent)} ${show(want.target)}, got ${l ? `${show(l.agent)} ${show(l.target)}` : 'nothing'}`);
  }
  for (const name of ['mqtt', 'webhook', 'file'] as const) {
    const extra = [...delivered[name].values()].filter((d) => d.agent !== 'normal' && theCheck(d.agent, d.target) !== undefined).length;
    counts.refusedButCarried += extra;
  }

  t.comment(`cases ${cases}: ${counts.accepted} accepted by the check, ${counts.refused} refused; of the refused ones handed over anyway, ${counts.refusedButCarried} carried intact, ${counts.refusedByHandler} refused for good by a handler`);
  t.same(failures, [], 'every ID was refused by the check or arrived intact; no handler threw or failed retryably');
  t.ok(counts.accepted >= cases / 10 && counts.refused >= cases / 10, 'the generator produced both kinds');
  t.equal(mqttConnects, 1, 'the mqtt handler never lost its connection');
  const log = await readFile(join(broker.dir, 'mosquitto.log'), 'utf8');
  t.notMatch(log, /malformed|disconnected due to/i, 'mosquitto saw no malformed packet');
}
