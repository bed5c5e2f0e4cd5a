/**
 * A device's end of the downlink in the simulator (issue 12): the real DownlinkInbox with the real
 * answered log on the device's disk (beside the store), and a simulated consumer that stands for the
 * microcontroller or a local subscriber. The consumer records every message handed to it (the
 * oracle's view), and answers accept or refuse, sometimes slowly, sometimes only at its time-out
 * (a hung consumer: DOWNLINK_TIMEOUT, as the real ones answer). Everything the inbox does is
 * watched through thin wrappers: DOWN frames as they arrive, verdicts as they become durable,
 * DOWN_ACKs as they go.
 */
import { DurableAnsweredLog } from '../../agent/downlink/answered-log.js';
import { DownlinkInbox } from '../../agent/downlink/inbox.js';
import type { AnsweredLog, DownlinkConsumer, DownlinkMessage, Verdict } from '../../agent/downlink/consumer.js';
import type { LinkDownlink } from '../../agent/link/link.js';
import type { Files } from '../../common/files.js';
import type { Log } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { compilePattern } from '../../protocol/pattern.js';
import type { WorldContext } from './context.js';
import type { DownData, DownOracle } from './downlink-oracle.js';
import { Violation } from './oracle.js';
import type { Rng } from './rng.js';
import type { SimClock } from './sim-clock.js';

/** Targets the application sends to: two routed to the consumer, one with no route (DOWNLINK_NO_ROUTE). */
/** Where the agent keeps its answered log: beside the store, not in it (a wiped store leaves it). */
export const answeredDir = '/dev/downlink';

export const downTargets = ['cmd/interval', 'cmd/threshold', 'cfg/name', 'nowhere/x'] as const;
const routes = ['cmd/#', 'cfg/+'].map(compilePattern);

export interface DeviceDownlinkOptions {
  /** the window HELLO names */
  messagesMax: number;
  bytesMax: number;
  /** the agent's largest message data (beyond it DOWNLINK_INVALID) */
  dataBytesMax: number;
  /** answered ids remembered (at least messagesMax, as the config requires) */
  dedupIdsMax: number;
  refuseP: number;
  slowP: number;
  slowMsMax: number;
  /** the consumer's own time-out: a hung consumer answers DOWNLINK_TIMEOUT then */
  timeoutMs: number;
}

/** Where a `consumer-crash` fault kills the agent, around one message with its consumer. */
export type CrashPoint = 'handed' | 'verdict' | 'record-io' | 'recorded';

export interface DeviceHooks {
  /** the agent process dies now (and starts again later) */
  crash(how: 'kill' | 'power', restartMs: number): void;
  /** the agent dies just before its `steps`-th disk step from now */
  crashMidIo(steps: number, how: 'kill' | 'power', restartMs: number): void;
}

export class DeviceDownlink {
  /** a `consumer-hang` fault: each message answers only at the time-out with this probability */
  hangP = 0;
  /** a `down-ack-loss` fault: each DOWN_ACK is lost with this probability, its connection cut as it goes */
  ackLossP = 0;
  /** a `consumer-crash` fault, armed for the next message handed on */
  crashArm: { at: CrashPoint; how: 'kill' | 'power'; restartMs: number } | null = null;
  /** the liveness phase: the consumer answers at once and accepts */
  calm = false;

  constructor(
    private readonly w: WorldContext & { dl: DownOracle },
    private readonly agent: string,
    readonly o: DeviceDownlinkOptions,
    private readonly rng: Rng,
    private readonly hooks: DeviceHooks,
  ) {}

  /** The inbox of one agent process (`alive` while that process lives), as the link takes it, with the real answered log under `answeredDir`. */
  async open(clock: SimClock, files: Files, log: Log, alive: () => boolean): Promise<LinkDownlink> {
    const answered = this.watchedLog(await DurableAnsweredLog.open({ dir: answeredDir, files, idsMax: this.o.dedupIdsMax, log }), alive);
    const consumer = this.consumer(clock, alive);
    const inbox = new DownlinkInbox(
      { messagesMax: this.o.messagesMax, bytesMax: this.o.bytesMax, limits: { dataBytesMax: this.o.dataBytesMax, dataDepthMax: 8 } },
      { route: (t) => (routes.some((r) => r(t)) ? consumer : undefined), answered, clock, log },
    );
    const { w, agent } = this;
    return {
      hello: () => inbox.hello(),
      open: (session) =>
        inbox.open({
          send: (f: Frame) => {
            // A process killed in the middle of a step (a fault in a promise chain) sends nothing more.
            if (!alive()) return;
            if (f.t === FrameType.DOWN_ACK) {
              if (this.ackLossP > 0 && this.rng.chance(this.ackLossP)) {
                w.trace.event('fault', `${agent}'s DOWN_ACK of ${f.results.length} lost, its connection cut`);
                return session.close(Object.assign(new Error('simulated: connection lost with a DOWN_ACK'), { code: 'ECONNRESET' }));
              }
              w.trace.event('downlink', `${agent} DOWN_ACK ${f.results.map((r) => `${r.id.slice(0, 6)}:${r.ok ? 'ok' : r.code}`).join(',')}`);
              this.check(() => w.dl.answers(agent, f.results));
            }
            session.send(f);
          },
          close: (err) => {
            if ((err as { code?: string }).code === ErrorCode.CREDIT_EXCEEDED && alive()) this.w.fail(new Violation('down-credit', `${agent}'s inbox ended a session: ${err.message}`));
            session.close(err);
          },
        }),
      onDown: (f) => {
        if (alive()) for (const m of f.messages) this.check(() => w.dl.arrived(agent, m, clock.now()));
        inbox.onDown(f);
      },
      sessionEnded: () => inbox.sessionEnded(),
    };
  }

  private check(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.w.fail(err);
    }
  }

  /** The answered log, watched: when a verdict is durable (or failed to be), for the duplicate checker's window. */
  private watchedLog(log: AnsweredLog, alive: () => boolean): AnsweredLog {
    const { w, agent } = this;
    return {
      get: (id) => log.get(id),
      get size() {
        return log.size;
      },
      close: () => log.close(),
      record: (r) =>
        log.record(r).then(
          () => {
            if (!alive()) return;
            w.dl.recorded(agent, r.id);
            if (this.crashArm?.at === 'recorded') this.crashNow();
          },
          (err: unknown) => {
            if (alive()) w.dl.recordFailed(agent, r.id);
            throw err;
          },
        ),
    };
  }

  private crashNow(): void {
    const arm = this.crashArm!;
    this.crashArm = null;
    this.w.trace.event('fault', `${this.agent} crashes (${arm.how}) with a message at its consumer: ${arm.at}`);
    this.hooks.crash(arm.how, arm.restartMs);
  }

  private consumer(clock: SimClock, alive: () => boolean): DownlinkConsumer {
    const { w, agent, o, rng } = this;
    const never = new Promise<Verdict>(() => undefined);
    return {
      deliver: (m: DownlinkMessage): Promise<Verdict> => {
        // A dead process hands nothing on (its inbox may still run a step on a stand-in's promise).
        if (!alive()) return never;
        const name = (m.data as unknown as DownData).m;
        w.trace.event('consumer', `${agent} takes ${name} (${m.id.slice(0, 6)}) ${m.target}`);
        this.check(() => w.dl.handing(agent, m, clock.now()));
        if (this.crashArm?.at === 'handed') {
          this.crashNow();
          return never;
        }
        const verdict: Verdict = this.calm || !rng.chance(o.refuseP) ? { ok: true } : { ok: false, code: ErrorCode.DOWNLINK_REFUSED, reason: `err ${name} refused by the simulated consumer` };
        const hang = !this.calm && rng.chance(this.hangP);
        const delayMs = hang ? o.timeoutMs : !this.calm && rng.chance(o.slowP) ? rng.int(1, o.slowMsMax) : 0;
        const answer = hang ? { ok: false as const, code: ErrorCode.DOWNLINK_TIMEOUT, reason: `no answer in ${o.timeoutMs} ms` } : verdict;
        const done = (): Verdict => {
          w.trace.event('consumer', `${agent} answers ${name}: ${answer.ok ? 'ok' : answer.code}`);
          w.dl.verdict(m.id, answer);
          const arm = this.crashArm;
          if (arm?.at === 'verdict') {
            this.crashNow();
            return answer;
          } else if (arm?.at === 'record-io') {
            this.crashArm = null;
            w.trace.event('fault', `${agent} crashes (${arm.how}) in the record of its verdict on ${name}`);
            this.hooks.crashMidIo(rng.int(1, 4), arm.how, arm.restartMs);
          }
          return answer;
        };
        if (delayMs === 0) return Promise.resolve(done());
        return new Promise((resolve) => clock.setTimeout(() => alive() && resolve(done()), delayMs));
      },
    };
  }
}
