/** Composition of the gateway: the only place that wires real IO (listening socket, files, clock). */
import { randomUUID } from 'node:crypto';
import { realClock } from '../common/clock.js';
import { createLog, type Log } from '../common/log.js';
import { loadTlsFiles } from '../protocol/tls-files.js';
import { ErrorCode } from '../protocol/errors.js';
import type { GatewayConfig, RouteConfig } from './config.js';
import { DispatchLog } from './dispatch-log.js';
import { FileHandler } from './handlers/file.js';
import type { Handler } from './handlers/handler.js';
import { createMqttHandler } from './handlers/mqtt.js';
import { Router } from './routes.js';
import { Session } from './session.js';
import { AgentRegistry } from './agents.js';
import { createAuthenticator } from './auth.js';
import { listen } from './listener.js';

export interface RunningGateway {
  /** the port actually bound (useful with port 0): the plaintext one, else the TLS one */
  port: number;
  /** every port bound */
  ports: { tcp?: number; tls?: number };
  stats(): {
    sessions: number; dispatched: number; rejected: number; duplicates: number; retried: number; logSyncs: number;
    /** sockets open now, and connections refused so far by code */
    connections: number; refused: Record<string, number>;
  };
  stop(): Promise<void>;
}

async function createHandler(route: RouteConfig, log: Log): Promise<Handler> {
  switch (route.handler) {
    case 'file':
      return FileHandler.open({ path: route.path, sync: route.sync, rotateBytes: route.rotateBytes, keep: route.keep });
    case 'mqtt':
      return createMqttHandler({ url: route.url, topic: route.topic, qos: route.qos, publishTimeoutMs: route.publishTimeoutMs, inflightMax: route.inflightMax, log: (msg, fields) => log.info(msg, fields as Record<string, unknown>) });
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

export async function runGateway(config: GatewayConfig, opts: { log?: Log } = {}): Promise<RunningGateway> {
  const log = opts.log ?? createLog({ level: config.log.level, base: { role: 'gateway' } });
  const clock = realClock;
  const sessions = new Map<string, Session>();
  // TLS files and the agent registry are checked before a port opens: a mistake stops the start.
  const tlsFiles = config.tls ? loadTlsFiles(config.tls) : undefined;
  const agents = await AgentRegistry.open(config.dataDir, {
    log,
    // A revocation made with the CLI while the gateway runs ends the agent's live session.
    onRevoked: (agent) => sessions.get(agent)?.bye(ErrorCode.AUTH_REVOKED, 'this agent was revoked'),
  });
  const authenticate = createAuthenticator(config.auth, agents);
  if (!config.auth.required) log.warn('gateway: authentication is off (auth.required false): any agent ID is accepted; see docs/security.md', { agentsKnown: agents.list().length });

  const dispatchLog = await DispatchLog.open(config.dataDir, log);
  const handlers = await Promise.all(config.routes.map((r) => createHandler(r, log)));
  const router = new Router(config.routes.map((r, i) => ({ match: r.match, handler: handlers[i]! })));
  const counters = { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 };
  const inDispatch = new Map<string, Map<number, Promise<void>>>();
  const { limits } = config;

  const listener = await listen({
    ...(config.listen.tcp !== undefined ? { tcp: config.listen.tcp } : {}),
    ...(config.listen.tls !== undefined ? { tls: config.listen.tls, tlsFiles } : {}),
    limits: {
      connectionsMax: limits.connectionsMax, connectionsPerAddressMax: limits.connectionsPerAddressMax,
      sessionsPerSecondMax: limits.sessionsPerSecondMax, frameBytesMax: limits.frameBytesMax, handshakeTimeoutMs: limits.helloTimeoutMs,
      writeQueueBytesHigh: limits.writeQueueBytesHigh, writeQueueBytesMax: limits.writeQueueBytesMax, writeStallMs: limits.writeStallMs,
    },
    log,
  }, (t) => {
    new Session(t, {
      helloTimeoutMs: limits.helloTimeoutMs, peerTimeoutMs: limits.peerTimeoutMs, pingIntervalMs: limits.pingIntervalMs,
      queuePacketsMax: limits.sessionQueuePacketsMax, queueBytesMax: limits.sessionQueueBytesMax,
      targetQueuePacketsMax: limits.targetQueuePacketsMax, targetSlowMs: limits.targetSlowMs, busyRetryAfterMs: limits.busyRetryAfterMs,
      retriesInPlace: limits.retriesInPlace, retryInPlaceMsMax: limits.retryInPlaceMsMax, packetBytesMax: limits.packetBytesMax,
      packetDepthMax: limits.packetDepthMax, frameBytesMax: limits.frameBytesMax,
    }, {
      clock, log, dispatchLog, router, counters, inDispatch,
      newSessionId: randomUUID,
      authenticate,
      register(agent, s) {
        const older = sessions.get(agent);
        if (!older && sessions.size >= limits.agentsMax) {
          return { ok: false, code: ErrorCode.AGENTS_MAX, message: `the gateway holds its maximum of ${limits.agentsMax} agents`, retryAfterMs: 5000 + Math.floor(Math.random() * 25_000) };
        }
        // One session per agent: a reconnect replaces a session the gateway still thinks is alive.
        older?.bye(ErrorCode.SESSION_REPLACED, 'a newer session of this agent connected');
        sessions.set(agent, s);
        return { ok: true };
      },
      unregister(agent, s) {
        if (sessions.get(agent) === s) sessions.delete(agent);
      },
    });
  });
  const hostOf = (hostPort: string): string => hostPort.slice(0, hostPort.lastIndexOf(':'));
  const { ports } = listener;
  log.info('gateway: listening', {
    tcp: config.listen.tcp !== undefined ? `${hostOf(config.listen.tcp)}:${ports.tcp}` : null,
    tls: config.listen.tls !== undefined ? `${hostOf(config.listen.tls)}:${ports.tls}` : null,
    clientCerts: tlsFiles?.ca !== undefined, authRequired: config.auth.required, routes: config.routes.length, agentsKnown: agents.list().length,
  });

  return {
    port: (ports.tcp ?? ports.tls)!,
    ports,
    stats: () => ({ sessions: sessions.size, ...counters, logSyncs: dispatchLog.syncs, ...listener.stats() }),
    async stop() {
      agents.close();
      const closed = listener.close();
      for (const s of sessions.values()) s.bye(ErrorCode.SHUTDOWN, 'gateway stopping');
      await closed;
      await Promise.all(handlers.map((h) => h.close()));
      await dispatchLog.close();
    },
  };
}
