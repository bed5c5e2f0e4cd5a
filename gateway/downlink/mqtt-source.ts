/**
 * The downlink's MQTT subscription (`downlink.mqtt`): messages published under
 * `ferry/down/{agent}/TARGET` are queued for the agent (gateway/downlink/mqtt-message.ts says how
 * topic and payload are read).
 *
 * Queued before acknowledged. The gateway keeps a persistent session at the broker (`clean: false`
 * under `clientId`, MQTT 5 with a session that does not expire), so what is published while it is
 * down waits at the broker. A message is acknowledged (QoS 1: PUBACK; QoS 2: PUBREC) only after
 * the durable enqueue resolved, through mqtt.js's hooks: `handleMessage(packet, callback)` sends
 * the PUBACK when called back; for QoS 2 mqtt.js sends PUBREC before `handleMessage` (which it
 * calls only at PUBREL), and its record of the QoS 2 exchange is in memory, so the message is
 * queued in `customHandleAcks`, which runs before the PUBREC. mqtt.js handles one incoming packet
 * at a time, waiting for the hook, so the messages are queued in the order they arrive, and at any
 * moment at most one is queued and not yet acknowledged.
 *
 * At least once, not exactly once: if the gateway dies after a message was queued and before the
 * broker got the acknowledgement, the broker sends the message again and it is queued twice (the
 * two copies have their own IDs and both reach the device). The MQTT packet ID cannot tell a
 * repeat apart (the broker reuses IDs, and a repeat after a reconnect may come without `dup`),
 * and the payload is the application's, so nothing is de-duplicated here.
 *
 * A message that can never be queued (not an agent ID, an agent the gateway does not know, no
 * target, a bad target, too large, too deep, the agent's queue full) is logged with its code (the
 * first whole, then summaries) and acknowledged: it is dropped, and the subscription goes on. A
 * failed write is not acknowledged: the connection is dropped, and the broker sends the message
 * again after the reconnect. Reconnects back off (with jitter) up to `reconnectDelayMsMax`.
 */
import { connect as mqttConnect, type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { redactUrl } from '../../common/redact.js';
import { ErrorCode } from '../../protocol/errors.js';
import { credentialsFromUrl } from '../handlers/mqtt.js';
import type { LogSummary } from '../log-summary.js';
import type { MessageLimits } from './message-rules.js';
import { downlinkTopic, parsePublish, type DownlinkTopic } from './mqtt-message.js';
import type { DownlinkQueues } from './queue.js';

export interface MqttSourceOptions {
  url: string;
  /** e.g. `ferry/down/{agent}/#` */
  topic: string;
  qos: 1 | 2;
  clientId: string;
  username?: string;
  password?: string;
  queues: DownlinkQueues;
  /** whether messages may be queued for `agent` (a valid agent ID) */
  agentKnown(agent: string): boolean;
  limits: MessageLimits;
  log: Log;
  summary: Pick<LogSummary, 'note'>;
  clock: Clock;
  rng: () => number;
  /** back-off between reconnects: from this (default 500) … */
  reconnectDelayMsMin?: number;
  /** … doubling up to this (default 30000) */
  reconnectDelayMsMax?: number;
  /** bound on one connection attempt up to the CONNACK (default 10000) */
  connectTimeoutMs?: number;
}

export interface MqttSourceStats {
  connected: boolean;
  /** connections made (the first included) */
  connects: number;
  /** messages received (repeats included) */
  received: number;
  queued: number;
  /** messages dropped, by code */
  refused: Record<string, number>;
  /** enqueues that failed to write (not acknowledged; the broker sends them again) */
  storeFailures: number;
}

/** An MQTT 5 session that outlives any outage: the broker's own limits (e.g. mosquitto's persistent_client_expiration) bound it. */
const sessionExpiryNever = 0xffffffff;

export class MqttSource {
  private readonly client: MqttClient;
  private readonly topic: DownlinkTopic;
  private readonly shownUrl: string;
  private readonly counts = { connects: 0, received: 0, queued: 0, storeFailures: 0 };
  private readonly refused: Record<string, number> = {};
  private connected = false;
  private closing = false;
  private attempt = 0;
  private timer: unknown = null;
  /** the message being queued now (at most one: mqtt.js waits for each hook) */
  private inProgress: Promise<void> = Promise.resolve();

  constructor(private readonly o: MqttSourceOptions) {
    this.topic = downlinkTopic(o.topic);
    this.shownUrl = redactUrl(o.url);
    const fromUrl = credentialsFromUrl(o.url);
    const username = o.username ?? fromUrl.username;
    const password = o.password ?? fromUrl.password;
    const opts: IClientOptions = {
      protocolVersion: 5,
      clean: false,
      clientId: o.clientId,
      properties: { sessionExpiryInterval: sessionExpiryNever },
      // Reconnects are ours (back-off with jitter); mqtt.js would retry at a fixed period.
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      resubscribe: false,
      ...(username !== undefined && { username }),
      ...(password !== undefined && { password }),
      customHandleAcks: (topic, payload, packet: IPublishPacket, done) => {
        if (packet.qos !== 2) return done(0);
        this.take({ ...packet, topic }, (err) => (err ? done(err) : done(0)));
      },
    };
    this.client = mqttConnect(fromUrl.url, opts);
    this.client.handleMessage = (packet, callback) => {
      if (packet.qos === 2) return callback(); // queued before its PUBREC (customHandleAcks)
      this.take(packet, callback);
    };
    this.client.on('connect', (connack: IConnackPacket) => this.onConnect(connack));
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err: Error & { code?: string | number }) => {
      this.o.summary.note('warn', 'downlink mqtt: connection failed', typeof err.code === 'string' ? err.code : err.code !== undefined ? `MQTT_${err.code}` : 'MQTT_ERROR', { url: this.shownUrl, error: err.message });
    });
  }

  stats(): MqttSourceStats {
    return { connected: this.connected, ...this.counts, refused: { ...this.refused } };
  }

  /** Lets a message being queued finish (and be acknowledged), then disconnects; the broker keeps the session. */
  async close(graceMs = 2000): Promise<void> {
    this.closing = true;
    this.o.clock.clearTimeout(this.timer);
    const bounded = (p: Promise<unknown>): Promise<unknown> => Promise.race([p, new Promise((r) => this.o.clock.setTimeout(() => r(undefined), graceMs))]);
    await bounded(this.inProgress);
    // A DISCONNECT when connected (the broker keeps the session either way); otherwise just the socket, if any.
    if (this.client.connected) await bounded(new Promise<void>((resolve) => this.client.end(false, {}, () => resolve())));
    this.client.end(true);
    this.connected = false;
  }

  private onConnect(connack: IConnackPacket): void {
    this.connected = true;
    this.attempt = 0;
    this.counts.connects++;
    // Subscribed on every connection: a session the broker lost (restarted without persistence) has no subscription.
    // Retained messages are not taken at subscription time (rh 2): an old retained command must not run again on every reconnect.
    this.client.subscribe(this.topic.filter, { qos: this.o.qos, rh: 2 }, (err, granted) => {
      const refusedBy = err ? err.message : granted?.[0] && granted[0].qos >= 128 ? `reason code ${granted[0].qos}` : undefined;
      if (refusedBy !== undefined) {
        this.o.log.error('downlink mqtt: the broker refused the subscription; trying again later', { url: this.shownUrl, filter: this.topic.filter, error: refusedBy });
        this.client.stream?.destroy();
        return;
      }
      this.o.log.info('downlink mqtt: subscribed', { url: this.shownUrl, filter: this.topic.filter, sessionPresent: connack.sessionPresent === true });
    });
  }

  private onClose(): void {
    this.connected = false;
    if (this.closing || this.timer !== null) return;
    const min = this.o.reconnectDelayMsMin ?? 500;
    const max = this.o.reconnectDelayMsMax ?? 30_000;
    const delay = Math.min(max, min * 2 ** Math.min(this.attempt, 30)) * (0.5 + 0.5 * this.o.rng());
    this.attempt++;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      if (!this.closing) this.client.reconnect();
    }, delay);
  }

  /** Queues one received message; calls back (the acknowledgement) once it is queued or refused for good, with an error if the write failed. */
  private take(packet: IPublishPacket, callback: (err?: Error) => void): void {
    this.counts.received++;
    const parsed = parsePublish({
      topic: packet.topic.toString(),
      payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
      ...(packet.properties?.messageExpiryInterval !== undefined ? { messageExpiryInterval: packet.properties.messageExpiryInterval } : {}),
    }, this.topic, this.o.limits);
    if (!('accepted' in parsed)) return this.drop(parsed.code, parsed.message, packet, parsed.agent, callback);
    const { agent, accepted: message } = parsed;
    if (!this.o.agentKnown(agent)) return this.drop(ErrorCode.API_AGENT_UNKNOWN, `agent ${agent} is not known to this gateway`, packet, agent, callback);
    this.inProgress = this.o.queues.enqueue(agent, message).then(
      (r) => {
        if (!r.ok) return this.drop(r.code, r.message, packet, agent, callback);
        this.counts.queued++;
        callback();
      },
      (err: unknown) => {
        this.counts.storeFailures++;
        this.o.log.error('downlink mqtt: a message could not be queued; not acknowledged, the broker sends it again after a reconnect', { agent, err });
        // Later messages of this connection must not be queued ahead of it: the connection goes, the broker resends from here.
        this.client.stream?.destroy();
        callback(err as Error);
      },
    );
  }

  private drop(code: string, message: string, packet: IPublishPacket, agent: string | undefined, callback: () => void): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
    this.o.summary.note('warn', 'downlink mqtt: message dropped', code, { topic: packet.topic.toString().slice(0, 300), message, ...(agent !== undefined ? { agent } : {}) });
    callback();
  }
}
