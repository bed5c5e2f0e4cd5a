/**
 * A producer for integration tests that keeps packets for several targets flowing into a real
 * agent's local socket, and the check every such test ends with: each packet the agent accepted
 * reached the gateway's file exactly once, in seq order per target, with its own target.
 */
import type { Test } from 'tap';
import { localRequest } from '../../agent/local-api.js';
import type { FerryProcess } from '../../cli/proc.js';
import { drainAndStopAgent, sleep, type Rig } from './ferry.js';

export interface Producer {
  /** seq → target of every send the agent answered ok */
  accepted: Map<number, string>;
  stop(): Promise<void>;
}

/** Sends batches of `batch` packets round-robin over `targets` until stopped (or `count` were accepted). */
export function startProducer(rig: Rig, targets: readonly string[], opts: { batch?: number; pauseMs?: number; count?: number } = {}): Producer {
  const accepted = new Map<number, string>();
  let producing = true;
  const run = (async () => {
    let n = 0;
    while (producing && (opts.count === undefined || accepted.size < opts.count)) {
      const size = opts.count === undefined ? (opts.batch ?? 8) : Math.min(opts.batch ?? 8, opts.count - accepted.size);
      const batch = await Promise.all(Array.from({ length: size }, () => {
        const target = targets[n++ % targets.length]!;
        return localRequest(rig.socket, { op: 'send', target, data: { n } }, 5000).then((r) => ({ r, target }), () => null);
      }));
      for (const x of batch) if (x?.r.ok) accepted.set(x.r.seq as number, x.target);
      await sleep(opts.pauseMs ?? 5);
    }
  })();
  return {
    accepted,
    async stop() {
      producing = false;
      await run;
    },
  };
}

/** Drains and stops the agent, then checks the file against what it accepted. */
export async function checkExactlyOnceInOrder(t: Test, rig: Rig, agent: FerryProcess, accepted: Map<number, string>, targets: readonly string[]): Promise<void> {
  const lastSeq = await drainAndStopAgent(rig, agent);
  const lines = await rig.lines();
  const seqs = lines.map((l) => l.seq);
  t.equal(new Set(seqs).size, seqs.length, 'no packet was dispatched twice');
  t.equal(seqs.length, lastSeq, `all ${lastSeq} packets the agent stored reached the file`);
  const inFile = new Set(seqs);
  t.equal([...accepted.keys()].filter((s) => !inFile.has(s)).length, 0, `every accepted send (${accepted.size}) is in the file`);
  for (const target of targets) {
    const mine = lines.filter((l) => l.target === target).map((l) => l.seq);
    t.ok(mine.every((s, i) => i === 0 || s > mine[i - 1]!), `${target}: ${mine.length} packets in seq order`);
  }
  t.ok(lines.every((l) => accepted.get(l.seq) === undefined || accepted.get(l.seq) === l.target), 'each seq carries the target it was sent with');
}
