/**
 * A real full disk: small tmpfs mounts under the agent's store and under the file handler's
 * output, filled while packets stream (leaving one page free, so a group commit straddles the
 * limit and its write comes back short), then freed. Afterwards every packet the agent accepted
 * is in the output exactly once, in seq order per target, nothing it refused is there, and the
 * store takes appends again. Needs root (mount). SEED= replays the producer's choices.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { drainAndStopAgent, makeRig, sleep } from '../helpers/ferry.js';
import { prng, testSeed } from '../helpers/seed.js';

const pageBytes = 4096;

async function mountTmpfs(dir: string, bytes: number): Promise<() => void> {
  await mkdir(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  return () => execFileSync('umount', ['-l', dir]);
}

/** Fills the file system under `dir` with one file, then frees one page of it; returns how to free it all. */
async function fillLeavingOnePage(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'filler');
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(pageBytes, 0x55);
  let size = 0;
  try {
    for (;;) {
      const { bytesWritten } = await fh.write(chunk, 0, chunk.length, size);
      size += bytesWritten;
      if (bytesWritten < chunk.length) break;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  await fh.truncate(Math.max(0, size - pageBytes));
  await fh.close();
  return () => rm(path, { force: true });
}

t.test('disk full - a tmpfs under the store and under the file handler fills and frees while packets stream: every accepted packet once, in order', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const rig = await makeRig({
    agentId: 'disk', serial: false,
    routes: '  - match: "#"\n    handler: file\n    path: {out}/received.jsonl\n',
    agentYaml: 'store: { bytesMax: 196608, segmentBytes: 16384, fullPolicy: reject }',
    agentLink: { reconnectDelayMsMin: 20, reconnectDelayMsMax: 200 },
  });
  const storeMount = join(rig.dir, 'agent');
  const outMount = join(rig.dir, 'out');
  // makeRig wrote {out} literally into the gateway config: point it at the output mount.
  const gwConfig = join(rig.dir, 'gateway.yaml');
  await writeFile(gwConfig, (await readFile(gwConfig, 'utf8')).replaceAll('{out}', outMount));
  const unmounts = [await mountTmpfs(storeMount, 512 * 1024), await mountTmpfs(outMount, 32 * 1024 * 1024)];
  t.teardown(async () => {
    if (process.env.KEEP_LOGS) {
      const { readFile: rf } = await import('node:fs/promises');
      for (const n of ['agent', 'gateway']) console.error(`--- ${n}.log (tail)\n${(await rf(join(rig.dir, `${n}.log`), 'utf8').catch(() => '')).split('\n').filter((l) => !l.includes('agent retries later')).slice(0, 40).join('\n')}`);
    }
    await rig.cleanup().catch(() => undefined);
    for (const u of unmounts) u();
  });
  await rig.start('gateway');
  const agent = await rig.start('agent');

  const targets = ['a', 'b/c', 'd'];
  const accepted = new Map<number, string>();
  const refused = new Map<string, number>();
  /** sends whose answer never came (the client gave up): stored or not, nobody knows */
  let unknown = 0;
  let n = 0;
  const produceFor = async (ms: number): Promise<number> => {
    const until = Date.now() + ms;
    let ok = 0;
    while (Date.now() < until) {
      // 8 sends at once share a group commit: about 8 KiB, more than the page left free.
      const batch = await Promise.all(Array.from({ length: 8 }, () => {
        const target = targets[Math.floor(rng() * targets.length)]!;
        return localRequest(rig.socket, { op: 'send', target, data: { n: n++, pad: 'x'.repeat(1000) } }, 5000).then((r) => ({ r, target }), () => null);
      }));
      for (const x of batch) {
        if (x?.r.ok) {
          accepted.set(x.r.seq as number, x.target);
          ok++;
        } else if (x && !x.r.ok) refused.set(x.r.code as string, (refused.get(x.r.code as string) ?? 0) + 1);
        else unknown++;
      }
      await sleep(2);
    }
    return ok;
  };

  await produceFor(1000);
  let free = await fillLeavingOnePage(storeMount);
  await produceFor(1500);
  await free();
  t.ok(await produceFor(1000) > 0, 'the store takes appends again once the disk has room');
  free = await fillLeavingOnePage(outMount);
  await produceFor(1500);
  await free();
  await produceFor(1000);
  t.comment(`accepted ${accepted.size}, unanswered ${unknown}, refused ${JSON.stringify(Object.fromEntries(refused))}`);
  t.ok((refused.get('STORE_IO') ?? 0) + (refused.get('STORE_FULL') ?? 0) > 0, 'the full store refused some appends');

  await drainAndStopAgent(rig, agent);
  const text = await readFile(join(outMount, 'received.jsonl'), 'utf8');
  const lines = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { seq: number; target: string });
  const seqs = lines.map((l) => l.seq);
  t.equal(new Set(seqs).size, seqs.length, 'no packet was written twice');
  t.same([...accepted.keys()].filter((s) => !seqs.includes(s)), [], 'every accepted packet is in the output');
  const notAccepted = seqs.filter((s) => !accepted.has(s));
  t.ok(notAccepted.length <= unknown, `nothing the agent refused is in the output (${notAccepted.length} packets not known accepted, ${unknown} sends unanswered: ${notAccepted.slice(0, 20).join(',')})`);
  for (const target of targets) {
    const mine = lines.filter((l) => l.target === target).map((l) => l.seq);
    t.ok(mine.every((s, i) => i === 0 || s > mine[i - 1]!), `${target}: ${mine.length} packets in seq order`);
  }
});
