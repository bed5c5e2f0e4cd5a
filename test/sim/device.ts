/**
 * A simulated device: its own SimDisk, and on it the real agent (SegmentStore, Link) with a
 * local producer that appends packets. It can be killed (its timers and IO stop dead, its
 * connections reset), lose power (its disk loses what was not synced; peers hear nothing), have
 * its store wiped, and start again on the same disk. With the downlink on (issue 12) the agent
 * also runs the real DownlinkInbox with a simulated consumer (downlink-device.ts).
 */
import { gatewayChoice } from '../../agent/link/gateway-choice.js';
import { Link, type LinkDownlink, type LinkOptions } from '../../agent/link/link.js';
import { longPollDialer } from '../../agent/link/longpoll-client.js';
import type { Log } from '../../common/log.js';
import type { Dialer } from '../../protocol/transport.js';
import { SegmentStore } from '../../agent/store/segment-store.js';
import type { FullPolicy } from '../../agent/store/store.js';
import type { WorldContext } from './context.js';
import { simLog } from './context.js';
import { DeviceDownlink, type DeviceDownlinkOptions } from './downlink-device.js';
import { simToken } from './gateway-host.js';
import { Violation, type AppendRecord } from './oracle.js';
import type { Rng } from './rng.js';
import type { SimClock } from './sim-clock.js';
import { SimDisk } from './sim-disk.js';

export const storeDir = '/dev/store';

/** The agent's long-poll time-outs, scaled to the simulator's seconds-long faults (the gateway holds 5 s: gateway-host.ts). */
const simRequestPolicy = { responseTimeoutMs: 8000, answerTimeoutMs: 1500 };
/** The transport choice's timings, scaled likewise (defaults: 10 s and 5 min). */
const simChoice = { fallbackAfterMs: 2000, probeIntervalMs: 10_000 };

/** How the agent reaches the gateway: the TCP tunnel, HTTP long-poll, or both (TCP preferred, long-poll the fallback). */
export type DeviceTransport = 'tcp' | 'longpoll' | 'choice';

export interface DeviceOptions {
  id: string;
  transport: DeviceTransport;
  targets: string[];
  bytesMax: number;
  segmentBytes: number;
  fullPolicy: FullPolicy;
  ackFlushMs: number;
  /** a producer tick every this many ms, at most */
  produceEveryMsMax: number;
  link: Omit<LinkOptions, 'agentId'>;
  /** the downlink's window and consumer (issue 12); absent: the agent takes no downlink */
  downlink?: DeviceDownlinkOptions;
}

export type DeviceState = 'off' | 'starting' | 'running';

export class Device {
  readonly disk: SimDisk;
  state: DeviceState = 'off';
  /** the agent process's incarnation: each start is a new process on the same disk */
  private inc = 0;
  /** a wipe starts a new store lineage: seqs may start over */
  lineage = 1;
  producing = true;
  clock: SimClock | null = null;
  store: SegmentStore | null = null;
  link: Link | null = null;
  /** the downlink's end on this device; null without the downlink */
  readonly dl: DeviceDownlink | null = null;
  private readonly rng: Rng;

  constructor(private readonly w: WorldContext, readonly o: DeviceOptions) {
    this.rng = w.rng.fork(`device ${o.id}`);
    this.disk = new SimDisk({ rng: this.rng.fork('disk').fn });
    if (o.downlink && w.dl) {
      const hooks = {
        crash: (how: 'kill' | 'power', restartMs: number) => {
          this.kill(how);
          w.later(restartMs, () => this.start());
        },
        crashMidIo: (steps: number, how: 'kill' | 'power', restartMs: number) => this.crashMidIo(steps, how, restartMs),
      };
      this.dl = new DeviceDownlink({ ...w, dl: w.dl }, o.id, o.downlink, w.dlRng.fork(`device ${o.id}`), hooks);
    }
  }

  /** the highest seq a resolved append of this lineage got */
  private highestSeq = 0;
  /** what the latest store open found, for the seq-unique checker's message */
  private lastOpen: { lastSeq: number; tailBytesCut: number; highestBefore: number } | null = null;

  /** Kills the agent (or cuts the power) just before its `steps`-th disk step from now: a crash inside a write, a roll, a recovery. */
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

  get id(): string {
    return this.o.id;
  }

  private get procName(): string {
    return `${this.o.id}#${this.inc}`;
  }

  /** What installing the agent leaves on the device's disk, durably: the store's directory. */
  async install(): Promise<void> {
    await this.disk.process('install').mkdir(storeDir);
    this.disk.kill('install');
    this.disk.syncAll();
  }

  /** Starts the agent process; a start that fails (I/O errors at recovery) is retried a second later, as a supervisor would. */
  start(): void {
    if (this.state !== 'off') return;
    this.inc++;
    const inc = this.inc;
    const name = this.procName;
    const { w, o } = this;
    this.state = 'starting';
    w.trace.event('agent', `${name} starts`);
    const clock = w.time.view(name, this.rng.fork(name), w.jitter);
    this.clock = clock;
    const files = this.disk.process(name);
    const log = simLog(w.trace, name);
    const failed = (err: unknown): void => {
      if (this.inc !== inc) return;
      w.trace.event('agent', `${name} failed to start: ${(err as { code?: string }).code ?? (err as Error).message}`);
      // The process exits: its timers, files and locks go with it.
      clock.kill();
      this.disk.kill(name);
      this.stopped();
      w.later(1000, () => this.start());
    };
    SegmentStore.open({
      dir: storeDir, files, clock, log, sync: 'always', segmentBytes: o.segmentBytes, bytesMax: o.bytesMax, fullPolicy: o.fullPolicy, ackFlushMs: o.ackFlushMs,
    }).then(
      (store) => {
        if (this.inc !== inc) return;
        const s = store.stats();
        w.trace.event('agent', `${name} store open: lastSeq ${s.lastSeq} ackedSeq ${s.ackedSeq} backlog ${s.backlogPackets} tailBytesCut ${s.recovery.tailBytesCut} damaged ${s.recovery.damagedSegments}`);
        const run = (downlink: LinkDownlink | undefined): void => {
          this.store = store;
          this.lastOpen = { lastSeq: s.lastSeq, tailBytesCut: s.recovery.tailBytesCut, highestBefore: this.highestSeq };
          this.state = 'running';
          this.link = new Link({ ...o.link, agentId: o.id, token: simToken(o.id) }, { store, dial: this.dialer(clock, log), clock, rng: this.rng.fork(`${name} link`).fn, log, ...(downlink ? { downlink } : {}) });
          this.link.start();
          this.produceLater(clock, inc);
        };
        // Without the downlink the agent starts as it did before issue 12 (no step between the store and the link).
        if (!this.dl) return run(undefined);
        this.dl.open(clock, files, log, () => this.inc === inc).then((downlink) => {
          if (this.inc === inc) run(downlink);
        }, failed);
      },
      failed,
    );
  }

  private produceLater(clock: SimClock, inc: number): void {
    clock.setTimeout(() => {
      if (this.inc !== inc || !this.store) return;
      if (this.producing) {
        const count = this.rng.int(1, 3);
        for (let i = 0; i < count; i++) this.append(this.rng.pick(this.o.targets));
      }
      this.produceLater(clock, inc);
    }, this.rng.int(10, this.o.produceEveryMsMax));
  }

  /** One append through the real store; the oracle records what it promised. */
  append(target: string, probe = false): Promise<AppendRecord> {
    const { w } = this;
    const store = this.store;
    const rec = w.oracle.append(this.o.id, target, this.lineage, probe);
    if (!store) {
      w.oracle.rejected(rec, 'NO_AGENT');
      return Promise.resolve(rec);
    }
    const pad = 'x'.repeat(this.rng.int(0, 160));
    const clock = this.clock!;
    return store.append({ target, ts: clock.now(), data: { id: rec.id, pad } }).then(
      (p) => {
        w.trace.event('append', `${rec.id} ${target} seq ${p.seq}`);
        try {
          w.oracle.resolved(rec, p.seq);
          this.highestSeq = Math.max(this.highestSeq, p.seq);
        } catch (err) {
          const o = this.lastOpen;
          if (err instanceof Violation && o && o.lastSeq < o.highestBefore) {
            const c = this.disk.counts;
            const disk = `its disk: ${c.shortWrites} short writes, ${c.enospc} ENOSPC, ${c.bitFlips} bit flips on read`;
            w.fail(new Violation(err.checker, `${err.detail}; the store had reopened with lastSeq ${o.lastSeq} after seq ${o.highestBefore} had resolved (${o.tailBytesCut > 0 ? `it cut a torn tail of ${o.tailBytesCut} bytes` : o.lastSeq === 0 ? 'the whole store was gone' : 'no torn tail cut'}; ${disk})`));
          } else w.fail(err);
        }
        return rec;
      },
      (err: unknown) => {
        const code = (err as { code?: string }).code ?? 'ERROR';
        w.trace.event('append', `${rec.id} ${target} refused ${code}`);
        w.oracle.rejected(rec, code);
        return rec;
      },
    );
  }

  /** The real dialers of agent/main.ts, over the simulated network and HTTP path. */
  private dialer(clock: SimClock, log: Log): Dialer {
    const { w, o } = this;
    const tcp = w.net.dialer(o.id, clock);
    if (o.transport === 'tcp') return tcp;
    const longpoll = longPollDialer({ post: w.http.poster(o.id, clock), agentId: o.id, clock, log, policy: simRequestPolicy });
    if (o.transport === 'longpoll') return longpoll;
    return gatewayChoice([{ url: 'tcp://gateway:7800', dial: tcp }, { url: 'http://gateway:7480', dial: longpoll }], { ...simChoice, clock, log });
  }

  /** The agent process dies: a kill (the disk keeps what was written) or a power cut of the device. */
  kill(how: 'kill' | 'power'): void {
    const { w } = this;
    w.trace.event('fault', `${this.procName} ${how === 'kill' ? 'killed' : 'loses power'} (${this.state})`);
    this.countDrops();
    this.w.dl?.died(this.o.id);
    this.clock?.kill();
    if (how === 'power') this.disk.powerCut();
    else this.disk.kill(this.procName);
    w.net.agentDied(this.o.id, how);
    w.http.agentDied(this.o.id, how);
    this.stopped();
  }

  /** The store directory is deleted while the agent is down (a replaced SD card, a user's rm -rf). */
  wipe(): void {
    if (this.state !== 'off') this.kill('kill');
    this.w.trace.event('fault', `${this.o.id} store wiped`);
    this.disk.wipe(storeDir);
    this.w.oracle.wipe(this.o.id, this.lineage);
    this.lineage++;
    this.highestSeq = 0;
  }

  /** What this store dropped and counted, added to the oracle before the store goes away. */
  countDrops(): void {
    if (!this.store) return;
    const s = this.store.stats();
    const d = s.dropped;
    this.w.oracle.addDrops(this.o.id, d.oldest + d.priority + d.ttl, d.corrupt, s.deadLetters);
  }

  private stopped(): void {
    this.inc++; // whatever the dead process still had running is now someone else's past
    this.state = 'off';
    this.store = null;
    this.link = null;
    this.clock = null;
  }
}
