/**
 * One simulated world per seed: a gateway host, one to three devices, the network between them
 * and a downstream backend, all on simulated time. `runSeed` runs a fault phase (producers
 * append, faults strike at random), then a liveness phase (faults stop, everything restarts and
 * must drain, and every store must take appends again), checking the guarantees after every
 * step, and returns the first violation with the trace's hash.
 *
 * A step: let the real code run until nothing is pending (no setImmediate, hence no microtask:
 * the simulated disk completes its operations through setImmediate), check, then move time to the
 * next timer and fire it. No real time, no Math.random: the same seed gives the same trace.
 *
 * With the downlink (issue 12), an application queues messages at the gateway for the agents
 * during the fault phase, each agent hands them to a simulated consumer, and the downlink's
 * checkers (downlink-oracle.ts) run as messages move; the liveness phase also waits for every
 * queued message to settle and one probe per agent to be acked.
 */
import { checkCredit, checkFileOutput, checkNothingLost, hostileAgentId, outputBytes, rawOutputs, readOutputs, CallOrder } from './checkers.js';
import type { DiskFaultsOn, WorldContext } from './context.js';
import { Device, type DeviceTransport } from './device.js';
import { SimApplication } from './downlink-app.js';
import type { DeviceDownlinkOptions } from './downlink-device.js';
import { DownOracle } from './downlink-oracle.js';
import { calmDownstream, SimDownstream } from './downstream.js';
import { faultKinds, inject, type FaultKind } from './faults.js';
import { downstreamPipelinedInflightMax, fileOutputs, GatewayHost, routeTargets } from './gateway-host.js';
import type { HostileAgent } from './hostile-agent.js';
import { Oracle, Violation } from './oracle.js';
import { Rng } from './rng.js';
import { SimTime } from './sim-clock.js';
import { noFaults } from './sim-disk.js';
import { SimHttp } from './sim-http.js';
import { SimNet } from './sim-net.js';
import { Trace } from './trace.js';

export interface RunOptions {
  seed: number;
  /** fault kinds that may be injected (default: all) */
  faults?: readonly FaultKind[];
  verbose?: boolean;
  /** print trace lines here (verbose) */
  write?: (line: string) => void;
  /** simulated length of the fault phase */
  faultPhaseMs?: number;
  /** once faults stop, everything must drain within this much simulated time */
  drainMsMax?: number;
  /** checkers left out (only 'handler-inflight' and 'down-state' can be) */
  skipCheckers?: string[];
  /** which disks disk faults may hit (default any) */
  diskFaultsOn?: DiskFaultsOn;
  /** create the gateway's files durably at install (hides the unsynced directory entry of a new file) */
  precreateFiles?: boolean;
  /**
   * Agents may use the HTTP long-poll carrier (issue 11): each device gets TCP, long-poll, or a
   * choice of both (TCP preferred), from an rng of its own, so a seed's other draws stay as they
   * were. Off: every agent on TCP, as every seed found before issue 11 ran.
   */
  longpoll?: boolean;
  /**
   * The downlink (issue 12): an application queues messages for the agents, which hand them to
   * simulated consumers. Its draws come from an rng of its own, so a seed's world and fault
   * schedule stay as they were; off: no downlink, every seed runs as before issue 12.
   */
  downlink?: boolean;
}

export interface RunResult {
  seed: number;
  ok: boolean;
  violation?: Violation;
  hash: string;
  events: number;
  steps: number;
  simMs: number;
  appends: number;
  resolved: number;
  faults: string[];
  /** the downlink's counts (with the downlink on) */
  downlink?: DownOracle['counts'];
  /** the latest trace lines (all of them with verbose) */
  tail: string[];
}

const queuePacketsMax = 16;

/** Runs the real code until no setImmediate is pending; throws if it never settles (a busy loop). */
async function settle(): Promise<void> {
  for (let turns = 0; turns < 100_000; turns++) {
    await new Promise<void>((r) => setImmediate(r));
    if (!process.getActiveResourcesInfo().includes('Immediate')) return;
  }
  throw new Violation('liveness', 'the code never settles: setImmediate keeps being scheduled (a busy loop)');
}

export async function runSeed(opts: RunOptions): Promise<RunResult> {
  const seed = opts.seed >>> 0;
  const rng = new Rng(seed);
  const time = new SimTime();
  const trace = new Trace({ now: () => time.now(), verbose: opts.verbose ?? false, ...(opts.write ? { write: opts.write } : {}), keep: opts.verbose ? 0 : 80 });
  const enabled = new Set<FaultKind>(opts.faults ?? faultKinds);
  const oracle = new Oracle();
  const survivedCutUnacked = (id: string): boolean => oracle.survivedCutUnacked.has(id);
  const order = new CallOrder((target) => (target.startsWith('down/pipe/') ? downstreamPipelinedInflightMax : 1), !(opts.skipCheckers ?? []).includes('handler-inflight'));
  let failure: Violation | null = null;
  const fail = (err: unknown): void => {
    if (failure) return;
    failure = err instanceof Violation ? err : new Violation('crash', `${(err as Error)?.stack ?? String(err)}`);
    trace.event('violation', failure.message);
  };
  const net = new SimNet(time, rng.fork('net'), trace, { latencyMsMin: 1, latencyMsMax: rng.pick([2, 10, 40]), frameBytesMax: 64 * 1024, connectTimeoutMs: 3000 });
  // Long-poll's draws come from an rng of their own: with it off, a seed runs as before issue 11.
  const lpRng = new Rng((seed ^ 0x4c50_4f4c) >>> 0);
  const http = new SimHttp(net, time, lpRng.fork('http'), trace);
  // So do the downlink's: with it off, a seed runs as before issue 12.
  const dlRng = new Rng((seed ^ 0x444c_4e4b) >>> 0);
  const dl = opts.downlink ? new DownOracle(new Set(opts.skipCheckers ?? [])) : null;
  const w: WorldContext = {
    time, rng: rng.fork('world'), trace, net, http, oracle, dl, dlRng, order, jitter: { earlyMsMax: 2, lateMsMax: rng.pick([5, 50]) }, fail, diskFaultsOn: opts.diskFaultsOn ?? 'any',
    downstream: null as unknown as SimDownstream,
    later: (delayMs, fn, owner = 'world') => void time.at(time.now() + delayMs, fn, owner),
  };
  w.downstream = new SimDownstream(rng.fork('downstream'), oracle, order, trace, fail);

  const gateway = new GatewayHost(w, {
    agents: ['a1', 'a2', 'a3', hostileAgentId],
    limits: {
      helloTimeoutMs: 2000, peerTimeoutMs: 4000, pingIntervalMs: 1000, sessionQueuePacketsMax: queuePacketsMax, sessionQueueBytesMax: 16 * 1024,
      targetQueuePacketsMax: 8, targetSlowMs: 300, busyRetryAfterMs: 200, retriesInPlace: rng.int(0, 3), retryInPlaceMsMax: 500, packetBytesMax: 4096, agentsMax: 8,
    },
    dispatchLogCompactBytes: rng.pick([1024, 4096, 1 << 20]),
    fileRetryAfterMs: rng.pick([50, 200, 1000]),
    rotateBytes: rng.pick([1024, 4096]),
    ...(dl ? { downlink: { queueMessagesMax: dlRng.pick([8, 32, 1000]), queueBytesMax: dlRng.pick([16 * 1024, 256 * 1024]), fullPolicy: dlRng.pick(['reject', 'drop-oldest'] as const),
      // Every final state kept, for the checkers; compacted often, which the simulated disk's cost of a long file asks for anyway.
      historyMessagesMax: 100_000, compactBytes: dlRng.pick([8 * 1024, 64 * 1024]) } } : {}),
  });
  const allTargets = Object.values(routeTargets).flat();
  const devices = Array.from({ length: rng.int(1, 3) }, (_, i) => {
    const targets = allTargets.filter(() => rng.chance(0.5));
    if (targets.length === 0) targets.push(rng.pick(allTargets));
    const bytesMax = rng.pick([12 * 1024, 16 * 1024, 32 * 1024]);
    const transport: DeviceTransport = opts.longpoll ? lpRng.pick(['tcp', 'longpoll', 'longpoll', 'choice', 'choice'] as const) : 'tcp';
    return new Device(w, {
      id: `a${i + 1}`, transport, targets, bytesMax, segmentBytes: 4096, fullPolicy: rng.pick(['reject', 'drop-oldest'] as const), ackFlushMs: rng.pick([50, 500]),
      produceEveryMsMax: rng.pick([400, 1000, 2000]),
      link: {
        inflightPacketsMax: rng.int(4, 24), framePacketsMax: rng.int(1, 6), frameBytesMax: 8 * 1024, retryPacketsMax: rng.int(2, 12), retryBytesMax: 16 * 1024,
        reconnectDelayMsMin: 50, reconnectDelayMsMax: 3000, helloTimeoutMs: 2000, pingIntervalMs: 1000, peerTimeoutMs: 4000,
      },
      ...(dl ? { downlink: downlinkOptions(dlRng) } : {}),
    });
  });
  trace.event('world', `seed ${seed}: ${devices.map((d) => `${d.id} ${d.o.transport} ${d.o.fullPolicy} ${d.o.bytesMax}B [${d.o.targets.join(' ')}]`).join('; ')}`);

  const app = dl ? new SimApplication({ ...w, dl }, dlRng.fork('app'), gateway, devices.map((d) => d.id), { everyMsMax: dlRng.pick([200, 800, 3000]), ttlP: dlRng.pick([0.1, 0.4]) }) : null;
  if (dl) {
    const q = gateway.o.downlink!;
    trace.event('world', `downlink: queues ${q.queueMessagesMax} messages ${q.queueBytesMax}B ${q.fullPolicy} compacted at ${q.compactBytes}B; ${devices.map((d) => `${d.id} window ${d.dl!.o.messagesMax}/${d.dl!.o.bytesMax}B dedup ${d.dl!.o.dedupIdsMax}`).join('; ')}`);
  }

  // Faults at random moments of the fault phase.
  const faultPhaseMs = opts.faultPhaseMs ?? 15_000;
  const kinds = faultKinds.filter((k) => enabled.has(k));
  const injected: string[] = [];
  const hostiles: HostileAgent[] = [];
  const faultCount = kinds.length === 0 ? 0 : rng.int(2, 12);
  for (let i = 0; i < faultCount; i++) {
    const at = rng.int(0, faultPhaseMs);
    const kind = rng.pick(kinds);
    w.later(at, () => {
      injected.push(kind);
      trace.event('fault', kind);
      inject(w, { devices, gateway, hostiles, app }, kind);
    }, 'faults');
  }
  if (enabled.has('downstream-fail')) w.downstream.mode.failP = rng.pick([0, 0, 0.02, 0.1]);

  // The liveness phase: no more faults, everything up, producers quiet; then probes.
  const state = { phase: 'faults' as 'faults' | 'liveness' };
  const drainMsMax = opts.drainMsMax ?? 10 * 60_000;
  const probes: Probe[] = [];
  w.later(faultPhaseMs, () => {
    state.phase = 'liveness';
    trace.event('world', 'faults stop');
    time.cancelOwner('faults');
    for (const h of hostiles) h.stop();
    net.heal();
    http.heal();
    net.opts.latencyMsMin = 1;
    net.opts.latencyMsMax = 5;
    w.downstream.mode = { ...calmDownstream };
    for (const d of [gateway.disk, ...devices.map((x) => x.disk)]) Object.assign(d.faults, noFaults);
    gateway.disarm();
    gateway.start();
    for (const d of devices) {
      d.disarm();
      d.producing = false;
      if (d.dl) Object.assign(d.dl, { calm: true, hangP: 0, ackLossP: 0, crashArm: null });
      d.start();
    }
    app?.stop();
    // Each store must take an append again (a wedged store refuses them forever).
    for (const d of devices) {
      const probe: Probe = { device: d, done: false, refusal: null };
      probes.push(probe);
      const tryProbe = (): void => {
        if (d.state !== 'running') return w.later(500, tryProbe);
        void d.append(d.o.targets[0]!, true).then((rec) => {
          if (rec.state === 'resolved') probe.done = true;
          else {
            probe.refusal = rec.code ?? null;
            w.later(1000, tryProbe);
          }
        });
      };
      w.later(1000, tryProbe);
    }
  });

  const onCrash = (err: unknown): void => fail(err);
  process.on('unhandledRejection', onCrash);
  let steps = 0;
  let checkedBytes = -1;
  try {
    await gateway.install(opts.precreateFiles ?? false);
    for (const d of devices) await d.install();
    gateway.start();
    for (const d of devices) d.start();
    app?.start();
    const livenessDeadline = faultPhaseMs + drainMsMax + time.now();
    for (;;) {
      await settle();
      steps++;
      if (failure) break;
      checkCredit(gateway.core?.sessions.values() ?? [], queuePacketsMax);
      // After every step in which the outputs changed (their size: the file handler only appends and cuts back;
      // not the whole disk's, which the dispatch log and the downlink queues change at most steps).
      const usedBytes = outputBytes(gateway.disk, fileOutputs);
      if (usedBytes !== checkedBytes) {
        checkedBytes = usedBytes;
        checkFileOutput(readOutputs(gateway.disk, fileOutputs, 'current'), 'current', survivedCutUnacked);
      }
      if (state.phase === 'liveness' && drained(devices, probes) && (!app || downlinkDrained(gateway, app))) break;
      if (time.now() > livenessDeadline) throw new Violation('liveness', `not drained ${drainMsMax / 60_000} simulated minutes after the faults stopped: ${describeBacklog(devices, probes)}${describeDownlink(gateway, app)}`);
      if (!time.fireNext()) throw new Violation('liveness', `nothing left to happen and not drained: ${describeBacklog(devices, probes)}${describeDownlink(gateway, app)}`);
    }
    if (!failure) {
      for (const d of devices) d.countDrops();
      const current = readOutputs(gateway.disk, fileOutputs, 'current');
      const durable = readOutputs(gateway.disk, fileOutputs, 'durable');
      checkFileOutput(current, 'current', survivedCutUnacked);
      checkFileOutput(durable, 'durable', survivedCutUnacked);
      checkNothingLost(oracle, durable, current, rawOutputs(gateway.disk, fileOutputs), (agent) => devices.find((d) => d.id === agent)!.disk.counts.bitFlips > 0);
      const queues = gateway.core?.downlink;
      if (dl && queues) dl.checkSettled((agent, id) => queues.get(agent, id), devices.map((d) => d.id));
    }
  } catch (err) {
    fail(err);
  } finally {
    process.off('unhandledRejection', onCrash);
  }
  const hash = trace.digest();
  // Stop the world's remaining code: every process dies (nothing of this seed runs into the next).
  try {
    order.stop();
    for (const h of hostiles) h.stop();
    gateway.kill('kill');
    for (const d of devices) d.kill('kill');
    await settle();
  } catch {
    /* the run is over: what its dead code does no longer counts */
  }
  const all = [...oracle.appends.values()];
  const v = failure as Violation | null;
  return {
    seed, ok: v === null, ...(v ? { violation: v } : {}), hash, events: trace.events, steps, simMs: time.now() - 1_700_000_000_000,
    appends: all.length, resolved: all.filter((r) => r.state === 'resolved').length, faults: injected, tail: trace.tail(),
    ...(dl ? { downlink: { ...dl.counts } } : {}),
  };
}

/** A device's downlink: its window, answered log and consumer, from the downlink's own draws. */
function downlinkOptions(rng: Rng): DeviceDownlinkOptions {
  const messagesMax = rng.pick([1, 2, 4, 32]);
  return {
    messagesMax, bytesMax: rng.pick([1024, 8 * 1024, 32 * 1024]), dataBytesMax: rng.pick([4096, 16 * 1024]),
    // The least the config allows (dedupIdsMax >= messagesMax), or room to spare.
    dedupIdsMax: rng.pick([messagesMax, 4 * messagesMax, 4096]),
    refuseP: rng.pick([0, 0.1, 0.5]), slowP: rng.pick([0.05, 0.3]), slowMsMax: rng.pick([300, 3000]), timeoutMs: rng.pick([500, 5000]),
  };
}

/** Every message queued for the devices settled at the gateway, and every probe acked. */
function downlinkDrained(gateway: GatewayHost, app: SimApplication): boolean {
  const q = gateway.core?.downlink;
  if (gateway.state !== 'running' || !q || !app.probesAcked()) return false;
  return app.agents.every((a) => q.list(a, { state: 'queued', limit: 1 }).length === 0 && q.list(a, { state: 'delivered', limit: 1 }).length === 0);
}

function describeDownlink(gateway: GatewayHost, app: SimApplication | null): string {
  if (!app) return '';
  const q = gateway.core?.downlink;
  if (!q) return '; downlink: no gateway';
  const open = app.agents.map((a) => {
    const live = [...q.list(a, { state: 'queued' }), ...q.list(a, { state: 'delivered' })];
    return `${a} ${live.length} unsettled${live.length > 0 ? ` (${live.slice(0, 4).map((m) => `${(m.data as { m?: string }).m ?? m.id} ${m.state}`).join(', ')})` : ''}`;
  });
  return `; downlink: ${open.join(', ')}; ${app.describeProbes()}`;
}

interface Probe {
  device: Device;
  done: boolean;
  /** the code of the last refusal */
  refusal: string | null;
}

function drained(devices: Device[], probes: Probe[]): boolean {
  if (probes.length < devices.length || probes.some((p) => !p.done)) return false;
  return devices.every((d) => {
    const s = d.store?.stats();
    return d.state === 'running' && s !== undefined && s.backlogPackets === 0 && s.ackedSeq === s.lastSeq;
  });
}

function describeBacklog(devices: Device[], probes: Probe[]): string {
  return devices
    .map((d) => {
      const s = d.store?.stats();
      const probe = probes.find((p) => p.device === d);
      const l = d.link?.stats();
      const notes: string[] = [];
      if (probe && !probe.done) notes.push(`probe refused${probe.refusal ? ` with ${probe.refusal}` : ''}`);
      if (s && l && s.ackedSeq < s.lastSeq) {
        // Nothing in flight nor waiting, yet not acked: a seq the gateway never got (never written?).
        if (l.inflightPackets === 0 && l.retryPackets === 0) notes.push(`a phantom seq: ackedSeq stays below lastSeq with nothing in flight`);
        else if (l.inflightPackets > 0) notes.push(`${l.inflightPackets} packets stuck in the gateway (sent, never acked nor nacked)`);
      }
      return `${d.id} ${d.state}${s ? ` lastSeq ${s.lastSeq} ackedSeq ${s.ackedSeq} backlog ${s.backlogPackets}` : ''}${l ? ` link ${l.state} inflight ${l.inflightPackets} retrying ${l.retryPackets}` : ''}${notes.length ? ` (${notes.join('; ')})` : ''}`;
    })
    .join('; ');
}
