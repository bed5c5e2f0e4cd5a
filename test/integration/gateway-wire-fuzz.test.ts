/**
 * The frame fuzzer, aimed at a real gateway process in its default configuration (authentication on), as a stranger with no
 * token would: each connection sends a seeded script of frames (HELLOs for the registered agent
 * with wrong or missing tokens and absurd resume points, HELLOs for other IDs, every other frame
 * type, raw garbage and truncated frames). Whatever comes, the gateway must stay up, answer only
 * with a BYE carrying a documented code (never WELCOME, ACK or NACK), dispatch nothing, and
 * record nothing for the agent: afterwards the real agent's WELCOME still starts from 0 and its
 * packet is the only line the handler wrote. SEED= replays; CONNS= scales (default 400).
 */
import t from 'tap';
import fc from 'fast-check';
import { connect, type Socket } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import { startFerry, stopProcess } from '../../cli/proc.js';
import { runFerry } from '../helpers/cli-run.js';
import { freePort } from '../helpers/free-port.js';
import { sayHello } from '../helpers/hello.js';
import { testSeed } from '../helpers/seed.js';
import { frameArb, uintArb } from '../protocol/fuzz-arbitraries.js';

const codes = new Set<string>(Object.values(ErrorCode));
const agent = 'fuzz-victim';

/** What one hostile connection sends, in order: whole frames or raw bytes. */
type Step = { frame: Frame } | { raw: Uint8Array };

const hostileHelloArb: fc.Arbitrary<Step> = fc.record({
  agent: fc.oneof(fc.constant(agent), fc.constantFrom('other', '', '.', '..', 'x\uffff', 'a/b', '#'), fc.string({ maxLength: 40 })),
  token: fc.option(fc.oneof(fc.constant(''), fc.string({ maxLength: 60 }), fc.base64String({ minLength: 44, maxLength: 44 })), { nil: undefined }),
  ackedSeq: fc.oneof(fc.constantFrom(2 ** 53 - 1, 2 ** 32), uintArb),
  version: fc.oneof(fc.constant(protocolVersion), uintArb),
}).map(({ agent: a, token, ackedSeq, version }) => ({ frame: { t: FrameType.HELLO, version, agent: a, ackedSeq, ...(token === undefined ? {} : { token }) } as Frame }));

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: hostileHelloArb, weight: 4 },
  { arbitrary: frameArb.map((frame) => ({ frame })), weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((raw) => ({ raw })), weight: 1 },
  { arbitrary: frameArb.chain((f) => { const b = encodeFrame(f); return fc.nat(b.length).map((n) => ({ raw: b.subarray(0, n) })); }), weight: 1 },
);

const scriptArb = fc.array(stepArb, { minLength: 1, maxLength: 6 });

/** Sends a script on a fresh connection; resolves with every frame the gateway sent before closing (or 1 s of silence). */
function play(port: number, script: Step[]): Promise<{ frames: Frame[]; undecodable: boolean }> {
  return new Promise((resolve) => {
    const frames: Frame[] = [];
    let undecodable = false;
    const decoder = new FrameDecoder();
    const sock: Socket = connect({ host: '127.0.0.1', port });
    let timer = setTimeout(() => sock.destroy(), 1000);
    sock.on('connect', () => {
      for (const s of script) sock.write('frame' in s ? encodeFrame(s.frame) : s.raw);
    });
    sock.on('data', (chunk: Buffer) => {
      clearTimeout(timer);
      timer = setTimeout(() => sock.destroy(), 1000);
      try {
        for (const f of decoder.push(chunk)) frames.push(f);
      } catch {
        undecodable = true;
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ frames, undecodable });
    });
  });
}

t.test('gateway (default config: auth on) - fuzzed strangers get only coded BYEs, and change nothing for the real agent', async (t) => {
  const seed = testSeed((m) => t.comment(`gateway wire fuzz ${m}`));
  const conns = Number(process.env.CONNS ?? 400);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-wirefuzz-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const received = join(dir, 'received.jsonl');
  const dataDir = join(dir, 'gw');
  await writeFile(join(dir, 'gateway.yaml'), [
    `listen:\n  tcp: 127.0.0.1:${port}\n  admin: 127.0.0.1:0`, `dataDir: ${dataDir}`,
    'limits:\n  sessionsPerSecondMax: 100000\n  connectionsPerAddressMax: 1000\n  helloTimeoutMs: 500',
    `routes:\n  - match: "#"\n    handler: file\n    path: ${received}`, '',
  ].join('\n'));
  const add = await runFerry(['gateway', 'add-agent', '--data-dir', dataDir, '--agent', agent]);
  t.equal(add.code, 0, add.stderr);
  const token = add.stdout.trim();
  const gw = startFerry(['gateway', '--config', join(dir, 'gateway.yaml')], { readyPattern: /ferry gateway listening/, logFile: join(dir, 'gateway.log') });
  t.teardown(() => stopProcess(gw));
  await gw.ready;

  const scripts = fc.sample(scriptArb, { seed, numRuns: conns });
  const seen = new Map<string, number>();
  const bad: string[] = [];
  const concurrency = 16;
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < scripts.length) {
      const i = next++;
      const { frames, undecodable } = await play(port, scripts[i]!);
      if (undecodable) bad.push(`connection ${i}: the gateway sent bytes that do not decode as frames`);
      for (const f of frames) {
        if (f.t !== FrameType.BYE) bad.push(`connection ${i}: the gateway answered a stranger with frame type ${f.t}`);
        else if (!codes.has(f.code)) bad.push(`connection ${i}: BYE with undocumented code ${f.code}`);
        else seen.set(f.code, (seen.get(f.code) ?? 0) + 1);
      }
      if (frames.length > 1) bad.push(`connection ${i}: ${frames.length} frames; nothing may follow a BYE`);
    }
  }));
  t.same(bad.slice(0, 10), [], `${conns} hostile connections, seed ${seed}`);
  t.comment(`BYE codes seen: ${JSON.stringify(Object.fromEntries(seen))}`);
  t.ok((seen.get(ErrorCode.AUTH_FAILED) ?? 0) > 0, 'some HELLOs reached authentication and were refused AUTH_FAILED');
  t.equal(gw.child.exitCode, null, 'the gateway is still running');

  // The registered agent: the strangers' HELLOs (resume points up to 2^53-1) recorded nothing for it.
  const { first, tr, frames } = await sayHello(t, `tcp://127.0.0.1:${port}`, { agent, token });
  t.equal(first?.t, FrameType.WELCOME, 'the real agent is welcomed');
  if (first?.t !== FrameType.WELCOME) return;
  t.equal(first.dispatchedSeq, 0, 'its dispatch floor is untouched');
  t.same(first.ranges ?? [], [], 'no dispatched ranges were recorded for it');
  tr.send({ t: FrameType.DATA, packets: [{ seq: 1, target: 'fuzz/ok', ts: 1, data: 'hello' }] });
  for (let i = 0; i < 100 && !frames.some((f) => f.t === FrameType.ACK); i++) await new Promise((r) => setTimeout(r, 50));
  const ack = frames.find((f) => f.t === FrameType.ACK);
  t.equal(ack?.t === FrameType.ACK ? ack.seq : undefined, 1, 'its packet is acked');
  const lines = (await readFile(received, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { agent: string; seq: number });
  t.same(lines.map((l) => [l.agent, l.seq]), [[agent, 1]], 'the handler wrote only the real agent\'s packet');
});
