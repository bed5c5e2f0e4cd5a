/**
 * longpoll sim - two BundleChannels, the agent's request policy and the gateway's hold policy,
 * joined by a simulated "HTTP" that loses, truncates, garbles, duplicates and delays requests and
 * responses, with random send patterns both ways, on simulated time. Checks after every event:
 * each side hands on the other's messages exactly once and in order, and what each channel keeps
 * stays within its limits; once the faults stop, everything drains and both queues empty.
 * Prints its seed; replay with SEED=<n> npx tap test/protocol/longpoll-sim.test.ts.
 */
import t from 'tap';
import { BodyKind, decodeBody, encodeBody, type Body } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { HoldPolicy, RequestOrder, requestOrder } from '../../protocol/longpoll/hold-policy.js';
import { bodyLimitsFor, type ChannelLimits } from '../../protocol/longpoll/limits.js';
import { RequestPolicy } from '../../protocol/longpoll/request-policy.js';
import { isFerryError } from '../../protocol/errors.js';
import { prng, testSeed } from '../helpers/seed.js';

/** Seeds that once failed, run every time. */
const regressionSeeds: number[] = [];

const limits: ChannelLimits = {
  messageBytesMax: 2048, bundleMessagesMax: 16, bundleBytesMax: 8192,
  queueMessagesMax: 64, queueBytesMax: 32 * 1024, reorderMessagesMax: 24, reorderBytesMax: 16 * 1024,
};
const bodyLimits = bodyLimitsFor(limits);

interface Faults { lose: number; truncate: number; garble: number; duplicate: number; delayMsMax: number }
const faulty: Faults = { lose: 0.15, truncate: 0.05, garble: 0.05, duplicate: 0.08, delayMsMax: 400 };
const clean: Faults = { lose: 0, truncate: 0, garble: 0, duplicate: 0, delayMsMax: 20 };

type Side = 'agent' | 'gateway';
interface Ev { at: number; order: number; run: () => void }

function runSim(seed: number): { failures: string[]; stats: Record<string, number> } {
  const rng = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
  const failures: string[] = [];
  const fail = (msg: string): void => { if (failures.length < 10) failures.push(`${msg} (SEED=${seed})`); };

  let now = 0;
  let order = 0;
  const events: Ev[] = [];
  const at = (when: number, run: () => void): void => { events.push({ at: when, order: order++, run }); };

  const faultsUntilMs = 120_000;
  const sendsUntilMs = 150_000;
  const endMs = 600_000;
  const faults = (): Faults => (now < faultsUntilMs ? faulty : clean);
  const stats = { requests: 0, responses: 0, lost: 0, corrupted: 0, duplicated: 0, unreadable: 0, stale: 0, reconnects: 0, queueFull: 0 };

  /** The simulated network: the body (or an error status, null) arrives zero, one or two times, perhaps damaged, after a delay. */
  function transmit(bytes: Buffer | null, deliver: (b: Buffer | null) => void): void {
    const f = faults();
    if (rng() < f.lose) { stats.lost++; return; }
    let copies = 1;
    if (rng() < f.duplicate) { copies = 2; stats.duplicated++; }
    for (let i = 0; i < copies; i++) {
      let b = bytes;
      if (b !== null && rng() < f.truncate) { b = b.subarray(0, int(0, b.length - 1)); stats.corrupted++; }
      else if (b !== null && rng() < f.garble) {
        // Garbage, not a bit flip: HTTP over TCP/TLS does not deliver flipped bits, but a broken proxy does deliver junk.
        b = Buffer.from(Array.from({ length: int(1, 64) }, () => int(0, 255)));
        stats.corrupted++;
      }
      at(now + int(1, f.delayMsMax), () => deliver(b));
    }
  }

  // The application messages each side sends: 4-byte index, then filler; each side checks what it gets against what the other sent.
  const sent: Record<Side, Buffer[]> = { agent: [], gateway: [] };
  const backlog: Record<Side, Buffer[]> = { agent: [], gateway: [] };
  const got: Record<Side, number> = { agent: 0, gateway: 0 };
  function makeMessage(side: Side): Buffer {
    const size = rng() < 0.05 ? limits.messageBytesMax : int(4, 600);
    const b = Buffer.alloc(size, int(0, 255));
    b.writeUInt32BE(sent[side].length, 0);
    sent[side].push(b);
    return b;
  }
  function delivered(to: Side, msgs: Uint8Array[]): void {
    const from: Side = to === 'agent' ? 'gateway' : 'agent';
    for (const m of msgs) {
      const expect = sent[from][got[to]];
      if (!expect || !Buffer.from(m).equals(expect)) {
        fail(`${to} got message ${Buffer.from(m).readUInt32BE(0)} of ${from} when ${got[to]} was next`);
        return;
      }
      got[to]++;
    }
  }
  function checkBounds(): void {
    for (const [side, ch] of [['agent', agent], ['gateway', gateway]] as const) {
      const s = ch.stats();
      if (s.queuedMessages > limits.queueMessagesMax || s.queuedBytes > limits.queueBytesMax) fail(`${side} queue over its limits: ${JSON.stringify(s)}`);
      if (s.heldMessages > limits.reorderMessagesMax || s.heldBytes > limits.reorderBytesMax) fail(`${side} reorder window over its limits: ${JSON.stringify(s)}`);
    }
  }

  const agent = new BundleChannel(limits);
  const gateway = new BundleChannel(limits);
  const session = 'sim-session-1';
  const policyOpts = { responseTimeoutMs: 35_000, answerTimeoutMs: 3_000, requestsUnansweredMax: 3, requestsOutstandingMax: 2, lingerMs: 20 };
  let policy = new RequestPolicy(policyOpts);
  const hold = new HoldPolicy<number>({ holdMs: 25_000, lingerMs: 20 });
  let highestTaken = 0;
  // One timer per side and deadline: a pump re-arms only when its deadline moved.
  let agentWakeMs = -1;
  let gatewayWakeMs = -1;

  function flush(side: Side): void {
    const ch = side === 'agent' ? agent : gateway;
    while (backlog[side].length > 0 && ch.canSend(backlog[side][0]!.length)) ch.send(backlog[side].shift()!);
  }
  function appSend(side: Side): void {
    const ch = side === 'agent' ? agent : gateway;
    const burst = rng() < 0.1 ? int(5, 60) : 1;
    for (let i = 0; i < burst; i++) {
      const m = makeMessage(side);
      // The layer above holds back what the channel refuses (back-pressure), in order.
      if (backlog[side].length > 0 || !ch.canSend(m.length)) { backlog[side].push(m); stats.queueFull++; } else ch.send(m);
    }
    if (side === 'agent') agentPump(); else gatewayPump();
  }
  function scheduleSends(side: Side): void {
    const next = now + Math.floor(-Math.log(1 - rng()) * (side === 'agent' ? 60 : 150));
    if (next < sendsUntilMs) at(next, () => { appSend(side); scheduleSends(side); });
  }

  // --- the agent
  function agentPump(): void {
    flush('agent');
    for (let i = 0; i < 8; i++) {
      const d = policy.decide(now, { sendableMessages: agent.stats().sendableMessages, fullBundle: agent.hasFullBundle() });
      if (d.action === 'failed') {
        stats.reconnects++; // the session carries over a reconnect: a new connection, the same channel
        policy = new RequestPolicy(policyOpts);
        continue;
      }
      if (d.action === 'wait') {
        if (d.wakeAtMs !== undefined && d.wakeAtMs !== agentWakeMs) { agentWakeMs = d.wakeAtMs; at(d.wakeAtMs, agentPump); }
        return;
      }
      if (d.resend) agent.resendOutstanding();
      const ob = agent.nextBundle();
      const body: Body = { kind: BodyKind.REQUEST, session, ...ob };
      policy.sent(ob.bundle, now);
      stats.requests++;
      const request = ob.bundle;
      transmit(encodeBody(body), (b) => gatewayGets(request, b));
    }
  }
  function agentGets(request: number, bytes: Buffer | null): void {
    if (bytes === null) policy.responded(request); // an error status: answered, nothing in it
    else {
      let body: Body | undefined;
      try {
        body = decodeBody(bytes, BodyKind.RESPONSE, bodyLimits);
      } catch (err) {
        if (!isFerryError(err)) throw err;
        stats.unreadable++;
      }
      if (body) {
        if (body.answers !== request) fail(`response to ${request} says it answers ${body.answers}`);
        delivered('agent', agent.accept(body));
      }
      policy.responded(request);
    }
    agentPump();
  }

  // --- the gateway
  function respond(request: number | undefined): void {
    if (request === undefined) return;
    const ob = gateway.nextBundle();
    stats.responses++;
    transmit(encodeBody({ kind: BodyKind.RESPONSE, session, answers: request, ...ob }), (b) => agentGets(request, b));
  }
  function gatewayPump(): void {
    flush('gateway');
    while (hold.held !== undefined && gateway.hasFullBundle()) respond(hold.bundleReady());
    if (gateway.stats().sendableMessages > 0) respond(hold.messagesWaiting(now));
    const due = hold.deadlineMs();
    if (due !== undefined && due !== gatewayWakeMs) { gatewayWakeMs = due; at(due, () => { respond(hold.tick(now)); gatewayPump(); }); }
  }
  function gatewayGets(request: number, bytes: Buffer | null): void {
    let body: Body;
    try {
      body = decodeBody(bytes!, BodyKind.REQUEST, bodyLimits);
    } catch (err) {
      if (!isFerryError(err)) throw err;
      stats.unreadable++;
      transmit(null, (b) => agentGets(request, b)); // a coded error status at once; nothing of the body applied
      return;
    }
    if (body.bundle !== request) fail(`request ${request} arrived numbered ${body.bundle}`);
    const o = requestOrder(highestTaken, body.bundle);
    delivered('gateway', gateway.accept(body)); // harmless for a duplicate or a stale one: the channel drops what it has
    if (o === RequestOrder.DUPLICATE || o === RequestOrder.STALE) {
      stats.stale++;
      transmit(null, (b) => agentGets(request, b));
    } else {
      highestTaken = body.bundle;
      for (const id of hold.request(body.bundle, now, gateway.hasFullBundle())) respond(id);
    }
    gatewayPump();
  }

  scheduleSends('agent');
  scheduleSends('gateway');
  at(0, agentPump);
  let steps = 0;
  while (events.length > 0 && failures.length === 0) {
    // Earliest first, then in scheduling order: a replay with the same seed takes the same path.
    let best = 0;
    for (let i = 1; i < events.length; i++) {
      const e = events[i]!, b = events[best]!;
      if (e.at < b.at || (e.at === b.at && e.order < b.order)) best = i;
    }
    const ev = events.splice(best, 1)[0]!;
    if (ev.at > endMs) break;
    now = ev.at;
    ev.run();
    checkBounds();
    if (++steps > 2_000_000) { fail('did not settle'); break; }
  }
  for (const side of ['agent', 'gateway'] as const) {
    const from: Side = side === 'agent' ? 'gateway' : 'agent';
    if (got[side] !== sent[from].length) fail(`${side} got ${got[side]} of ${sent[from].length} messages once the faults stopped`);
    const s = (side === 'agent' ? agent : gateway).stats();
    if (s.queuedMessages !== 0 || s.heldMessages !== 0) fail(`${side} still keeps ${s.queuedMessages} queued and ${s.heldMessages} held messages`);
  }
  return { failures, stats: { ...stats, agentSent: sent.agent.length, gatewaySent: sent.gateway.length } };
}

t.test('longpoll sim - every message arrives exactly once, in order, within the limits, and everything drains after the faults', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const runs = Number(process.env.RUNS ?? 6);
  for (const s of [...regressionSeeds, ...Array.from({ length: runs }, (_, i) => (seed + i) >>> 0)]) {
    const r = runSim(s);
    t.same(r.failures, [], `seed ${s}: ${JSON.stringify(r.stats)}`);
    // The faults must have happened, or the run proves little.
    t.ok(r.stats.lost! > 0 && r.stats.corrupted! > 0 && r.stats.duplicated! > 0 && r.stats.queueFull! > 0, `seed ${s}: losses, damage, duplicates and back-pressure all occurred`);
  }
});
