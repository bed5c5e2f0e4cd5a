import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileHandler, type FileHandlerOptions } from '../../gateway/handlers/file.js';
import { seqsPath } from '../../gateway/handlers/file-rotation.js';
import type { DispatchPacket } from '../../gateway/handlers/handler.js';
import { prng, testSeed } from '../helpers/seed.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function pkt(agent: string, seq: number, pad = 0): DispatchPacket {
  // Padded so that every line of a seq below 10^8 has the same length: sizes are easy to predict.
  return { agent, seq, target: 't', ts: 1_700_000_000_000, data: 'x'.repeat(8 - String(seq).length + pad) };
}

/** The length of every line `pkt` makes (without padding). */
const lineBytes = Buffer.byteLength(`${JSON.stringify({ agent: 'a', seq: 1, target: 't', ts: 1_700_000_000_000, data: 'x'.repeat(7) })}\n`);

async function open(t: Test, opts: FileHandlerOptions): Promise<FileHandler> {
  const h = await FileHandler.open(opts);
  t.teardown(() => h.close());
  return h;
}

/** The packet files in order of age, oldest first: PATH.N … PATH.1, PATH. */
async function files(path: string): Promise<string[]> {
  const names = await readdir(dirname(path));
  const rotated = names.map((n) => n.slice(basename(path).length + 1)).filter((s, i) => names[i]!.startsWith(`${basename(path)}.`) && /^\d+$/.test(s)).map(Number);
  return [...rotated.sort((a, b) => b - a).map((n) => `${path}.${n}`), ...(names.includes(basename(path)) ? [path] : [])];
}

async function seqsIn(file: string): Promise<number[]> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { seq: number }).seq);
}

async function allSeqs(path: string): Promise<number[]> {
  const out: number[] = [];
  for (const f of await files(path)) out.push(...(await seqsIn(f)));
  return out;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('file-handler rotation - files stay within rotateBytes, older ones shift up and the oldest beyond keep are deleted', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const rotateBytes = 3 * lineBytes + Math.floor(lineBytes / 2); // three lines fit, a fourth does not
  const h = await open(t, { path, sync: 'always', rotateBytes, keep: 5 });
  for (let seq = 1; seq <= 20; seq++) t.same(await h.handle(pkt('a', seq)), { ok: true }, `seq ${seq}`);
  t.same(await files(path), [`${path}.5`, `${path}.4`, `${path}.3`, `${path}.2`, `${path}.1`, path], 'the current file and 5 rotated ones');
  const perFile = await Promise.all((await files(path)).map(seqsIn));
  t.same(perFile, [range(4, 6), range(7, 9), range(10, 12), range(13, 15), range(16, 18), [19, 20]], 'PATH.1 is the newest; seqs 1-3 were in the file deleted');
  for (const f of await files(path)) t.ok((await stat(f)).size <= rotateBytes, `${basename(f)} is within rotateBytes`);
});

t.test('file-handler rotation - packets handed over together are split across files, none lost or doubled', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const rotateBytes = 7 * lineBytes;
  const h = await open(t, { path, sync: 'always', rotateBytes, keep: 100 });
  const results = await Promise.all(range(1, 100).map((seq) => h.handle(pkt('a', seq))));
  t.ok(results.every((r) => r.ok), 'all 100 succeeded');
  t.same(await allSeqs(path), range(1, 100), 'every seq once, in order, across the files');
  const sizes = await Promise.all((await files(path)).map(async (f) => (await stat(f)).size));
  t.ok(sizes.every((s) => s <= rotateBytes), 'no file is past rotateBytes');
  t.equal(sizes.length, Math.ceil(100 / 7), 'each file but the last is full');
});

t.test('file-handler rotation - a line longer than rotateBytes gets a file of its own', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const h = await open(t, { path, sync: 'none', rotateBytes: 200 });
  await h.handle(pkt('a', 1));
  await h.handle(pkt('a', 2, 500));
  await h.handle(pkt('a', 3));
  t.same(await Promise.all((await files(path)).map(seqsIn)), [[1], [2], [3]]);
});

t.test('file-handler rotation - after reopening, packets in the current, rotated or deleted files are not written again', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const opts = { path, sync: 'always' as const, rotateBytes: 2 * lineBytes, keep: 2 };
  const h = await open(t, opts);
  await h.handle(pkt('b', 4)); // b's only line: it goes with the first deleted file
  for (let seq = 1; seq <= 10; seq++) await h.handle(pkt('a', seq));
  await h.close();
  const before = await allSeqs(path);
  t.same(before, [6, 7, 8, 9, 10], 'b:4 and seqs 1-5 of a went with the deleted files');

  const g = await open(t, opts);
  for (let seq = 1; seq <= 10; seq++) t.same(await g.handle(pkt('a', seq)), { ok: true }, `a:${seq} again is acknowledged`);
  t.same(await g.handle(pkt('b', 4)), { ok: true });
  t.same(await allSeqs(path), before, 'nothing was written again, also for seqs whose file was deleted');
  await g.handle(pkt('a', 11));
  await g.handle(pkt('c', 1));
  t.same((await allSeqs(path)).slice(-2), [11, 1], 'newer packets are written');
});

t.test('file-handler rotation - without its marks file, de-duplication falls back to scanning the rotated files', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const opts = { path, sync: 'none' as const, rotateBytes: 2 * lineBytes, keep: 10 };
  const h = await open(t, opts);
  for (let seq = 1; seq <= 9; seq++) await h.handle(pkt('a', seq));
  await h.handle(pkt('b', 3));
  await h.close();
  await unlink(seqsPath(path));
  const before = await allSeqs(path);
  const g = await open(t, opts);
  for (let seq = 1; seq <= 9; seq++) await g.handle(pkt('a', seq));
  await g.handle(pkt('b', 3));
  t.same(await allSeqs(path), before, 'nothing was written again');
});

t.test('file-handler rotation - a crash between the steps of a rotation loses and doubles nothing', async (t) => {
  // The states a crash can leave: marks saved but nothing renamed; a gap in the numbers; NAME renamed and no new NAME.
  const states: [string, (path: string) => Promise<void>][] = [
    ['gap in the numbering', async (path) => rename(`${path}.2`, `${path}.3`)],
    ['current file renamed, no new one', async (path) => {
      for (const n of [2, 1]) await rename(`${path}.${n}`, `${path}.${n + 1}`);
      await rename(path, `${path}.1`);
    }],
  ];
  for (const [what, crash] of states) {
    const path = join(t.testdir(), what.replaceAll(' ', '-'), 'out.jsonl');
    const opts = { path, sync: 'always' as const, rotateBytes: 3 * lineBytes, keep: 10 };
    const h = await FileHandler.open(opts);
    for (let seq = 1; seq <= 7; seq++) await h.handle(pkt('a', seq));
    await h.close();
    await crash(path);
    const g = await FileHandler.open(opts);
    // The gateway re-dispatches what it had not recorded; the handler may see all of it again.
    for (let seq = 1; seq <= 20; seq++) t.same(await g.handle(pkt('a', seq)), { ok: true }, `${what}: seq ${seq}`);
    await g.close();
    t.same([...(await allSeqs(path))].sort((a, b) => a - b), range(1, 20), `${what}: every seq once`);
  }
});

t.test('file-handler rotation - a writer killed at random moments loses and doubles no acknowledged line', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const random = prng(seed);
  const path = join(t.testdir(), 'out.jsonl');
  const cfg = { path, rotateBytes: 4 * lineBytes, keep: 1000 };
  const tsImport = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  // The writer: a bare node (tap's TypeScript loader only) appending seqs FROM..TO, printing each one acknowledged.
  const writer = `
    const { FileHandler } = await import(${JSON.stringify(new URL('../../gateway/handlers/file.ts', import.meta.url).href)});
    const { path, from, to, rotateBytes, keep } = JSON.parse(process.env.FERRY_ROTATION_WRITER);
    const h = await FileHandler.open({ path, sync: 'always', rotateBytes, keep });
    for (let seq = from; seq <= to; seq++) {
      const r = await h.handle({ agent: 'a', seq, target: 't', ts: 1_700_000_000_000, data: 'x'.repeat(8 - String(seq).length) });
      if (!r.ok) throw new Error(r.message);
      process.stdout.write(seq + '\\n');
    }
    await h.close();`;
  let acked = 0;
  for (let round = 0; round < 5; round++) {
    // Re-dispatch from a little before what was acknowledged, as after a crash before the dispatch record.
    const from = Math.max(1, acked - Math.floor(random() * 5));
    const child = spawn(process.execPath, [...tsImport, '--input-type=module', '-e', writer], {
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', FERRY_ROTATION_WRITER: JSON.stringify({ ...cfg, from, to: from + 500 }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const killAfter = 5 + Math.floor(random() * 60);
    let seen = 0;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter((l) => l !== '')) {
        acked = Math.max(acked, Number(line));
        if (++seen === killAfter) child.kill('SIGKILL');
      }
    });
    await new Promise((r) => child.once('exit', r));
    t.ok(seen >= killAfter || acked >= from + 500, `round ${round}: killed after ${seen} acks (up to seq ${acked})`);
  }
  const seqs = await allSeqs(path);
  const max = Math.max(...seqs);
  t.ok(max >= acked, `every acknowledged seq is in the files (up to ${acked}, found up to ${max})`);
  t.same(seqs, range(1, max), 'each seq exactly once, in order, no gap');
  t.ok((await files(path)).length > 10, 'the writer rotated many times');
});
