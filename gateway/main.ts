/** Composition of the gateway: the only place that wires real IO (listening socket, files, clock). */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { realClock } from '../common/clock.js';
import { createLog, type Log } from '../common/log.js';
import { redactUrl, scrubbingLog, secretScrubber } from '../common/redact.js';
import { ensurePrivateDir } from '../common/private-dir.js';
import { loadTlsFiles } from '../protocol/tls-files.js';
import { ErrorCode, FerryError, isFerryError } from '../protocol/errors.js';
import type { GatewayConfig, RouteConfig } from './config.js';
import { FileHandler } from './handlers/file.js';
import type { Handler } from './handlers/handler.js';
import { createMqttHandler, type MqttHandlerOptions } from './handlers/mqtt.js';
import { StuckLog } from '../common/stuck-log.js';
import { routeScope } from './route-trouble.js';
import { createGatewayCore, type GatewayCore } from './core.js';
import { AgentRegistry } from './agents.js';
import { createAuthenticator, recheck } from './auth.js';
import { authWarnings, hostOf } from './auth-posture.js';
import { listen } from './listener.js';
import { checkListenAddresses } from './listen-check.js';
import { Admission } from './admission.js';
import { listenHttp, type HttpListener } from './longpoll/http-listener.js';
import { channelLimitsFor } from './longpoll/limits.js';
import { LongPollSessions, type LongPollSessionsStats } from './longpoll/sessions.js';
import { bodyLimitsFor } from '../protocol/longpoll/limits.js';
import { LogSummary } from './log-summary.js';
import { realFiles } from '../common/real-files.js';
import { lockDataDir } from './data-dir-lock.js';
import { mqttCredentials, routeSecrets, type MqttCredentials } from './route-secrets.js';
import { join } from 'node:path';
import { DownlinkStore } from './downlink/store.js';
import { credentialsFromUrl } from './handlers/mqtt.js';
import { uplinkReachesDownlink } from './handlers/topic-filter.js';
import { reusePlan, type LiveRoute } from './route-reuse.js';
import { downlinkTopic } from './downlink/mqtt-message.js';
import type { DownlinkStats } from './downlink/queue.js';
import { startIntake, type Intake, type IntakeStats } from './downlink/intake.js';
import { reloadGateway, type ReloadOutcome } from './reload.js';
import { startAdmin, type Admin } from './admin/index.js';
import { statusQueuesMax } from './admin/status.js';

export interface RunningGateway {
  /** the port actually bound (useful with port 0): the plaintext one, else the TLS one, else the HTTP(S) long-poll one */
  port: number;
  /** every port bound (`api`: the application API, listen.api; `admin`: listen.admin) */
  ports: { tcp?: number; tls?: number; http?: number; https?: number; api?: number; admin?: number };
  /** the admin endpoint's `http://HOST:PORT`, unless listen.admin is false */
  adminUrl?: string;
  /** the application API's `http://HOST:PORT` or `https://HOST:PORT`, when listen.api is set */
  apiUrl?: string;
  stats(): {
    sessions: number; dispatched: number; rejected: number; duplicates: number; retried: number; logSyncs: number;
    /** sockets open now, and connections refused so far by code */
    connections: number; refused: Record<string, number>;
    /** the HTTP long-poll sessions (absent without listen.http or listen.https) */
    longpoll?: LongPollSessionsStats & { connections: number };
    /** the downlink queues, and what came in through the API and the MQTT subscription */
    downlink: DownlinkStats & IntakeStats;
  };
  /**
   * Stops: takes no new connection, packet or downlink message, lets the handlers finish what
   * they hold (acking it) for at most `shutdownTimeoutMs`, then ends the sessions and closes the
   * handlers, the dispatch log and the queues.
   */
  stop(): Promise<void>;
  /** SIGHUP: applies the routes and the registries that `load()` and the data dir now hold (gateway/reload.ts). */
  reload(load: () => GatewayConfig): Promise<ReloadOutcome>;
}

/** The MQTT routes' credentials (password files read now), by route index. */
const credentialsOf = (routes: readonly RouteConfig[]): (MqttCredentials | undefined)[] =>
  routes.map((r, i) => (r.handler === 'mqtt' ? mqttCredentials(r, `routes[${i}]`, (p) => readFileSync(p, 'utf8')) : undefined));

/** Makes every route's handler; if one fails, those already made are closed and the error names the route. */
/** What every route's handler is made with, whichever config the routes come from (start or SIGHUP). */
interface HandlerDeps {
  log: Log;
  floorOf: (agent: string) => number;
  /** route i's broker connection reports go to its stuck cause */
  backendOf: (r: RouteConfig, i: number) => MqttHandlerOptions['backend'];
  /** topics the gateway's own downlink subscription listens on: no route may publish there */
  reservedFilters: readonly string[];
}

/** `indices`: each route's place in its config (a reload opens only some routes), for its stuck cause and its errors. */
async function openHandlers(routes: readonly RouteConfig[], d: HandlerDeps, credentials: readonly (MqttCredentials | undefined)[], indices: readonly number[] = routes.map((_, i) => i)): Promise<Handler[]> {
  const made = await Promise.allSettled(routes.map((r, i) => createHandler(r, d.log, d.floorOf, credentials[i], d.backendOf(r, indices[i]!), d.reservedFilters)));
  const failed = made.findIndex((m) => m.status === 'rejected');
  if (failed < 0) return made.map((m) => (m as PromiseFulfilledResult<Handler>).value);
  await Promise.all(made.map((m) => (m.status === 'fulfilled' ? m.value.close().catch(() => undefined) : undefined)));
  throw routeStartError(routes[failed]!, indices[failed]!, (made[failed] as PromiseRejectedResult).reason);
}

async function createHandler(route: RouteConfig, log: Log, floorOf: (agent: string) => number, credentials: MqttCredentials | undefined, backend: MqttHandlerOptions['backend'], reservedFilters: readonly string[]): Promise<Handler> {
  switch (route.handler) {
    case 'file':
      return FileHandler.open({ path: route.path, sync: route.sync, rotateBytes: route.rotateBytes, keep: route.keep, floorOf });
    case 'mqtt':
      return createMqttHandler({
        url: route.url, topic: route.topic, qos: route.qos, publishTimeoutMs: route.publishTimeoutMs, inflightMax: route.inflightMax, reservedFilters,
        ...(credentials?.username !== undefined && { username: credentials.username }),
        ...(credentials?.password !== undefined && { password: credentials.password }),
        log: (msg, fields) => log.info(msg, fields as Record<string, unknown>),
        backend,
      });
    // Loaded on first use: only a gateway with such a route loads node:https or a user's module.
    case 'webhook': {
      const { createWebhookHandler } = await import('./handlers/webhook.js');
      return createWebhookHandler(route);
    }
    case 'module': {
      // The config file's directory is not known here: a relative `module` path starts at the working directory.
      const { loadModuleHandler } = await import('./handlers/module.js');
      return loadModuleHandler(route, log, process.cwd());
    }
  }
}

/** A handler that cannot start stops the gateway with an error naming its route (`routes[N]`). */
function routeStartError(route: RouteConfig, i: number, err: unknown): FerryError {
  const message = err instanceof Error ? err.message : String(err);
  if (isFerryError(err)) return new FerryError(err.code, `routes[${i}]: ${message}`, { cause: err });
  const errno = (err as NodeJS.ErrnoException).code;
  return new FerryError(ErrorCode.CONFIG_INVALID, `routes[${i}]: ${route.handler} handler: ${message}${errno !== undefined ? ` (${errno})` : ''}`, { cause: err });
}

/**
 * Starts the gateway holding its dataDir's lock, taken before anything in the directory is opened
 * and released when the gateway stops or fails to start (DATA_DIR_LOCKED while another runs).
 */
export async function runGateway(config: GatewayConfig, opts: { log?: Log } = {}): Promise<RunningGateway> {
  // Before the dataDir exists: an address that cannot be bound must not leave one behind.
  await checkListenAddresses(config.listen);
  const lock = await lockDataDir(realFiles, config.dataDir);
  try {
    const gw = await startGateway(config, opts);
    return {
      ...gw,
      async stop() {
        try {
          await gw.stop();
        } finally {
          await lock.release();
        }
      },
    };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function startGateway(config: GatewayConfig, opts: { log?: Log }): Promise<RunningGateway> {
  // Password files are read before anything opens; every secret the routes hold is kept out of the log.
  const credentials = credentialsOf(config.routes);
  const downlinkMqtt = config.downlink.mqtt ? mqttCredentials(config.downlink.mqtt, 'downlink.mqtt', (p) => readFileSync(p, 'utf8')) : undefined;
  const downlinkSecret = downlinkMqtt?.password ?? (config.downlink.mqtt ? credentialsFromUrl(config.downlink.mqtt.url).password : undefined);
  const secrets = [...routeSecrets(config.routes, credentials), ...(downlinkSecret !== undefined ? [downlinkSecret, encodeURIComponent(downlinkSecret)] : [])];
  // A reload may bring new secrets: the scrubber is swapped behind one function (the log and the admin keep it).
  let current = secretScrubber(secrets);
  const scrub = (text: string): string => current(text);
  const log = scrubbingLog(opts.log ?? createLog({ level: config.log.level, format: config.log.format, base: { role: 'gateway' } }), scrub);
  const rescrub = (more: string[]): void => {
    current = secretScrubber([...secrets, ...more]);
  };
  // The admin port is bound first: a taken one (LISTEN_FAILED) stops the start before agents can connect.
  const admin = await startAdmin({ config, log, redact: scrub, now: () => realClock.now() });
  try {
    const gw = await startServing(config, log, admin, { credentials, downlinkMqtt, rescrub });
    return { ...gw, async stop() { try { await gw.stop(); } finally { await admin?.close(); } } };
  } catch (err) {
    await admin?.close();
    throw err;
  }
}

/** The gateway behind its admin endpoint: data dir, registry, handlers, core, listeners, intake. */
async function startServing(
  config: GatewayConfig, log: Log, admin: Admin | undefined,
  { credentials, downlinkMqtt, rescrub }: { credentials: (MqttCredentials | undefined)[]; downlinkMqtt: MqttCredentials | undefined; rescrub: (routeSecrets: string[]) => void },
): Promise<RunningGateway> {
  config.routes.forEach((r, i) => {
    if (r.handler === 'mqtt' && credentials[i]?.inUrl) log.warn(`gateway: routes[${i}].url carries credentials; they belong in its username and password (or passwordFile) keys`, { url: redactUrl(r.url) });
  });
  // The dataDir (made 0700 with its lock) holds token hashes and the dispatch log: not for other users.
  await ensurePrivateDir(config.dataDir, log);
  const clock = realClock;
  // TLS files and the agent registry are checked before a port opens: a mistake stops the start.
  const tlsFiles = config.tls ? loadTlsFiles(config.tls) : undefined;
  let core: GatewayCore | null = null;
  const agents = await AgentRegistry.open(config.dataDir, {
    log,
    // A revocation or a new token made with the CLI while the gateway runs ends the live session
    // that the change makes stale (a certificate session outlives a new token: it used none).
    onChanged: (agent) => {
      const session = core?.sessions.get(agent);
      if (!session?.credential) return;
      const still = recheck(agent, session.credential, agents);
      if (!still.ok) {
        log.info('gateway: ending a session the registry change made stale', { agent, code: still.code });
        session.bye(still.code, still.message);
      }
    },
  });
  const authenticate = createAuthenticator(config.auth, agents);
  for (const w of authWarnings(config)) log.warn(w.msg, { ...w.fields, agentsKnown: agents.list().length });
  if (config.auth.required && agents.list().every((a) => a.revoked) && config.tls?.ca === undefined) {
    log.warn('gateway: no agent is registered and no client CA is set, so every agent will be refused (AUTH_FAILED): register them with ferry gateway add-agent', { registry: agents.path });
  }

  // The file handler forgets marks below the dispatch floor; the dispatch log opens with the core, just after.
  const floorOf = (agent: string): number => core?.dispatchLog.floor(agent) ?? 0;
  // The gateway's own uplink never publishes where its downlink subscription listens (one agent's packet would be another's command).
  const downlinkFilter = config.downlink.mqtt ? downlinkTopic(config.downlink.mqtt.topic).filter : undefined;
  if (config.downlink.mqtt && downlinkFilter !== undefined) {
    const mqttRoutes = config.routes.flatMap((r, index) => (r.handler === 'mqtt' ? [{ index, url: r.url, topic: r.topic }] : []));
    for (const w of uplinkReachesDownlink(mqttRoutes, { url: config.downlink.mqtt.url, filter: downlinkFilter })) log.warn(w);
  }
  const reservedFilters = downlinkFilter !== undefined ? [downlinkFilter] : [];
  // A route whose backend or dispatch keeps failing is one stuck cause: logged once, then summarised.
  const stuck = new StuckLog({ log, clock, summaryIntervalMs: config.log.stuckSummaryIntervalMs });
  const backendOf = (r: RouteConfig, i: number): MqttHandlerOptions['backend'] => ({
    down: (code, error) => stuck.fail(routeScope(r.match), code, { msg: 'mqtt handler: cannot connect to the broker', fields: { route: i, match: r.match, url: r.handler === 'mqtt' ? redactUrl(r.url) : undefined, error } }),
    up: () => stuck.clear(routeScope(r.match)),
  });
  const handlerDeps: HandlerDeps = { log, floorOf, backendOf, reservedFilters };
  const handlers = await openHandlers(config.routes, handlerDeps, credentials);
  const { limits } = config;
  // One summary for the listener's refusals and the sessions' ends: strangers cannot flood the log.
  const summary = new LogSummary({ log, clock, intervalMs: config.log.summaryIntervalMs });
  // The downlink queues are always open: messages queued before a restart are delivered whether or not the API is still configured.
  const downlink = await DownlinkStore.open({ dir: join(config.dataDir, 'downlink'), clock, log, limits: config.downlink });
  const gw = await createGatewayCore({
    clock, log, dataDir: config.dataDir, limits, authenticate, logSummary: summary, stuck,
    routes: config.routes.map((r, i) => ({ match: r.match, handler: handlers[i]! })),
    newSessionId: randomUUID, rng: Math.random, downlink,
    ...(admin ? { observer: admin.observer, stopwatch: () => { const t0 = performance.now(); return () => (performance.now() - t0) / 1000; } } : {}),
  });
  core = gw;

  // One admission for every listener: an address's connections and long-poll sessions share its limits.
  const admission = new Admission(limits, { now: () => clock.now(), rng: Math.random });
  const listener = await listen({
    ...(config.listen.tcp !== undefined ? { tcp: config.listen.tcp } : {}),
    ...(config.listen.tls !== undefined ? { tls: config.listen.tls, tlsFiles } : {}),
    limits: {
      connectionsMax: limits.connectionsMax, connectionsPerAddressMax: limits.connectionsPerAddressMax,
      sessionsPerSecondMax: limits.sessionsPerSecondMax, sessionsPerAddressPerSecondMax: limits.sessionsPerAddressPerSecondMax, frameBytesMax: limits.frameBytesMax, handshakeTimeoutMs: limits.helloTimeoutMs,
      writeQueueBytesHigh: limits.writeQueueBytesHigh, writeQueueBytesMax: limits.writeQueueBytesMax, writeStallMs: limits.writeStallMs,
    },
    log, summary, admission,
  }, (t) => void gw.accept(t));
  let longpoll: { sessions: LongPollSessions; http: HttpListener } | undefined;
  if (config.listen.http !== undefined || config.listen.https !== undefined) {
    const lp = limits.longpoll;
    const channel = channelLimitsFor(limits.frameBytesMax);
    const sessions = new LongPollSessions({
      clock, log, summary, limits: { ...lp, sessionsMax: limits.connectionsMax, channel },
      randomId: () => randomBytes(16).toString('base64url'),
      onTransport: (t) => void gw.accept(t),
      admit: (address) => admission.admit(address),
      rng: Math.random,
    });
    try {
      const http = await listenHttp({
        ...(config.listen.http !== undefined ? { http: config.listen.http } : {}),
        ...(config.listen.https !== undefined ? { https: config.listen.https, tlsFiles } : {}),
        sessions, log,
        limits: {
          bodyBytesMax: bodyLimitsFor(channel).bodyBytesMax, requestBodyTimeoutMs: lp.requestBodyTimeoutMs, headersTimeoutMs: lp.headersTimeoutMs,
          keepAliveTimeoutMs: lp.keepAliveTimeoutMs, connectionsMax: limits.connectionsMax, socketsPerAddressMax: lp.socketsPerAddressMax,
          requestsPerSecondMax: lp.requestsPerSecondMax, requestsPerAddressPerSecondMax: lp.requestsPerAddressPerSecondMax,
        },
      });
      longpoll = { sessions, http };
    } catch (err) {
      await listener.close();
      throw err;
    }
  }
  let intake: Intake;
  try {
    intake = await startIntake({
      config, queues: downlink, agents, connected: (agent) => gw.sessions.has(agent),
      ...(tlsFiles ? { tlsFiles } : {}), ...(downlinkMqtt ? { mqttCredentials: downlinkMqtt } : {}),
      log, summary, clock, rng: Math.random,
    });
  } catch (err) {
    longpoll?.sessions.close();
    await Promise.all([listener.close(), longpoll?.http.close()]);
    await gw.close();
    throw err;
  }
  let stopping = false;
  let running = config;
  /** the routes in force with their handlers (a reload keeps those whose settings did not change) */
  let current: LiveRoute[] = config.routes.map((r, i) => ({ config: r, creds: credentials[i], handler: handlers[i]! }));
  let pending: LiveRoute[] | undefined;
  let reloads: Promise<void> = Promise.resolve();
  const ports: RunningGateway['ports'] = { ...listener.ports, ...longpoll?.http.ports, ...(intake.api ? { api: intake.api.port } : {}), ...(admin ? { admin: admin.port } : {}) };
  admin?.attach({
    listeners: () => (['tcp', 'tls', 'http', 'https', 'api', 'admin'] as const).flatMap((kind) => {
      const hostPort = config.listen[kind];
      const port = ports[kind];
      return typeof hostPort === 'string' && port !== undefined ? [{ kind, address: hostOf(hostPort), port }] : [];
    }),
    downlink: () => ({ ...downlink.stats(), queues: downlink.queues(statusQueuesMax) }),
    totals: () => {
      const { sessions, dispatched, rejected, duplicates, retried } = gw.stats();
      return { sessions, dispatched, rejected, duplicates, retried };
    },
  });
  log.info('gateway: listening', {
    tcp: config.listen.tcp !== undefined ? `${hostOf(config.listen.tcp)}:${ports.tcp}` : null,
    tls: config.listen.tls !== undefined ? `${hostOf(config.listen.tls)}:${ports.tls}` : null,
    http: config.listen.http !== undefined ? `${hostOf(config.listen.http)}:${ports.http}` : null,
    https: config.listen.https !== undefined ? `${hostOf(config.listen.https)}:${ports.https}` : null,
    api: intake.api?.url ?? null, admin: admin?.url ?? null, downlinkMqtt: config.downlink.mqtt ? redactUrl(config.downlink.mqtt.url) : null,
    clientCerts: tlsFiles?.ca !== undefined, authRequired: config.auth.required, routes: config.routes.length, agentsKnown: agents.list().length,
  });

  return {
    port: (ports.tcp ?? ports.tls ?? ports.http ?? ports.https)!,
    ports,
    ...(intake.api ? { apiUrl: intake.api.url } : {}),
    ...(admin ? { adminUrl: admin.url } : {}),
    stats: () => {
      const l = listener.stats();
      const dl = { downlink: { ...downlink.stats(), ...intake.stats() } };
      if (!longpoll) return { ...gw.stats(), ...l, ...dl };
      const h = longpoll.http.stats();
      const s = longpoll.sessions.stats();
      return { ...gw.stats(), ...l, longpoll: { ...s, connections: h.connections, refused: { ...h.refused, ...s.refused } }, ...dl };
    },
    async stop() {
      stopping = true;
      // A reload under way may still be making handlers: let it put them in the route table, which closes them below.
      await reloads.catch(() => undefined);
      agents.close();
      // No new downlink messages from here on; one being queued finishes and is answered first.
      await intake.close();
      // No new connections; those open stay until the handlers finished what they hold and it is acked.
      const closed = listener.close();
      const { inHandlers } = await gw.drain(config.shutdownTimeoutMs);
      if (inHandlers > 0) {
        log.warn('gateway: stopping with packets still in handlers after shutdownTimeoutMs; they are not acked and the agents send them again', { inHandlers, shutdownTimeoutMs: config.shutdownTimeoutMs });
      } else {
        log.info('gateway: drained; every packet handed to a handler is recorded and acked');
      }
      gw.byeAll(ErrorCode.SHUTDOWN, 'gateway stopping');
      // The BYEs go out in the held requests' answers; then every session ends and the sockets close.
      longpoll?.sessions.close();
      await Promise.all([closed, longpoll?.http.close()]);
      if (longpoll) {
        const lp = longpoll.sessions.stats();
        // What a run cost in HTTP requests (bench/longpoll.ts divides it by the packets delivered).
        log.info('gateway: long-poll totals', { requests: lp.requests, sessions: lp.sessionsOpened, refused: lp.refused });
      }
      await gw.close();
      summary.close();
      stuck.close();
    },
    reload(load) {
      // One reload at a time, in the order the signals came; none once stopping.
      const next = reloads.then(async (): Promise<ReloadOutcome> => {
        if (stopping) return { ok: false, code: ErrorCode.SHUTDOWN, error: 'the gateway is stopping' };
        const outcome = await reloadGateway(running, {
          log, load,
          openHandlers: async (routes) => {
            const creds = credentialsOf(routes);
            rescrub(routeSecrets(routes, creds));
            // A route whose settings did not change keeps its handler: one writer per file, one broker connection.
            const plan = reusePlan(current, routes, creds);
            const made = await openHandlers(plan.fresh.map((i) => routes[i]!), handlerDeps, plan.fresh.map((i) => creds[i]), plan.fresh);
            const out = plan.reused.slice();
            plan.fresh.forEach((i, k) => (out[i] = { config: routes[i]!, creds: creds[i], handler: made[k]! }));
            pending = out as LiveRoute[];
            return pending.map((r) => r.handler);
          },
          replaceRoutes: (routes, routesConfig) => {
            if (pending) current = pending;
            pending = undefined;
            gw.replaceRoutes(routes);
            // The status shows the routes now in force (the metrics label by pattern already).
            admin?.routesChanged(routesConfig);
          },
          reloadRegistries: async () => {
            await agents.reload();
            await intake.reload();
          },
        });
        if (outcome.ok) running = outcome.config;
        return outcome;
      });
      reloads = next.then(() => undefined);
      return next;
    },
  };
}
