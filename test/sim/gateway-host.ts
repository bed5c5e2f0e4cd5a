/**
 * The simulated gateway host: its own SimDisk, and on it the real gateway core (gateway/core.ts:
 * sessions, lanes, dispatch log) with two file handlers (one rotating) and two routes to the
 * simulated downstream (one handing over one packet at a time, one pipelining). It can be
 * killed or lose power, and starts again on the same disk. Authentication is on, with the real
 * authenticator (gateway/auth.ts) over a registry of the honest agents and the hostile one, each
 * with its own token (simToken). With the downlink on (issue 12) the core also gets the
 * downlink queues, on the same disk, and what the gateway takes off them is told to the oracle.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AgentEntry, AgentLookup } from '../../gateway/agents.js';
import { hashToken } from '../../gateway/agents.js';
import { createAuthenticator } from '../../gateway/auth.js';
import { createGatewayCore, type CoreLimits, type GatewayCore } from '../../gateway/core.js';
import { FileHandler } from '../../gateway/handlers/file.js';
import { longPollSessionLimitsDefault, type LongPollSessionLimits } from '../../gateway/longpoll/limits.js';
import { LongPollSessions } from '../../gateway/longpoll/sessions.js';
import type { Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import type { DownlinkQueueLimits, DownlinkQueues } from '../../gateway/downlink/queue.js';
import { DownlinkStore } from '../../gateway/downlink/store.js';
import type { Files } from '../../common/files.js';
import type { Log } from '../../common/log.js';
import type { WorldContext } from './context.js';
import { simLog } from './context.js';
import { readOutputs, type FileOutput } from './checkers.js';
import type { DownOracle } from './downlink-oracle.js';
import type { Rng } from './rng.js';
import type { SimClock } from './sim-clock.js';
import { SimDisk } from './sim-disk.js';

export const gatewayDataDir = '/gw/data';
export const downlinkDir = `${gatewayDataDir}/downlink`;

/** The long-poll listener's limits, its hold scaled to the simulator's seconds-long faults (the agent's time-outs: device.ts). */
const simLongPollLimits: LongPollSessionLimits = { ...longPollSessionLimitsDefault, holdMs: 5000, sessionIdleMs: 12_000 };

/** The routes, by target prefix; the simulator's producers pick targets under them. */
export const routeTargets = {
  file: ['file/a', 'file/b', 'file/c'],
  rotating: ['rot/a', 'rot/b'],
  downstreamOneAtATime: ['down/one/a', 'down/one/b'],
  downstreamPipelined: ['down/pipe/a', 'down/pipe/b'],
} as const;

export const downstreamPipelinedInflightMax = 4;

/** rotated files kept: enough for a whole run's output (a deleted file would look like lost packets) */
export const rotatedKeep = 60;

export const fileOutputs: FileOutput[] = [{ path: '/gw/out/file.jsonl' }, { path: '/gw/out/rot.jsonl' }];

/** The token registered for `agent` at the simulated gateway (each agent, the hostile one too, knows only its own). */
export function simToken(agent: string): string {
  return `sim-${createHash('sha256').update(agent).digest('hex').slice(0, 16)}`;
}

/** The agent registry in memory (AgentRegistry without its file): entries as `ferry gateway add-agent` makes them. */
class SimAgents implements AgentLookup {
  private readonly entries: Map<string, AgentEntry>;
  constructor(ids: string[]) {
    this.entries = new Map(ids.map((id) => [id, { id, tokenHash: hashToken(simToken(id)), revoked: false, addedAt: 0 }]));
  }

  get(id: string): AgentEntry | undefined {
    const e = this.entries.get(id);
    return e && { ...e };
  }

  verifyToken(id: string, token: string): boolean {
    const stored = this.entries.get(id)?.tokenHash;
    if (stored === undefined) return false;
    const a = Buffer.from(hashToken(token));
    const b = Buffer.from(stored);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

export interface GatewayHostOptions {
  /** agent IDs registered, each with its simToken */
  agents: string[];
  limits: CoreLimits;
  dispatchLogCompactBytes: number;
  /** the file handlers' retry-after on a failed write (below the lanes' retryInPlaceMsMax: retried in place) */
  fileRetryAfterMs: number;
  rotateBytes: number;
  /** the downlink queues' limits (issue 12), and when their file is compacted; absent: no downlink */
  downlink?: DownlinkQueueLimits & { compactBytes: number };
}

export type GatewayState = 'off' | 'starting' | 'running';

export class GatewayHost {
  readonly disk: SimDisk;
  state: GatewayState = 'off';
  core: GatewayCore | null = null;
  private inc = 0;
  private clock: SimClock | null = null;
  private sessionIds = 0;
  private readonly rng: Rng;
  /** the downlink's draws (message ids), apart from the gateway's */
  private readonly dlRng: Rng | null;

  constructor(private readonly w: WorldContext, readonly o: GatewayHostOptions) {
    this.rng = w.rng.fork('gateway');
    this.disk = new SimDisk({ rng: this.rng.fork('disk').fn });
    this.dlRng = o.downlink && w.dl ? w.dlRng.fork('gateway') : null;
  }

  /** A message id as the gateway makes them (22 base64url characters), from the seed. */
  private newId(): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    let id = '';
    for (let i = 0; i < 22; i++) id += alphabet[this.dlRng!.int(0, 63)];
    return id;
  }

  /** The real downlink queues of one gateway process (on its disk, beside the dispatch log), watched: each take is told to the oracle. */
  private async openDownlink(clock: SimClock, files: Files, log: Log): Promise<DownlinkQueues | undefined> {
    const { w, o } = this;
    const dl = w.dl;
    if (!o.downlink || !dl) return undefined;
    const { compactBytes, ...limits } = o.downlink;
    const queues = await DownlinkStore.open({ dir: downlinkDir, files, clock, log, limits, compactBytes, newId: () => this.newId() });
    return watchedQueues(queues, dl, clock, w);
  }

  /** Kills the gateway (or cuts the power) just before its `steps`-th disk step from now: inside a dispatch record, a rotation, a compaction. */
  crashMidIo(steps: number, how: 'kill' | 'power', restartMs: number): void {
    this.disk.crashBeforeStep(steps, () => {
      this.kill(how);
      this.w.later(restartMs, () => this.start());
    });
  }

  /** No crash armed any more (the liveness phase). */
  disarm(): void {
    this.disk.disarmCrash();
  }

  private get procName(): string {
    return `gw#${this.inc}`;
  }

  /** What installing the gateway leaves on its disk, durably: its directories. */
  async install(precreateFiles: boolean): Promise<void> {
    const p = this.disk.process('install');
    await p.mkdir(gatewayDataDir);
    for (const out of fileOutputs) await p.mkdir(out.path.slice(0, out.path.lastIndexOf('/')));
    if (precreateFiles) {
      // Works around new files whose directory entry is never synced (FINDINGS.md): made here, durably.
      for (const path of [...fileOutputs.map((o) => o.path), `${gatewayDataDir}/dispatched.log`]) await (await p.open(path, { create: true })).close();
    }
    this.disk.kill('install');
    this.disk.syncAll();
  }

  start(): void {
    if (this.state !== 'off') return;
    this.inc++;
    const inc = this.inc;
    const name = this.procName;
    const { w, o } = this;
    this.state = 'starting';
    w.trace.event('gateway', `${name} starts`);
    const clock = w.time.view(name, this.rng.fork(name), w.jitter);
    this.clock = clock;
    const files = this.disk.process(name);
    const log = simLog(w.trace, name);
    const opened: Handler[] = [];
    const open = async (): Promise<GatewayCore> => {
      const file = await FileHandler.open({ path: fileOutputs[0]!.path, sync: 'always', files, retryAfterMs: o.fileRetryAfterMs });
      opened.push(file);
      const rot = await FileHandler.open({ path: fileOutputs[1]!.path, sync: 'always', files, retryAfterMs: o.fileRetryAfterMs, rotateBytes: o.rotateBytes, keep: rotatedKeep });
      opened.push(rot);
      // Without the downlink the gateway opens as it did before issue 12 (no step more).
      const downlink = o.downlink ? await this.openDownlink(clock, files, log) : undefined;
      return createGatewayCore({
        clock, log, files, dataDir: gatewayDataDir, limits: o.limits, dispatchLogCompactBytes: o.dispatchLogCompactBytes,
        routes: [
          { match: 'file/#', handler: traced(file, w) },
          { match: 'rot/#', handler: traced(rot, w) },
          { match: 'down/one/#', handler: w.downstream.handler('one', 1, clock) },
          { match: 'down/pipe/#', handler: w.downstream.handler('pipe', downstreamPipelinedInflightMax, clock) },
        ],
        newSessionId: () => `${name}/s${++this.sessionIds}`,
        authenticate: createAuthenticator({ required: true, clientCert: 'off' }, new SimAgents(o.agents)),
        rng: this.rng.fork(`${name} core`).fn,
        ...(downlink ? { downlink } : {}),
      });
    };
    open().then(
      (core) => {
        if (this.inc !== inc) return;
        w.trace.event('gateway', `${name} running`);
        this.core = core;
        this.state = 'running';
        w.net.listen((t) => core.accept(t));
        // The long-poll listener of gateway/main.ts, over the simulated HTTP path.
        const sessions = new LongPollSessions({
          clock, log, onTransport: (t) => void core.accept(t), limits: simLongPollLimits,
          randomId: () => `${name.replace(/\W/g, '')}-${++this.sessionIds}-${this.rng.int(0, 0x7fffffff).toString(36)}`,
        });
        w.http.listen(async (req, abort) => {
          const r = await sessions.handle(req, abort);
          return { status: r.status, body: r.body, ...(r.retryAfterS !== undefined ? { retryAfterMs: r.retryAfterS * 1000 } : {}) };
        });
      },
      (err: unknown) => {
        if (this.inc !== inc) return;
        w.trace.event('gateway', `${name} failed to start: ${(err as { code?: string }).code ?? (err as Error).message}`);
        clock.kill();
        this.disk.kill(name);
        this.stopped();
        w.later(1000, () => this.start());
      },
    );
  }

  kill(how: 'kill' | 'power'): void {
    const { w } = this;
    w.trace.event('fault', `${this.procName} ${how === 'kill' ? 'killed' : 'loses power'} (${this.state})`);
    this.clock?.kill();
    if (how === 'power') {
      this.disk.powerCut();
      // For the order checker's message: a line no handler acknowledged that the cut left on disk.
      for (const l of readOutputs(this.disk, fileOutputs, 'current')) if (!w.oracle.fileHandlerOk.has(l.id)) w.oracle.survivedCutUnacked.add(l.id);
    } else this.disk.kill(this.procName);
    w.net.gatewayDied(how);
    w.http.gatewayDied(how);
    w.downstream.gatewayDied();
    this.stopped();
  }

  private stopped(): void {
    this.inc++;
    this.state = 'off';
    this.core = null;
    this.clock = null;
  }
}

/** The queues, with every take told to the oracle (the sender puts what it takes in a DOWN frame in the same turn). */
function watchedQueues(q: DownlinkQueues, dl: DownOracle, clock: SimClock, w: WorldContext): DownlinkQueues {
  return {
    enqueue: (agent, m) => q.enqueue(agent, m),
    get: (agent, id) => q.get(agent, id),
    list: (agent, opts) => q.list(agent, opts),
    take: (agent, room) => {
      const taken = q.take(agent, room);
      if (taken.length > 0) w.trace.event('downlink', `take for ${agent}: ${taken.map((m) => (m.data as { m?: string }).m ?? m.id).join(',')}`);
      try {
        for (const m of taken) dl.taken(agent, m.id, clock.now(), m.expiresAt);
      } catch (err) {
        w.fail(err);
      }
      return taken;
    },
    sentRecorded: () => q.sentRecorded(),
    requeue: (agent, ids) => q.requeue(agent, ids),
    settle: (agent, results) => q.settle(agent, results),
    onQueued: (l) => q.onQueued(l),
    stats: () => q.stats(),
    close: () => q.close(),
  };
}

/** A handler whose calls and outcomes go into the trace. */
function traced(h: Handler, w: WorldContext): Handler {
  const idOf = (data: unknown): string => (data as { id: string }).id;
  const outcome = (r: HandlerResult): string => (r.ok ? 'ok' : `${r.code}${r.retryable ? ` retry ${r.retryAfterMs}` : ''}`);
  return {
    kind: h.kind,
    ...(h.inflightMax !== undefined ? { inflightMax: h.inflightMax } : {}),
    handle: (p) => {
      w.trace.event(h.kind, `call ${idOf(p.data)} seq ${p.seq} ${p.target}`);
      return h.handle(p).then((r) => {
        w.trace.event(h.kind, `${outcome(r)} ${idOf(p.data)}`);
        if (r.ok) w.oracle.fileHandlerOk.add(idOf(p.data));
        return r;
      });
    },
    close: () => h.close(),
  };
}
