/** The MQTT end of the end-to-end benchmarks: a private pinned mosquitto and the subscriber process. */
import { startMosquitto, type Mosquitto } from '../../test/helpers/mosquitto.js';
import type { SubscriberReport } from '../clients/mqtt-subscriber.js';
import type { Cleanup } from './cleanup.js';
import { clientScript } from './client.js';
import { pinnedNode, pinPid, spawnProc, type Proc } from './proc.js';

/**
 * mosquitto 2 on a free 127.0.0.1 port with its own config and temp dir (test/helpers/mosquitto.ts:
 * `set_tcp_nodelay true`, `max_queued_messages 0`, `allow_anonymous true`, `persistence false`),
 * every thread pinned to `cpus`, stopped by PID at cleanup.
 */
export async function startBroker(cpus: string, cleanup: Cleanup): Promise<Mosquitto> {
  const broker = await startMosquitto();
  cleanup.defer(`stop mosquitto (pid ${broker.pid})`, () => broker.stop());
  await pinPid(broker.pid, cpus);
  return broker;
}

export interface SubscriberResult extends Omit<SubscriberReport, 'firstRecvNs' | 'lastRecvNs'> {
  firstRecvNs: bigint;
  lastRecvNs: bigint;
}

/**
 * Starts bench/clients/mqtt-subscriber (pinned) and resolves once its subscription is in place;
 * `result` resolves with its report and rejects if a packet is missing, duplicated or foreign.
 */
export async function startSubscriber(url: string, filter: string, expected: number, opts: { cpus: string; cleanup: Cleanup; latency?: boolean; stallMs?: number }): Promise<{ proc: Proc; result: Promise<SubscriberResult> }> {
  const args = [url, filter, String(expected), opts.latency ? 'latency' : 'count', String(opts.stallMs ?? 30_000)];
  const proc = spawnProc(`subscriber ${filter}`, pinnedNode(opts.cpus, clientScript('mqtt-subscriber'), args), { cleanup: opts.cleanup });
  await proc.waitFor(/^subscribed$/m);
  const result = subscriberResult(proc, filter, expected);
  return { proc, result };
}

/**
 * The report a subscriber process (mqtt-subscriber, local-subscriber) prints last; rejects if it
 * failed, or if a packet is missing, duplicated or foreign. `what`: its subscription, for messages.
 */
export function subscriberResult<R extends SubscriberReport>(proc: Proc, what: string, expected: number): Promise<Omit<R, 'firstRecvNs' | 'lastRecvNs'> & { firstRecvNs: bigint; lastRecvNs: bigint }> {
  const result = proc.exited.then(({ code, signal }) => {
    const last = proc.output().trim().split('\n').pop() ?? '';
    if (code !== 0) throw new Error(`subscriber exited (${signal ?? code}); output:\n${proc.output().slice(-3000)}`);
    const r = JSON.parse(last) as R;
    if (r.missing > 0 || r.duplicates > 0 || r.seqDuplicates > 0 || r.foreign > 0) {
      throw new Error(`subscriber on ${what}: ${r.unique} of ${expected} packets, ${r.missing} missing (first: ${r.firstMissing}), ${r.duplicates} duplicated (${r.seqDuplicates} by ferry-seq or message ID), ${r.foreign} foreign`);
    }
    return { ...r, firstRecvNs: BigInt(r.firstRecvNs), lastRecvNs: BigInt(r.lastRecvNs) };
  });
  result.catch(() => undefined);
  return result;
}
