/**
 * The ways downlink messages come in, started and stopped together by gateway/main.ts: the
 * application API (`listen.api`, with the application registry `DATADIR/apps.json`) and the MQTT
 * subscription (`downlink.mqtt`). Both queue into the same DownlinkQueues and decide alike which
 * agents may be queued for (`agentKnown`).
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import type { TlsFiles } from '../../protocol/tls-files.js';
import type { AgentLookup } from '../agents.js';
import { AppRegistry } from '../apps.js';
import type { GatewayConfig } from '../config.js';
import type { LogSummary } from '../log-summary.js';
import type { MqttCredentials } from '../route-secrets.js';
import { listenApi, type ApiServer, type ApiStats } from './api.js';
import { MqttSource, type MqttSourceStats } from './mqtt-source.js';
import type { DownlinkQueues } from './queue.js';

export interface IntakeOptions {
  config: GatewayConfig;
  queues: DownlinkQueues;
  agents: AgentLookup;
  /** whether `agent` has a live session now (an agent known by its certificate alone is not in the registry) */
  connected(agent: string): boolean;
  /** the gateway's TLS files: with cert and key the API is HTTPS */
  tlsFiles?: TlsFiles;
  /** downlink.mqtt's credentials, read at start (route-secrets.ts) */
  mqttCredentials?: MqttCredentials;
  log: Log;
  summary: LogSummary;
  clock: Clock;
  rng: () => number;
}

export interface IntakeStats {
  api?: ApiStats;
  mqtt?: MqttSourceStats;
}

export interface Intake {
  /** the API's port and URL, when listen.api is set */
  api?: { port: number; url: string };
  stats(): IntakeStats;
  /** Re-reads the application registry (SIGHUP); nothing without listen.api. */
  reload(): Promise<void>;
  /** Stops taking messages: what is being queued finishes (and is answered or acknowledged) first. */
  close(): Promise<void>;
}

/**
 * Whether messages may be queued for `agent`: never for a revoked agent; with `auth.required`
 * only for a registered one, or one connected now (by its client certificate); otherwise for any.
 */
export function agentKnownBy(config: Pick<GatewayConfig, 'auth'>, agents: AgentLookup, connected: (agent: string) => boolean): (agent: string) => boolean {
  return (agent) => {
    const entry = agents.get(agent);
    if (entry?.revoked) return false;
    return !config.auth.required || entry !== undefined || connected(agent);
  };
}

export async function startIntake(o: IntakeOptions): Promise<Intake> {
  const { config, log } = o;
  const agentKnown = agentKnownBy(config, o.agents, o.connected);
  const limits = { messageBytesMax: config.downlink.messageBytesMax, dataDepthMax: config.limits.packetDepthMax };
  let apps: AppRegistry | undefined;
  let api: ApiServer | undefined;
  let mqtt: MqttSource | undefined;
  try {
    if (config.listen.api !== undefined) {
      apps = await AppRegistry.open(config.dataDir, { log });
      if (apps.list().every((a) => a.revoked)) {
        log.warn('gateway: the API has no application yet, so every request is refused (API_AUTH_FAILED): add one with ferry gateway add-app', { registry: apps.path });
      }
      api = await listenApi({
        listen: config.listen.api, ...(o.tlsFiles ? { tlsFiles: o.tlsFiles } : {}),
        queues: o.queues, apps, agentKnown, log, summary: o.summary,
        limits: { ...config.limits.api, ...limits },
      });
    }
    const m = config.downlink.mqtt;
    if (m !== undefined) {
      mqtt = new MqttSource({
        url: m.url, topic: m.topic, qos: m.qos, clientId: m.clientId,
        ...(o.mqttCredentials?.username !== undefined ? { username: o.mqttCredentials.username } : {}),
        ...(o.mqttCredentials?.password !== undefined ? { password: o.mqttCredentials.password } : {}),
        queues: o.queues, agentKnown, limits, log, summary: o.summary, clock: o.clock, rng: o.rng,
      });
    }
  } catch (err) {
    apps?.close();
    await api?.close(0);
    throw err;
  }
  return {
    ...(api ? { api: { port: api.port, url: api.url } } : {}),
    stats: () => ({ ...(api ? { api: api.stats() } : {}), ...(mqtt ? { mqtt: mqtt.stats() } : {}) }),
    reload: async () => {
      await apps?.reload();
    },
    async close() {
      apps?.close();
      await Promise.all([api?.close(), mqtt?.close()]);
    },
  };
}
