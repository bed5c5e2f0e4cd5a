/** A load-generating client (bench/clients/*) run as its own pinned Node process. */
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { pinnedNode, spawnProc, type Proc } from './proc.js';

/** What a client prints as its last stdout line (JSON); times are monotonic ns, as strings. */
export interface ClientReport {
  /** just before the first request was written */
  firstSendNs: string;
  /** when the last acknowledgement arrived */
  lastAckNs: string;
  acked: number;
  /** the CPUs the client was allowed to run on (its own /proc/self/status) */
  cpus: string;
  /** CPU seconds (user + system) the client spent from its first send to its last ack */
  cpuSeconds: number;
}

export interface ClientResult {
  firstSendNs: bigint;
  lastAckNs: bigint;
  acked: number;
  cpus: string;
  cpuSeconds: number;
}

/** The compiled client script `name` (dist/bench/clients/NAME.js). */
export const clientScript = (name: string): string => fileURLToPath(new URL(`../clients/${name}.js`, import.meta.url));

export function runClient(name: string, args: string[], opts: { cpus: string; cleanup: Cleanup; env?: Record<string, string> }): { proc: Proc; result: Promise<ClientResult> } {
  const proc = spawnProc(name, pinnedNode(opts.cpus, clientScript(name), args), { cleanup: opts.cleanup, ...(opts.env ? { env: opts.env } : {}) });
  const result = proc.exited.then(({ code, signal }) => {
    const last = proc.output().trim().split('\n').pop() ?? '';
    if (code !== 0) throw new Error(`${name} exited (${signal ?? code}); output:\n${proc.output().slice(-3000)}`);
    const r = JSON.parse(last) as ClientReport;
    return { firstSendNs: BigInt(r.firstSendNs), lastAckNs: BigInt(r.lastAckNs), acked: r.acked, cpus: r.cpus, cpuSeconds: r.cpuSeconds };
  });
  result.catch(() => undefined);
  return { proc, result };
}
