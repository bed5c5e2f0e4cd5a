/** Composition of the agent: the only place that wires real IO (files, sockets, serial, clock). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { realClock, type Clock } from '../common/clock.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { createLog, type Log } from '../common/log.js';
import { ensurePrivateDir } from '../common/private-dir.js';
import { agentLimits, loadProfile } from '../hw/index.js';
import { gatewayUrls, isLongPollUrl, isSecureUrl, metricsListen, socketPathOf, type AgentConfig } from './config.js';
import { gatewayChoice, type GatewayCandidate } from './link/gateway-choice.js';
import { httpPost, type HttpPost } from './link/http-post.js';
import { Link } from './link/link.js';
import { longPollDialer } from './link/longpoll-client.js';
import { tcpDialer } from './link/tcp.js';
import { loadTlsFiles } from '../protocol/tls-files.js';
import { startLocalApi, type LocalApiServer } from './local-api.js';
import { AckWaiters, ackWaitersLimitsDefault } from './ack-waiters.js';
import { watchAcks } from './ack-watch-store.js';
import { groupId } from './socket-group.js';
import { createRule, type Rule } from './rules.js';
import { SerialSource } from './sources/serial-source.js';
import { StuckLog } from '../common/stuck-log.js';
import { SegmentStore } from './store/segment-store.js';
import { DurableAnsweredLog } from './downlink/answered-log.js';
import { DownlinkInbox, type InboxStats } from './downlink/inbox.js';
import { LocalSubscribers } from './downlink/local-subscribers.js';
import { createRouter } from './downlink/router.js';
import { SerialCommands } from './downlink/serial-consumer.js';
import { realFiles } from '../common/real-files.js';
import { dataDepthMaxDefault } from '../protocol/limits.js';
import { dataToJson, type NewPacket } from '../protocol/packet.js';
import type { StoreStats } from './store/store.js';
import { within } from '../common/shutdown.js';
import type { AgentMetrics } from './metrics.js';
import { RateWindow } from './rate-window.js';
import { agentStatus, type AgentStatus } from './status.js';

export interface RunningAgent {
  socketPath: string;
  /** http://HOST:PORT/metrics when metrics.listen is set */
  metricsUrl: string | null;
  stats(): AgentStats;
  status(): Promise<AgentStatus>;
  /**
   * Stops: takes no new packet (sources' readings and ticks are dropped, the local API refuses
   * sends with AGENT_STOPPING), waits at most `shutdownTimeoutMs` for the gateway to ack what was
   * sent, then closes the link, the consumers and the store (flushed). Unacked packets stay stored.
   */
  stop(): Promise<void>;
}

export interface AgentStats {
  readings: number;
  invalidLines: number;
  stored: number;
  backlog: number;
  inflight: number;
  acked: number;
  lastSeq: number;
  ackedSeq: number;
  deadLetters: number;
  link: string;
  /** the gateway URL of the transport in use (with several URLs: which one the choice made); null while none is open */
  gateway: string | null;
  rttMs: number | null;
  /** packets the gateway refused for now, waiting to be resent */
  retrying: number;
  /** NACKs with retry-after received since start */
  retries: number;
  /** the gateway's last credit */
  credit: { packets: number; bytes: number };
  /** what the profile (or the config) set */
  limits: { storeBytesMax: number; inflightPacketsMax: number };
  /** the store's own counters: drops by reason, recovery, bytes, segments */
  store: StoreStats;
  /** downlink messages: accepted, refused by code, repeats answered from the record, waiting; local subscriptions */
  downlink: InboxStats & { subscriptions: number };
}

/** Kept here too: callers found the socket path next to the agent. */
export { socketPathOf } from './config.js';
export const storeDir = (config: AgentConfig): string => join(config.dataDir, 'store');
/** Where the answered-message record lives (answered.log). */
export const downlinkDir = (config: AgentConfig): string => join(config.dataDir, 'downlink');
/** `ferry status` shows rates over this window, from samples of the counters taken every bucket. */
const rateWindow = { windowMs: 60_000, bucketMs: 10_000 };

export async function runAgent(config: AgentConfig, opts: { log?: Log } = {}): Promise<RunningAgent> {
  const log = opts.log ?? createLog({ level: config.log.level, format: config.log.format, base: { agent: config.id } });
  const clock = realClock;
  // Failures that repeat (gateway unreachable, device missing) are logged once, then summarised.
  const stuck = new StuckLog({ log, clock, summaryIntervalMs: config.log.stuckSummaryIntervalMs });
  const limits = config.profile ? agentLimits(loadProfile(config.profile)) : null;
  const storeBytesMax = config.store.bytesMax ?? limits?.storeBytesMax ?? 256 * 2 ** 20;
  const inflightPacketsMax = config.link.inflightPacketsMax ?? limits?.inflightPacketsMax ?? 1024;
  log.info('agent: starting', { profile: config.profile ?? null, storeBytesMax, inflightPacketsMax, sync: config.store.sync, fullPolicy: config.store.fullPolicy });

  // PEM files are read and checked before anything starts: a wrong path or a key that does not fit stops the agent here.
  const tlsFiles = config.tls ? { ...loadTlsFiles(config.tls), ...(config.tls.servername ? { servername: config.tls.servername } : {}) } : undefined;
  const urls = gatewayUrls(config);
  if (urls.some(isSecureUrl) && !tlsFiles?.ca) log.info('agent: the gateway certificate is checked against the system CAs (no tls.ca)');
  if (tlsFiles?.certSubject !== undefined && tlsFiles.certSubject !== config.id) {
    log.warn('agent: the client certificate names another agent; the gateway will refuse it with AUTH_AGENT_MISMATCH', { certSubject: tlsFiles.certSubject, id: config.id });
  }
  const segmentBytes = config.store.segmentBytes ?? limits?.segmentBytes ?? 4 * 2 ** 20;
  // Resolved before anything is created: an unknown group stops the start.
  const socketGid = config.socketGroup === undefined ? undefined : groupId(config.socketGroup, () => readFileSync('/etc/group', 'utf8'));
  // Bound before anything is created: a port in use stops the start here. prom-client is loaded only now.
  const listen = metricsListen(config);
  const metrics: AgentMetrics | null = listen ? await (await import('./metrics.js')).startAgentMetrics(listen) : null;
  await ensurePrivateDir(config.dataDir, log);
  const store = await SegmentStore.open({
    dir: storeDir(config), sync: config.store.sync, batchWindowMs: config.store.batchWindowMs,
    bytesMax: storeBytesMax, segmentBytes, fullPolicy: config.store.fullPolicy, log,
    ...(metrics ? { onCommit: metrics.observeCommit } : {}),
  });
  const answered = await DurableAnsweredLog.open({ dir: downlinkDir(config), files: realFiles, idsMax: config.downlink.dedupIdsMax, log });
  // One dialer per gateway URL: the TCP tunnel, or the HTTP long-poll carrier through the proxy the environment names.
  const tls = tlsFiles ? { tls: tlsFiles } : {};
  const posts: HttpPost[] = [];
  const candidates: GatewayCandidate[] = urls.map((url) => {
    if (!isLongPollUrl(url)) return { url, dial: tcpDialer(url, { connectTimeoutMs: config.link.connectTimeoutMs, ...tls }) };
    const post = httpPost(url, { agentId: config.id, env: process.env, ...tls });
    posts.push(post);
    if (post.proxyUrl) log.info('agent: long-poll through a proxy', { url, proxy: post.proxyUrl.origin });
    return { url, dial: longPollDialer({ post, agentId: config.id, clock, log, openTimeoutMs: config.link.connectTimeoutMs }) };
  });
  const choice = candidates.length > 1 ? gatewayChoice(candidates, { fallbackAfterMs: config.link.fallbackAfterMs, probeIntervalMs: config.link.probeIntervalMs, clock, log }) : undefined;
  const dial = choice ?? candidates[0]!.dial;
  let stopping = false;
  const produce = (packets: NewPacket[]): void => {
    // Stopping: readings are no longer turned into packets (the sources stay open for the downlink until the end).
    if (stopping) return;
    for (const p of packets) store.append(p).catch((err: unknown) => log.warn('agent: packet not stored', { target: p.target, err }));
  };
  const rules: Rule[] = config.rules.map(createRule);
  const sources = config.sources.map(
    (s) => new SerialSource(s, { clock, log, stuck, onReading: (r) => { const now = clock.now(); for (const rule of rules) produce(rule.onReading(r, now)); } }),
  );

  const downlink = downlinkOf(config, sources, answered, { clock, log });
  const { inbox, subscribers } = downlink;
  // `ferry send --wait`: the link's acks and dead letters answer local clients waiting for a seq.
  const waiters = new AckWaiters(ackWaitersLimitsDefault, {
    clock, lastSeq: () => store.highestIssuedSeq(), isDone: (seq) => store.isDone(seq),
    refusalOf: async (seq) => (await store.deadLetters()).find((d) => d.packet.seq === seq),
  });
  const link = new Link(
    { agentId: config.id, ...(config.token ? { token: config.token } : {}), inflightPacketsMax, retryPacketsMax: config.link.retryPacketsMax ?? inflightPacketsMax, ...config.link },
    { store: watchAcks(store, waiters), dial, clock, rng: Math.random, log, stuck, downlink: inbox },
  );
  const tick = setInterval(() => {
    const now = clock.now();
    for (const rule of rules) produce(rule.onTick(now));
  }, config.tickMs);

  const stats = (): AgentStats => {
    const s = store.stats();
    const l = link.stats();
    const readings = sources.reduce((n, src) => n + src.stats().readings, 0);
    const invalidLines = sources.reduce((n, src) => n + src.stats().invalidLines, 0);
    return {
      readings, invalidLines, stored: s.appended, backlog: s.backlogPackets, inflight: l.inflightPackets, acked: s.acked,
      lastSeq: s.lastSeq, ackedSeq: s.ackedSeq, deadLetters: s.deadLetters, link: l.state,
      gateway: l.state === 'connected' ? (choice?.currentUrl() ?? urls[0]!) : null, rttMs: l.rttMs,
      retrying: l.retryPackets, retries: l.retries, credit: { packets: l.creditPackets, bytes: l.creditBytes },
      limits: { storeBytesMax, inflightPacketsMax }, store: s,
      downlink: { ...inbox.stats(), subscriptions: subscribers.stats().subscriptions },
    };
  };

  const rates = { stored: new RateWindow(clock, rateWindow), acked: new RateWindow(clock, rateWindow) };
  const sampleRates = (): { overS: number; storedPerS: number; ackedPerS: number } => {
    const s = store.stats();
    const stored = rates.stored.perSecond(s.appended);
    return { overS: Math.round(stored.overS), storedPerS: stored.perSecond, ackedPerS: rates.acked.perSecond(s.acked).perSecond };
  };
  sampleRates();
  const rateTimer = setInterval(sampleRates, rateWindow.bucketMs).unref();
  const status = async (): Promise<AgentStatus> => {
    const oldest = await store.oldestBacklog();
    const l = link.stats();
    return agentStatus({
      agent: config.id, nowMs: clock.now(), link: l, gatewayUrl: l.state === 'connected' ? (choice?.currentUrl() ?? urls[0]!) : null,
      store: store.stats(), backlogBytes: store.backlogBytes(), oldestTs: oldest?.ts ?? null, capacityBytes: storeBytesMax,
      sources: sources.map((src, i) => ({ name: src.name, path: config.sources[i]!.path, stats: src.stats() })),
      downlink: { ...inbox.stats(), subscriptions: subscribers.stats().subscriptions, routes: config.downlink.routes.map((r) => ({ match: r.match, to: r.to })) },
      rate: sampleRates(),
    });
  };
  metrics?.attach(status);

  const socketPath = socketPathOf(config);
  const server: LocalApiServer = await startLocalApi(
    socketPath,
    {
      send: async (target, data, extra) => {
        if (stopping) throw new FerryError(ErrorCode.AGENT_STOPPING, 'the agent is stopping; send again once it runs');
        return (await store.append({ target, data, ts: clock.now(), ...extra })).seq;
      },
      stats,
      status,
      deadLetters: async () => (await store.deadLetters()).map((d) => ({ ...d, packet: { ...d.packet, data: dataToJson(d.packet.data) } })),
      requeueDeadLetters: () => store.requeueDeadLetters(),
      waitAcked: (seq, timeoutMs, cancel) => waiters.wait(seq, timeoutMs, cancel),
      subscribers,
    },
    { log, dataBytesMax: config.dataBytesMax, ...(socketGid !== undefined ? { socketGid } : {}) },
  );
  link.start();
  for (const s of sources) s.start();
  log.info('agent: running', { socket: socketPath, gateway: urls, lastSeq: store.stats().lastSeq, backlog: store.stats().backlogPackets });

  return {
    socketPath,
    metricsUrl: metrics?.url ?? null,
    stats,
    status,
    async stop() {
      stopping = true;
      clearInterval(tick);
      // While the link drains the local API still answers: a send is refused with AGENT_STOPPING, stats still work.
      const drained = await within(link.drain(), config.shutdownTimeoutMs, clock);
      const left = link.stats().inflightPackets;
      if (!drained && left > 0) log.warn('agent: stopping with packets sent and not acked after shutdownTimeoutMs; they stay in the store and are sent again after the next start', { inflight: left, shutdownTimeoutMs: config.shutdownTimeoutMs });
      clearInterval(rateTimer);
      await metrics?.close();
      // No new local clients; those connected (subscribers) stay until the inbox is done.
      const closed = new Promise<void>((r) => server.close(() => r()));
      choice?.stop();
      await link.stop();
      waiters.failAll(new FerryError(ErrorCode.SHUTDOWN, 'the agent is stopping; the packet stays queued'));
      // The message with its consumer is answered and recorded first (its DOWN_ACK is not sent:
      // the gateway sends it again and it is answered from the record); so the consumers, the
      // serial devices and the subscribers' connections stay until then.
      await downlink.close();
      await Promise.all(sources.map((s) => s.stop()));
      stuck.close();
      server.endClients();
      await closed;
      for (const p of posts) p.close();
      await store.close();
    },
  };
}

/**
 * The downlink on the device: routes to consumers (serial commands per source, local
 * subscribers, commands); the inbox delivers in order and records each verdict before answering.
 */
function downlinkOf(config: AgentConfig, sources: SerialSource[], answered: DurableAnsweredLog, deps: { clock: Clock; log: Log }) {
  const subscribers = new LocalSubscribers(deps);
  const commands = new Map<string, SerialCommands>();
  const router = createRouter(config.downlink.routes, {
    serial: (name) => {
      let c = commands.get(name);
      if (!c) {
        const source = sources.find((s) => s.name === name);
        // The config schema checked the name: a route to an unknown source cannot get here.
        if (!source) throw new Error(`no serial source named ${name}`);
        commands.set(name, (c = new SerialCommands(source, deps)));
      }
      return c;
    },
    local: subscribers,
    exec: deps,
  });
  // The window is named even with no routes: messages then come and are refused with DOWNLINK_NO_ROUTE, so the application sees why.
  const inbox = new DownlinkInbox(
    { messagesMax: config.downlink.messagesMax, bytesMax: config.downlink.bytesMax, limits: { dataBytesMax: config.dataBytesMax, dataDepthMax: dataDepthMaxDefault } },
    { route: router.route, answered, ...deps },
  );
  return {
    inbox,
    subscribers,
    /** The message with its consumer is answered and recorded first; then the consumers and the record close. */
    async close(): Promise<void> {
      await inbox.close();
      await router.close();
      for (const c of commands.values()) c.close();
      await answered.close();
    },
  };
}
