import t from 'tap';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { ErrorCode } from '../../protocol/errors.js';
import { FileHandler } from '../../gateway/handlers/file.js';
import type { DispatchPacket } from '../../gateway/handlers/handler.js';
import type { PacketData } from '../../protocol/packet.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function open(t: Test, path: string, sync: 'none' | 'always' = 'none'): Promise<FileHandler> {
  const h = await FileHandler.open({ path, sync });
  t.teardown(() => h.close());
  return h;
}

function pkt(agent: string, seq: number, data: PacketData = { v: seq }): DispatchPacket {
  return { agent, seq, target: `t/${agent}`, ts: 1_700_000_000_000 + seq, data };
}

async function lines(path: string): Promise<unknown[]> {
  const text = await readFile(path, 'utf8');
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Error('file does not end in a newline');
  return text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as unknown);
}

for (const sync of ['none', 'always'] as const) {
  t.test(`file-handler (sync ${sync}) - writes one JSON line per packet with agent, seq, target, ts, data`, async (t) => {
    const path = join(t.testdir(), 'out', 'packets.jsonl');
    const h = await open(t, path, sync);
    t.same(await h.handle(pkt('pi-1', 1, { t: 21.5, tags: ['a'], ok: true })), { ok: true });
    t.same(await h.handle(pkt('pi-1', 2, new Uint8Array([0, 1, 2, 255]))), { ok: true });
    t.same(await h.handle(pkt('pi-2', 1, 'text')), { ok: true });
    t.same(await h.handle(pkt('pi-2', 2, null)), { ok: true });
    t.same(await lines(path), [
      { agent: 'pi-1', seq: 1, target: 't/pi-1', ts: 1_700_000_000_001, data: { t: 21.5, tags: ['a'], ok: true } },
      { agent: 'pi-1', seq: 2, target: 't/pi-1', ts: 1_700_000_000_002, data: { base64: 'AAEC/w==' } },
      { agent: 'pi-2', seq: 1, target: 't/pi-2', ts: 1_700_000_000_001, data: 'text' },
      { agent: 'pi-2', seq: 2, target: 't/pi-2', ts: 1_700_000_000_002, data: null },
    ]);
  });
}

t.test('file-handler - packets handled together are all written, in order', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const h = await open(t, path);
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => h.handle(pkt('a', i + 1))));
  t.ok(results.every((r) => r.ok), 'every packet succeeded');
  t.same((await lines(path)).map((l) => (l as { seq: number }).seq), Array.from({ length: 50 }, (_, i) => i + 1));
});

t.test('file-handler - a seq at or below what the file holds for the agent is not written again', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const h = await open(t, path);
  for (const seq of [1, 2, 3]) await h.handle(pkt('a', seq));
  await h.handle(pkt('b', 1));
  t.same(await h.handle(pkt('a', 3)), { ok: true }, 'a repeat is acknowledged');
  t.same(await h.handle(pkt('a', 2)), { ok: true }, 'an older one too');
  t.same(await h.handle(pkt('b', 2)), { ok: true });
  t.same((await lines(path)).map((l) => `${(l as DispatchPacket).agent}:${(l as DispatchPacket).seq}`), ['a:1', 'a:2', 'a:3', 'b:1', 'b:2'], 'seqs are tracked per agent');
});

t.test('file-handler - after reopening, packets already in the file are not written again', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const h = await open(t, path);
  for (const seq of [1, 2, 3]) await h.handle(pkt('a', seq));
  await h.handle(pkt('b', 7));
  await h.close();
  const before = await readFile(path, 'utf8');
  const g = await open(t, path);
  t.same(await g.handle(pkt('a', 3)), { ok: true });
  t.same(await g.handle(pkt('a', 1)), { ok: true });
  t.same(await g.handle(pkt('b', 7)), { ok: true });
  t.equal(await readFile(path, 'utf8'), before, 'the file is unchanged');
  await g.handle(pkt('a', 4));
  await g.handle(pkt('b', 8));
  await g.handle(pkt('c', 1));
  t.same((await lines(path)).map((l) => `${(l as DispatchPacket).agent}:${(l as DispatchPacket).seq}`), ['a:1', 'a:2', 'a:3', 'b:7', 'a:4', 'b:8', 'c:1'], 'newer packets are appended');
});

t.test('file-handler - a torn last line without its newline is cut on open', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const h = await open(t, path);
  await h.handle(pkt('a', 1));
  await h.handle(pkt('a', 2));
  await h.close();
  const intact = await readFile(path, 'utf8');
  // A complete-looking JSON object for seq 3, but the write stopped before its newline.
  await appendFile(path, JSON.stringify({ agent: 'a', seq: 3, target: 't/a', ts: 0, data: { v: 'torn' } }));
  const g = await open(t, path);
  t.equal((await stat(path)).size, Buffer.byteLength(intact), 'cut back to the last complete line');
  t.same(await g.handle(pkt('a', 3)), { ok: true });
  const got = await lines(path);
  t.equal(got.length, 3, 'seq 3 was not taken as written: it is written now, on its own line');
  t.same(got[2], { agent: 'a', seq: 3, target: 't/a', ts: 1_700_000_000_003, data: { v: 3 } });
});

t.test('file-handler - a torn half line is cut and the lines before it still count', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const first = `${JSON.stringify({ agent: 'a', seq: 5, target: 't', ts: 1, data: 1 })}\n`;
  await writeFile(path, `${first}{"agent":"a","seq":6,"tar`);
  const h = await open(t, path);
  t.equal(await readFile(path, 'utf8'), first);
  await h.handle(pkt('a', 5));
  t.equal(await readFile(path, 'utf8'), first, 'seq 5 from the intact line is known');
  await h.handle(pkt('a', 6));
  t.equal((await lines(path)).length, 2);
});

t.test('file-handler - lines that are not packets are left alone', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  await writeFile(path, 'a note\n{"other":true}\n');
  const h = await open(t, path);
  await h.handle(pkt('a', 1));
  const text = await readFile(path, 'utf8');
  t.ok(text.startsWith('a note\n{"other":true}\n'), 'foreign lines kept');
  t.equal(text.split('\n').length, 4, 'and the packet appended after them');
});

t.test('file-handler - a new file is created with its own directory (0750), none above it', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'out', 'out.jsonl');
  const h = await open(t, path);
  t.equal(h.kind, 'file');
  await h.handle(pkt('a', 1));
  t.equal((await lines(path)).length, 1);
  t.equal((await stat(join(dir, 'out'))).mode & 0o777, 0o750, 'its directory is 0750');
  await t.rejects(FileHandler.open({ path: join(dir, 'deep', 'er', 'out.jsonl'), sync: 'none' }), { code: ErrorCode.CONFIG_INVALID, message: /deep does not exist.*\(ENOENT\)/ }, 'a missing grandparent is refused');
  t.notOk(existsSync(join(dir, 'deep')), 'and not created');
  await writeFile(join(dir, 'plain'), 'x');
  await t.rejects(FileHandler.open({ path: join(dir, 'plain', 'sub', 'out.jsonl'), sync: 'none' }), { code: ErrorCode.CONFIG_INVALID, message: /plain is not a directory \(ENOTDIR\)/ }, 'a path through a file names it');
  await t.rejects(FileHandler.open({ path: join(dir, 'out'), sync: 'none' }), { code: ErrorCode.CONFIG_INVALID, message: /cannot open it to append \(EISDIR\)/ }, 'a path that is a directory');
});

t.test('file-handler - the same packet handed over twice at once is written once', async (t) => {
  const path = join(t.testdir(), 'out.jsonl');
  const h = await open(t, path);
  const results = await Promise.all([h.handle(pkt('a', 1)), h.handle(pkt('a', 1)), h.handle(pkt('a', 2)), h.handle(pkt('a', 2))]);
  t.ok(results.every((r) => r.ok), 'all four calls succeed');
  t.same((await lines(path)).map((l) => (l as { seq: number }).seq), [1, 2], 'one line per seq');
});

t.test('file handler - with the dispatch floor, marks stay a few ranges when the agent\'s other seqs go to other routes', async (t) => {
  const dir = t.testdir();
  let floor = 0;
  const make = (floorOf?: (a: string) => number) => FileHandler.open({ path: `${dir}/${floorOf ? 'with' : 'without'}.jsonl`, sync: 'none', ...(floorOf ? { floorOf } : {}) });
  const withFloor = await make(() => floor);
  const without = await make();
  t.teardown(async () => {
    await withFloor.close();
    await without.close();
  });
  // Odd seqs come here, even ones go elsewhere; the floor follows what all routes dispatched.
  for (let seq = 1; seq <= 2000; seq += 2) {
    const p = { agent: 'a', seq, target: 'x', ts: 0, data: seq };
    t.same(await withFloor.handle(p), { ok: true });
    await without.handle(p);
    floor = seq + 1;
  }
  t.equal(without.markedRanges, 1000, 'without the floor: one range per seq written (the control)');
  t.ok(withFloor.markedRanges <= 1, `with the floor: ${withFloor.markedRanges} range(s)`);
  t.same(await withFloor.handle({ agent: 'a', seq: 1, target: 'x', ts: 0, data: 1 }), { ok: true }, 'a seq below the floor is acknowledged');
  const lines = (await readFile(`${dir}/with.jsonl`, 'utf8')).split('\n').filter(Boolean);
  t.equal(lines.length, 1000, 'and not written again');
});
