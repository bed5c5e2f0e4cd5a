/**
 * Benchmark: agent → gateway packets/s, file handler, durable on both sides, 100-byte packets.
 * A producer process pipelines `send` requests into the agent's local socket; the agent stores
 * each packet (fdatasync) and forwards it; the gateway appends it to a file (fdatasync), records
 * it as dispatched (fdatasync) and acks. Timed from the first send until the file holds every line.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tallyFile } from '../cli/tally.js';
import type { Cleanup } from './lib/cleanup.js';
import { runClient } from './lib/client.js';
import { agentId, tempDir } from './lib/configs.js';
import { watchLines } from './lib/lines.js';
import type { BenchOptions } from './lib/options.js';
import { placement, type Measured } from './lib/measured.js';
import { cpuMeter } from './lib/cpu.js';
import { countSyncs } from './lib/syncs.js';
import { fileRoute, gatewayUrl, longpollTotals, startAgent, startGateway, type Carrier, type LongpollTotals } from './lib/ferry-rig.js';
import { secondsBetween } from './lib/timing.js';

export interface FerryFileResult extends Measured {
  /** first send → the file handler's output holds all lines (durable at agent and gateway) */
  endToEndSeconds: number;
  /** first send → the agent acknowledged the last append (durable at the agent) */
  producerSeconds: number;
  /** long-poll runs: the gateway's totals line (requests answered, sessions opened); else null */
  longpoll: LongpollTotals | null;
}

/** `carrier`: the agent reaches the gateway over the TCP tunnel (the `link` benchmark) or HTTP long-poll (`longpoll`). */
export async function benchFerryFile(o: BenchOptions, cleanup: Cleanup, carrier: Carrier = 'tcp'): Promise<FerryFileResult> {
  const dir = await tempDir('ferry-bench-', cleanup);
  const outFile = join(dir, 'received.jsonl');
  const gw = await startGateway(dir, { routes: fileRoute(outFile), http: carrier === 'longpoll' }, o, cleanup);
  const { proc: agent, socket } = await startAgent(dir, gatewayUrl(gw, carrier), o, cleanup);
  const gateway = gw.proc;

  const servers = await placement([gateway, agent]);
  const counters = o.countSyncs ? await Promise.all([agent, gateway].map(async (p) => ({ name: p.name, counter: await countSyncs(p.name, p.pid, cleanup) }))) : null;
  const cpu = await cpuMeter([agent, gateway]);
  const lines = watchLines(outFile, o.packets);
  const producer = runClient('ferry-producer', [socket, String(o.packets), String(o.window), 'bench/packets'], { cpus: o.cpus, cleanup });
  let acks, fileDoneNs;
  try {
    [acks, fileDoneNs] = await Promise.all([producer.result, lines.done]);
  } finally {
    lines.stop();
  }
  const serverCpu = await cpu.stop();
  const syncs = counters ? Object.fromEntries(await Promise.all(counters.map(async (c) => [c.name, await c.counter.stop()] as const))) : null;
  await Promise.all([agent.stop(), gateway.stop()]);
  const totals = carrier === 'longpoll' ? await longpollTotals(gw) : null;
  if (carrier === 'longpoll' && totals === null) throw new Error(`the gateway logged no 'gateway: long-poll totals' line on SIGTERM; its output ends:\n${gateway.output().slice(-1500)}`);
  // Every packet in the file exactly once and in order, counted from the file itself.
  const tally = tallyFile(await readFile(outFile, 'utf8'), agentId, o.packets);
  if (acks.acked !== o.packets || !tally.ok) throw new Error(`acked ${acks.acked} of ${o.packets}; file: ${JSON.stringify(tally)}`);
  return {
    packets: o.packets,
    endToEndSeconds: secondsBetween(acks.firstSendNs, fileDoneNs),
    producerSeconds: secondsBetween(acks.firstSendNs, acks.lastAckNs),
    placement: [...servers, { name: 'producer', pid: producer.proc.pid, cpus: acks.cpus }],
    cpu: { ...serverCpu, producer: acks.cpuSeconds },
    syncs,
    longpoll: totals,
  };
}
