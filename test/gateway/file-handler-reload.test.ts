/**
 * The file handler during a SIGHUP reload: the route table opens a new handler on the same path
 * while the replaced one still finishes the packets its lanes hold (gateway/route-table.ts), so
 * two handlers append to one file for a while. A failure in the old one must not cut what the new
 * one wrote and acknowledged.
 */
import t from 'tap';
import { FileHandler } from '../../gateway/handlers/file.js';
import type { DispatchPacket } from '../../gateway/handlers/handler.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';

const path = '/gw/packets.jsonl';

function pkt(agent: string, seq: number, target: string): DispatchPacket {
  return { agent, seq, target, ts: 1_700_000_000_000 + seq, data: { v: seq } };
}

function linesOn(disk: SimDisk): string[] {
  const text = disk.readCurrent(path)?.toString('utf8') ?? '';
  return text.split('\n').filter((l) => l !== '').map((l) => {
    const v = JSON.parse(l) as { agent: string; seq: number };
    return `${v.agent}:${v.seq}`;
  });
}

t.test('file-handler - a replaced handler\'s failed write keeps the lines its successor acknowledged', async (t) => {
  const disk = new SimDisk({ rng: new Rng(7).fn });
  const files = disk.process('gw');
  const old = await FileHandler.open({ path, files, sync: 'always', retryAfterMs: 50 });
  t.same(await old.handle(pkt('a', 1, 't/a')), { ok: true });
  // SIGHUP: the new handler opens on the same path; t/a's lane still finishes with the old one.
  const next = await FileHandler.open({ path, files, sync: 'always', retryAfterMs: 50 });
  t.same(await next.handle(pkt('a', 2, 't/b')), { ok: true }, 'the new handler wrote and acknowledged a:2');
  t.same(linesOn(disk), ['a:1', 'a:2']);
  // The old handler's next write fails (the disk is full): it cuts the file back to where it thinks it ends.
  disk.faults.bytesBudget = disk.usedBytes() + 10;
  const r = await old.handle(pkt('a', 3, 't/a'));
  t.equal(r.ok, false, 'the old handler\'s write fails, retryably');
  disk.faults.bytesBudget = null;
  t.same(linesOn(disk), ['a:1', 'a:2'], 'the acknowledged a:2 is still in the file');
  await old.close();
  await next.close();
});
