/**
 * The simulated HTTP path of the long-poll carrier (issue 11): the agent's real long-poll client
 * posts through it to the gateway's real LongPollSessions, on simulated time. It stands for the
 * network, a forward proxy and the gateway's HTTP server, with their faults:
 * - loss: a request never reaches the gateway, or its response never reaches the agent (the
 *   agent's exchange hangs until it gives up on it);
 * - duplication: a proxy retries a request, so the gateway gets it twice;
 * - garbling: a response body arrives cut short (unreadable);
 * - a proxy idle time-out: a request held longer than it is cut with 504 (and the gateway sees
 *   the client go);
 * - processes dying: a killed gateway resets what it held, a powered-off one answers nothing; a
 *   dead agent's exchanges go with it (the gateway sees a reset, or nothing);
 * - partitions and the gateway being down or off (shared with SimNet).
 */
import type { PeerInfo } from '../../protocol/transport.js';
import type { Rng } from './rng.js';
import type { SimTime } from './sim-clock.js';
import { netError, type SimNet } from './sim-net.js';
import type { Trace } from './trace.js';

export interface HttpReply {
  status: number;
  body: Uint8Array;
  retryAfterMs?: number;
}

/** The gateway's side: LongPollSessions.handle, adapted (gateway-host.ts). */
export type HttpHandler = (req: { body: Uint8Array; agent: string | undefined; peer: PeerInfo }, abort: { onAbort(fn: () => void): void }) => Promise<HttpReply>;

/** The agent's side: agent/link/longpoll-client.ts Post. */
export type SimPost = (body: Uint8Array, signal: AbortSignal) => Promise<HttpReply>;

export interface HttpFaults {
  /** chance that a request, or a response, is lost */
  lossP: number;
  /** chance that a proxy sends a request twice */
  dupP: number;
  /** chance that a response body arrives cut short */
  garbleP: number;
  /** a proxy cuts a request not answered within this (504); null: no such proxy */
  proxyIdleMs: number | null;
}

export const noHttpFaults: HttpFaults = { lossP: 0, dupP: 0, garbleP: 0, proxyIdleMs: null };

/** One request on its way: what each side still waits for. */
interface Exchange {
  agent: string;
  /** the agent gets its answer (or error) through this, on its own clock */
  settle: ((r: HttpReply | Error) => void) | null;
  /** the gateway's side is told the client went away */
  aborts: (() => void)[];
  answered: boolean;
}

export class SimHttp {
  faults: HttpFaults = { ...noHttpFaults };
  private handler: HttpHandler | null = null;
  private readonly pending = new Set<Exchange>();
  private nextExchange = 1;

  constructor(private readonly net: SimNet, private readonly time: SimTime, private readonly rng: Rng, private readonly trace: Trace) {}

  /** The gateway process serves long-poll (after a start or restart). */
  listen(handler: HttpHandler): void {
    this.handler = handler;
  }

  /** The gateway process died: a kill resets what it held; a power cut leaves clients hanging. */
  gatewayDied(how: 'kill' | 'power'): void {
    this.handler = null;
    for (const x of [...this.pending]) {
      if (x.answered) continue;
      this.pending.delete(x);
      if (how === 'kill') this.toAgent(x, netError('ECONNRESET', 'simulated HTTP: connection reset by the gateway'));
    }
  }

  /** An agent process died: the gateway sees its held requests go (a kill) or nothing (a power cut). */
  agentDied(agent: string, how: 'kill' | 'power'): void {
    for (const x of [...this.pending]) {
      if (x.agent !== agent) continue;
      this.pending.delete(x);
      x.settle = null;
      if (how === 'kill') for (const a of x.aborts.splice(0)) a();
    }
  }

  /** `agent`'s exchanges in flight never come back (a partition); the gateway does not know. */
  blackHole(agent: string): void {
    for (const x of this.pending) if (x.agent === agent) x.settle = null;
  }

  heal(): void {
    this.faults = { ...noHttpFaults };
  }

  private latencyMs(): number {
    return this.rng.int(this.net.opts.latencyMsMin, this.net.opts.latencyMsMax);
  }

  private later(ms: number, fn: () => void): void {
    this.time.at(this.time.now() + ms, fn, 'http');
  }

  private toAgent(x: Exchange, r: HttpReply | Error): void {
    const settle = x.settle;
    x.settle = null;
    if (settle) this.later(this.latencyMs(), () => settle(r));
  }

  /** The agent's Post for `agent`; `clock` is its process's, so a killed agent's exchanges never complete. */
  poster(agent: string, clock: { setTimeout(fn: () => void, ms: number): unknown }): SimPost {
    return (body, signal) =>
      new Promise<HttpReply>((resolve, reject) => {
        const id = this.nextExchange++;
        const x: Exchange = { agent, settle: null, aborts: [], answered: false };
        // Answers reach the agent's code only through its clock: nothing runs in a dead process.
        x.settle = (r) => void clock.setTimeout(() => (r instanceof Error ? reject(r) : resolve(r)), 0);
        const onAbort = (): void => {
          if (!this.pending.has(x) && x.settle === null) return;
          this.pending.delete(x);
          x.settle = null;
          for (const a of x.aborts.splice(0)) a();
          reject(Object.assign(new Error('simulated HTTP: request aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        this.pending.add(x);
        if (this.net.partitioned.has(agent) || this.net.gatewayState === 'off') {
          this.trace.event('http', `h${id} ${agent} times out`);
          return void clock.setTimeout(() => {
            if (!this.pending.delete(x)) return;
            x.settle = null;
            reject(netError('ETIMEDOUT', 'simulated HTTP: connect timed out'));
          }, this.net.opts.connectTimeoutMs);
        }
        if (this.net.gatewayState === 'down' || !this.handler) {
          this.trace.event('http', `h${id} ${agent} refused`);
          this.pending.delete(x);
          return this.toAgent(x, netError('ECONNREFUSED', 'simulated HTTP: connection refused'));
        }
        if (this.rng.chance(this.faults.lossP)) {
          this.trace.event('http', `h${id} ${agent} > ${body.length} B lost`);
          return; // hangs until the agent gives up on it
        }
        const copies = this.rng.chance(this.faults.dupP) ? 2 : 1;
        this.trace.event('http', `h${id} ${agent} > ${body.length} B${copies > 1 ? ' (sent twice by a proxy)' : ''}`);
        for (let copy = 1; copy <= copies; copy++) {
          const last = copy === copies;
          this.later(this.latencyMs() * copy, () => this.serve(id, x, body, last));
        }
        if (this.faults.proxyIdleMs !== null) {
          const idleMs = this.faults.proxyIdleMs;
          this.later(idleMs, () => {
            if (x.answered || !this.pending.has(x)) return;
            this.pending.delete(x);
            this.trace.event('http', `h${id} ${agent} cut by the proxy after ${idleMs} ms (504)`);
            for (const a of x.aborts.splice(0)) a();
            this.toAgent(x, { status: 504, body: new Uint8Array(0) });
          });
        }
      });
  }

  /** The gateway takes one copy of the request; only the last copy's answer goes back. */
  private serve(id: number, x: Exchange, body: Uint8Array, last: boolean): void {
    const handler = this.handler;
    if (!handler || !this.pending.has(x)) return;
    let aborted = false;
    const abortHooks: (() => void)[] = [];
    x.aborts.push(() => {
      aborted = true;
      for (const h of abortHooks.splice(0)) h();
    });
    handler({ body, agent: x.agent, peer: { address: `10.0.0.${x.agent.replace(/\D/g, '') || '9'}`, tls: false } }, { onAbort: (fn) => (aborted ? fn() : abortHooks.push(fn)) }).then(
      (reply) => {
        if (!last || aborted || !this.pending.has(x) || this.handler !== handler) return;
        x.answered = true;
        this.pending.delete(x);
        if (this.rng.chance(this.faults.lossP)) {
          this.trace.event('http', `h${id} ${x.agent} < ${reply.status} lost`);
          x.settle = null; // hangs until the agent gives up on it
          return;
        }
        let out = reply;
        if (reply.status === 200 && reply.body.length > 1 && this.rng.chance(this.faults.garbleP)) {
          out = { ...reply, body: reply.body.subarray(0, this.rng.int(0, reply.body.length - 1)) };
          this.trace.event('http', `h${id} ${x.agent} < ${reply.status} cut to ${out.body.length} of ${reply.body.length} B`);
        } else {
          this.trace.event('http', `h${id} ${x.agent} < ${reply.status} ${reply.body.length} B`);
        }
        this.toAgent(x, out);
      },
      (err: unknown) => {
        if (!last || !this.pending.has(x)) return;
        this.pending.delete(x);
        this.trace.event('http', `h${id} ${x.agent} < handler threw ${(err as Error).message}`);
        this.toAgent(x, { status: 500, body: new Uint8Array(0) });
      },
    );
  }
}
