/** Composition of the gateway: the only place that wires real IO (listening socket, files, clock). */
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { realClock } from '../common/clock.js';
import { createLog, type Log } from '../common/log.js';
import { SocketTransport } from '../protocol/socket-transport.js';
import { ErrorCode } from '../protocol/errors.js';
import type { GatewayConfig, RouteConfig } from './config.js';
import { DispatchLog } from './dispatch-log.js';
import { FileHandler } from './handlers/file.js';
import type { Handler } from './handlers/handler.js';
import { createMqttHandler } from './handlers/mqtt.js';
import { Router } from './routes.js';
import { Session } from './session.js';

export interface RunningGateway {
  /** the TCP port actually bound (useful with port 0) */
  port: number;
  stats(): { sessions: number; dispatched: number; rejected: number; duplicates: number; logSyncs: number };
  stop(): Promise<void>;
}

async function createHandler(route: RouteConfig, log: Log): Promise<Handler> {
  switch (route.handler) {
    case 'file':
      return FileHandler.open({ path: route.path, sync: route.sync });
    case 'mqtt':
      return createMqttHandler({ url: route.url, topic: route.topic, qos: route.qos, publishTimeoutMs: route.publishTimeoutMs, log: (msg, fields) => log.info(msg, fields as Record<string, unknown>) });
  }
}

export async function runGateway(config: GatewayConfig, opts: { log?: Log } = {}): Promise<RunningGateway> {
  const log = opts.log ?? createLog({ level: config.log.level, base: { role: 'gateway' } });
  const clock = realClock;
  const dispatchLog = await DispatchLog.open(config.dataDir, log);
  const handlers = await Promise.all(config.routes.map((r) => createHandler(r, log)));
  const router = new Router(config.routes.map((r, i) => ({ match: r.match, handler: handlers[i]! })));
  const sessions = new Map<string, Session>();
  const counters = { dispatched: 0, rejected: 0, duplicates: 0 };
  const { limits } = config;

  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    const t = new SocketTransport(socket, { frameBytesMax: limits.frameBytesMax });
    new Session(t, {
      helloTimeoutMs: limits.helloTimeoutMs, peerTimeoutMs: limits.peerTimeoutMs,
      queuePacketsMax: limits.sessionQueuePacketsMax, queueBytesMax: limits.sessionQueueBytesMax,
    }, {
      clock, log, dispatchLog, router, counters,
      newSessionId: randomUUID,
      register(agent, s) {
        // One session per agent: a reconnect replaces a session the gateway still thinks is alive.
        sessions.get(agent)?.bye(ErrorCode.SESSION_REPLACED, 'a newer session of this agent connected');
        sessions.set(agent, s);
      },
      unregister(agent, s) {
        if (sessions.get(agent) === s) sessions.delete(agent);
      },
    });
  });
  server.maxConnections = limits.connectionsMax;
  const [host, portText] = [config.listen.tcp.slice(0, config.listen.tcp.lastIndexOf(':')), config.listen.tcp.slice(config.listen.tcp.lastIndexOf(':') + 1)];
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portText), host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info('gateway: listening', { tcp: `${host}:${port}`, routes: config.routes.length, agentsKnown: 0 });

  return {
    port,
    stats: () => ({ sessions: sessions.size, ...counters, logSyncs: dispatchLog.syncs }),
    async stop() {
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sessions.values()) s.bye(ErrorCode.SHUTDOWN, 'gateway stopping');
      });
      await Promise.all(handlers.map((h) => h.close()));
      await dispatchLog.close();
    },
  };
}
