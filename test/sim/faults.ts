/**
 * The fault model of the simulator: what can go wrong, chosen from the seed. Each kind has a
 * name (for `--faults` and for the CI's list of kinds whose bugs are not fixed yet).
 */
import type { WorldContext } from './context.js';
import type { Device } from './device.js';
import type { SimApplication } from './downlink-app.js';
import { hostileAgentId } from './checkers.js';
import { FakeGateway } from './fake-gateway.js';
import { simToken, type GatewayHost } from './gateway-host.js';
import { HostileAgent } from './hostile-agent.js';
import { noFaults, type SimDisk } from './sim-disk.js';

export const faultKinds = [
  'agent-kill', 'agent-power', 'agent-crash-mid-io', 'agent-wipe', 'gateway-kill', 'gateway-power', 'gateway-crash-mid-io',
  'disk-full', 'disk-eio', 'short-writes', 'bit-flips',
  'net-cut', 'net-stall', 'net-black-hole', 'net-delay', 'net-half-open', 'net-partition',
  'downstream-fail', 'downstream-slow',
  // issue 10: an agent's dials reach a fake gateway for a while; a hostile agent talks to the gateway
  'fake-gateway', 'hostile-agent',
  // issue 11: the long-poll carrier's HTTP path loses, duplicates or cuts bodies; a proxy cuts
  // held requests early; a firewall drops the TCP tunnel port (agents with a choice fall back)
  'http-loss', 'http-dup', 'http-garble', 'proxy-cut', 'tcp-blocked',
  // issue 12 (no-ops without the downlink): DOWN_ACKs lost with their connection; a consumer that
  // answers only at its time-out; the agent crashing around a message with its consumer; the
  // application queueing a burst that fills a queue
  'down-ack-loss', 'consumer-hang', 'consumer-crash', 'downlink-burst',
] as const;
export type FaultKind = (typeof faultKinds)[number];

export function parseFaultKinds(list: string): FaultKind[] {
  const kinds = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const k of kinds) if (!(faultKinds as readonly string[]).includes(k)) throw new Error(`unknown fault kind ${k}; known: ${faultKinds.join(', ')}`);
  return kinds as FaultKind[];
}

export interface FaultTargets {
  devices: Device[];
  gateway: GatewayHost;
  /** hostile agents started so far (the world stops them when faults stop) */
  hostiles: HostileAgent[];
  /** the downlink's application; null without the downlink */
  app: SimApplication | null;
}

/** Injects one fault of `kind` now, choosing where and for how long from the world's rng. */
export function inject(w: WorldContext, t: FaultTargets, kind: FaultKind): void {
  const { rng, net, trace } = w;
  const device = rng.pick(t.devices);
  const anyDisk = (): SimDisk => {
    const gateway = w.diskFaultsOn === 'gateway' || (w.diskFaultsOn === 'any' && rng.chance(0.5));
    return gateway ? t.gateway.disk : rng.pick(t.devices).disk;
  };
  const diskName = (d: SimDisk): string => (d === t.gateway.disk ? 'gateway' : t.devices.find((x) => x.disk === d)!.id);
  const until = (msMin: number, msMax: number, end: () => void): void => w.later(rng.int(msMin, msMax), end, 'faults');
  const openConn = (): ReturnType<typeof net.openConnections>[number] | undefined => {
    const open = net.openConnections();
    return open.length > 0 ? rng.pick(open) : undefined;
  };
  switch (kind) {
    case 'agent-kill':
      if (device.state === 'off') return;
      device.kill('kill');
      return w.later(rng.int(10, 3000), () => device.start());
    case 'agent-power':
      device.kill('power');
      return w.later(rng.int(100, 5000), () => device.start());
    case 'agent-crash-mid-io':
      if (device.state === 'off') return;
      return device.crashMidIo(rng.int(1, 60), rng.pick(['kill', 'power'] as const), rng.int(10, 3000));
    case 'gateway-crash-mid-io':
      if (t.gateway.state === 'off') return;
      return t.gateway.crashMidIo(rng.int(1, 60), rng.pick(['kill', 'power'] as const), rng.int(10, 3000));
    case 'agent-wipe': {
      device.wipe();
      // Often the replaced device comes back offline for a while: it stores packets before it can connect.
      if (rng.chance(0.5)) {
        net.partitioned.add(device.id);
        w.later(rng.int(500, 4000), () => net.partitioned.delete(device.id), 'faults');
      }
      return w.later(rng.int(10, 2000), () => device.start());
    }
    case 'gateway-kill':
      if (t.gateway.state === 'off') return;
      t.gateway.kill('kill');
      return w.later(rng.int(10, 3000), () => t.gateway.start());
    case 'gateway-power':
      t.gateway.kill('power');
      return w.later(rng.int(100, 6000), () => t.gateway.start());
    case 'disk-full': {
      const d = anyDisk();
      d.faults.bytesBudget = d.usedBytes() + rng.int(0, 3000);
      trace.event('fault', `disk of ${diskName(d)} full at ${d.faults.bytesBudget} bytes`);
      return until(200, 8000, () => {
        d.faults.bytesBudget = null;
        trace.event('fault', `disk of ${diskName(d)} has room again`);
      });
    }
    case 'disk-eio': {
      const d = anyDisk();
      const p = rng.pick([0.05, 0.2, 0.5, 1]);
      const which = rng.pick(['writeEioP', 'syncEioP', 'readEioP', 'openEioP', 'all'] as const);
      for (const k of which === 'all' ? (['writeEioP', 'syncEioP', 'readEioP', 'openEioP'] as const) : [which]) d.faults[k] = p;
      trace.event('fault', `disk of ${diskName(d)}: I/O errors (${which} ${p})`);
      return until(20, 3000, () => clearDiskFaults(d, ['writeEioP', 'syncEioP', 'readEioP', 'openEioP']));
    }
    case 'short-writes': {
      const d = anyDisk();
      d.faults.shortWriteP = rng.pick([0.1, 0.3, 0.7]);
      trace.event('fault', `disk of ${diskName(d)}: short writes (${d.faults.shortWriteP})`);
      return until(100, 5000, () => clearDiskFaults(d, ['shortWriteP']));
    }
    case 'bit-flips': {
      const d = anyDisk();
      d.faults.bitFlipP = rng.pick([0.01, 0.05, 0.2]);
      trace.event('fault', `disk of ${diskName(d)}: bit flips on read (${d.faults.bitFlipP})`);
      return until(100, 3000, () => clearDiskFaults(d, ['bitFlipP']));
    }
    case 'net-cut':
      return openConn()?.cut('fault');
    case 'net-stall': {
      const c = openConn();
      return c?.stall(w.time.now() + rng.int(50, 9000));
    }
    case 'net-black-hole':
      return openConn()?.blackHole('fault');
    case 'net-delay': {
      const before = { ...net.opts };
      net.opts.latencyMsMax = rng.pick([100, 500, 2000]);
      net.opts.latencyMsMin = Math.floor(net.opts.latencyMsMax / 4);
      trace.event('fault', `network latency ${net.opts.latencyMsMin}-${net.opts.latencyMsMax} ms`);
      return until(500, 10_000, () => {
        net.opts.latencyMsMin = before.latencyMsMin;
        net.opts.latencyMsMax = before.latencyMsMax;
      });
    }
    case 'net-half-open': {
      const open = net.openConnections().filter((c) => !c.agentEnd.done && !c.gatewayEnd.done);
      if (open.length > 0) rng.pick(open).halfOpen();
      return;
    }
    case 'net-partition': {
      net.partitioned.add(device.id);
      trace.event('fault', `${device.id} partitioned`);
      const black = rng.chance(0.5);
      for (const c of net.openConnections(device.id)) if (black) c.blackHole('partition');
      else c.cut('partition');
      w.http.blackHole(device.id);
      return until(500, 12_000, () => {
        net.partitioned.delete(device.id);
        trace.event('fault', `${device.id} partition healed`);
      });
    }
    case 'http-loss': {
      w.http.faults.lossP = rng.pick([0.05, 0.2, 0.5]);
      trace.event('fault', `HTTP loses requests and responses (p ${w.http.faults.lossP})`);
      return until(500, 8000, () => (w.http.faults.lossP = 0));
    }
    case 'http-dup': {
      w.http.faults.dupP = rng.pick([0.1, 0.5, 1]);
      trace.event('fault', `a proxy sends requests twice (p ${w.http.faults.dupP})`);
      return until(500, 8000, () => (w.http.faults.dupP = 0));
    }
    case 'http-garble': {
      w.http.faults.garbleP = rng.pick([0.1, 0.5]);
      trace.event('fault', `HTTP response bodies cut short (p ${w.http.faults.garbleP})`);
      return until(500, 8000, () => (w.http.faults.garbleP = 0));
    }
    case 'proxy-cut': {
      w.http.faults.proxyIdleMs = rng.pick([300, 2000, 10_000]);
      trace.event('fault', `a proxy cuts requests held over ${w.http.faults.proxyIdleMs} ms (504)`);
      return until(1000, 12_000, () => (w.http.faults.proxyIdleMs = null));
    }
    case 'tcp-blocked': {
      net.tcpBlocked.add(device.id);
      trace.event('fault', `a firewall drops ${device.id}'s TCP tunnel port`);
      for (const c of net.openConnections(device.id)) if (!c.toFake) c.blackHole('firewall');
      return until(2000, 15_000, () => {
        net.tcpBlocked.delete(device.id);
        trace.event('fault', `${device.id}'s TCP tunnel port passes again`);
      });
    }
    case 'downstream-fail': {
      w.downstream.mode.failP = rng.pick([0.3, 0.7, 1]);
      trace.event('fault', `downstream fails ${w.downstream.mode.failP}`);
      return until(100, 5000, () => (w.downstream.mode.failP = 0));
    }
    case 'fake-gateway': {
      const fake = new FakeGateway(rng.fork(`fake gateway ${device.id}`), { store: () => device.store?.stats() ?? null, sentToGateway: () => net.highestSentSeq(device.id) });
      net.hijack(device.id, (end) => fake.accept(end));
      return until(500, 8000, () => net.unhijack(device.id));
    }
    case 'hostile-agent': {
      if (t.hostiles.some((h) => h.active)) return;
      const h = new HostileAgent(w, rng.fork(`hostile ${t.hostiles.length + 1}`), `${hostileAgentId}#${t.hostiles.length + 1}`, t.devices.map((d) => d.id), simToken, w.dl ? w.dlRng.fork(`hostile ${t.hostiles.length + 1}`) : null);
      t.hostiles.push(h);
      return h.start(rng.int(1000, 10_000));
    }
    case 'down-ack-loss': {
      const dl = device.dl;
      if (!dl) return;
      dl.ackLossP = rng.pick([0.2, 0.5, 1]);
      trace.event('fault', `${device.id}'s DOWN_ACKs lost with their connection (p ${dl.ackLossP})`);
      return until(500, 8000, () => (dl.ackLossP = 0));
    }
    case 'consumer-hang': {
      const dl = device.dl;
      if (!dl) return;
      dl.hangP = rng.pick([0.3, 1]);
      trace.event('fault', `${device.id}'s consumer hangs (p ${dl.hangP}): it answers at its time-out`);
      return until(500, 10_000, () => (dl.hangP = 0));
    }
    case 'consumer-crash': {
      const dl = device.dl;
      if (!dl || device.state === 'off') return;
      dl.crashArm = { at: rng.pick(['handed', 'verdict', 'record-io', 'recorded'] as const), how: rng.pick(['kill', 'power'] as const), restartMs: rng.int(10, 3000) };
      trace.event('fault', `${device.id} will crash (${dl.crashArm.how}) around its next message: ${dl.crashArm.at}`);
      return;
    }
    case 'downlink-burst':
      return t.app?.burst(rng.chance(0.9) ? device.id : hostileAgentId, rng.int(10, 80));
    case 'downstream-slow': {
      w.downstream.mode.latencyMsMax = rng.pick([300, 1500, 6000]);
      w.downstream.mode.latencyMsMin = Math.floor(w.downstream.mode.latencyMsMax / 3);
      trace.event('fault', `downstream slow ${w.downstream.mode.latencyMsMin}-${w.downstream.mode.latencyMsMax} ms`);
      return until(500, 8000, () => {
        w.downstream.mode.latencyMsMin = 1;
        w.downstream.mode.latencyMsMax = 20;
      });
    }
  }
}

function clearDiskFaults(d: SimDisk, keys: (keyof typeof noFaults)[]): void {
  for (const k of keys) (d.faults as unknown as Record<string, unknown>)[k] = noFaults[k];
}
