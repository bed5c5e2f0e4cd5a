import { connect as mqttConnect, type IClientOptions, type IClientPublishOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { redactUrl, secretScrubber } from '../../common/redact.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { charProblem } from '../../protocol/ids.js';
import { bytesAsBase64, type PacketData } from '../../protocol/packet.js';
import type { DispatchPacket, Handler, HandlerResult } from './handler.js';
import { fillTemplate } from './template.js';
import { topicMatchesFilter } from './topic-filter.js';

export interface MqttHandlerOptions {
  /**
   * Broker URL: `mqtt://host:1883`, `mqtts://…`, `ws://…`. Credentials in it (`mqtt://user:pw@host`)
   * still work, but belong in `username` and `password`: the handler takes them out of the URL
   * before mqtt.js sees it, and never shows more of the URL than `scheme://host:port/…`.
   */
  url: string;
  /** Topic template: `{agent}` and `{target}` are replaced; a target's `/` levels are kept. */
  topic: string;
  /** 1 (default): `handle` resolves ok after the PUBACK; 2: after the PUBCOMP; 0: once written to the socket. */
  qos?: 0 | 1 | 2;
  /** Bound on one connection attempt, up to the CONNACK (default 10000). */
  connectTimeoutMs?: number;
  /** Bound on one `handle` call, including any wait for the connection or a free in-flight slot (default 5000). */
  publishTimeoutMs?: number;
  /** Pause between reconnect attempts (default 1000). */
  reconnectPeriodMs?: number;
  /** The retry-after of a retryable failure (default 1000). */
  retryAfterMs?: number;
  /**
   * Publishes sent and not yet acknowledged, at most (default 256, at most 60000); further
   * `handle` calls wait for a slot. mqtt.js 5.16 reuses message ids still in flight past 65,535
   * and ignores the broker's Receive Maximum, so this bound is ours to keep.
   */
  inflightMax?: number;
  /** How long `close()` waits for in-flight publishes and the broker's goodbye before it forces (default 2000). */
  closeTimeoutMs?: number;
  clientId?: string;
  /**
   * Topic filters this handler never publishes to: the gateway's own downlink subscription
   * (`downlink.mqtt`, e.g. `ferry/down/+/#`). A packet whose topic one of them matches is refused
   * for good (HANDLER_REJECTED), whichever broker the route names (another URL may reach the same
   * broker, or a bridge to it): the gateway's own uplink must never become a downlink message.
   */
  reservedFilters?: readonly string[];
  /** Credentials for the broker's CONNECT; not both these and credentials in `url`. */
  username?: string;
  password?: string;
  log?: (msg: string, fields?: object) => void;
  /**
   * Told of each failed connection attempt (the error's code, e.g. ECONNREFUSED, and its scrubbed
   * message) and of each connection made: the gateway logs a broker that stays down as one stuck
   * cause. Absent: a changed error message is logged through `log`.
   */
  backend?: { down(code: string, message: string): void; up(): void };
}

export interface MqttHandlerDeps {
  /** Makes the client; mqtt.js `connect` by default. Tests pass a wrapper to watch the client. */
  connect?: (brokerUrl: string, opts: IClientOptions) => MqttClient;
}

/** `connecting`: before the first attempt ended; `disconnected`: the last attempt failed or the connection was lost. */
export type MqttHandlerStatus = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface MqttHandler extends Handler {
  readonly kind: 'mqtt';
  readonly status: MqttHandlerStatus;
  /** Publishes sent to the broker and not yet acknowledged. */
  readonly inflight: number;
  /** The configured bound on `inflight`, also what the gateway may pipeline per target. */
  readonly inflightMax: number;
}

export const inflightMaxLimit = 60_000;
export const inflightMaxDefault = 256;

/** The topic for a packet: `{agent}` and `{target}` in the template replaced, nothing else touched. */
export function renderTopic(template: string, agent: string, target: string): string {
  return fillTemplate(template, agent, target);
}

/**
 * Why `topic` cannot be published to, or undefined. Each of these makes mosquitto drop the whole
 * connection (a malformed packet), not just refuse the one publish: a wildcard, more than 65535
 * bytes (the length prefix), a code point outside MQTT's UTF-8 rule. A leading `$` is the broker's
 * own namespace (`$SYS`): refused here so a template cannot aim packets at it.
 */
export function topicProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'the topic is empty';
  if (topic.includes('+') || topic.includes('#')) return `topic "${topic}" contains a wildcard (+ or #), which a publish may not use`;
  if (topic.startsWith('$')) return `topic "${topic}" starts with $, which brokers keep for themselves`;
  if (Buffer.byteLength(topic, 'utf8') > mqttStringBytesMax) return `the topic is longer than ${mqttStringBytesMax} bytes`;
  let levels = 1;
  for (let i = topic.indexOf('/'); i !== -1; i = topic.indexOf('/', i + 1)) levels++;
  if (levels > mqttTopicLevelsMax) return `topic has ${levels} levels; brokers take at most ${mqttTopicLevelsMax}`;
  return stringProblem(topic, 'topic');
}

/**
 * mosquitto refuses a topic of more levels than this (TOPIC_HIERARCHY_LIMIT) as a protocol error and
 * drops the connection every agent shares: a target of 200 slashes would, so it is refused alone.
 */
export const mqttTopicLevelsMax = 200;

/** An MQTT string's 16-bit length prefix. */
const mqttStringBytesMax = 65_535;

/** MQTT strings (topics, user properties) follow protocol/ids.ts charProblem: what mosquitto accepts. */
function stringProblem(s: string, what: string): string | undefined {
  if (Buffer.byteLength(s, 'utf8') > mqttStringBytesMax) return `${what} is longer than ${mqttStringBytesMax} bytes`;
  const chars = charProblem(s);
  return chars === undefined ? undefined : `${what} contains ${chars}, which MQTT brokers refuse`;
}

/** MQTT's own ceiling on a packet: a remaining length of at most 268,435,455 plus 5 bytes of fixed header. */
export const mqttPacketBytesMax = 268_435_460;

function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function stringBytes(s: string): number {
  return 2 + Buffer.byteLength(s, 'utf8');
}

/**
 * The size of the PUBLISH packet mqtt.js writes for this message (MQTT 5), counted without
 * encoding it: compared with the broker's Maximum Packet Size, since mosquitto drops the whole
 * connection for a packet over it rather than refusing the one publish.
 */
export function publishPacketBytes(topic: string, payloadBytes: number, publish: IClientPublishOptions): number {
  const props = publish.properties ?? {};
  let propBytes = 0;
  for (const [key, value] of Object.entries(props.userProperties ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) propBytes += 1 + stringBytes(key) + stringBytes(String(v));
  }
  if (props.contentType !== undefined) propBytes += 1 + stringBytes(props.contentType);
  if (props.payloadFormatIndicator !== undefined) propBytes += 2;
  const remaining = stringBytes(topic) + ((publish.qos ?? 0) > 0 ? 2 : 0) + varintBytes(propBytes) + propBytes + payloadBytes;
  return 1 + varintBytes(remaining) + remaining;
}

/**
 * PUBACK/PUBREC reason codes that refuse this one publish for good (MQTT 5 §3.4.2.1): not
 * authorized, topic name invalid, packet too large, payload format invalid. Others (quota
 * exceeded, unspecified, implementation specific) may pass later and stay retryable.
 */
const refusedForGood = new Set([0x87, 0x90, 0x95, 0x99]);

function encodePayload(data: PacketData): { payload: Buffer; json: boolean } {
  if (data instanceof Uint8Array) return { payload: Buffer.from(data.buffer, data.byteOffset, data.byteLength), json: false };
  const text = JSON.stringify(data, bytesAsBase64) as string | undefined;
  if (text === undefined) throw new Error('the value has no JSON form');
  return { payload: Buffer.from(text, 'utf8'), json: true };
}

interface Job {
  topic: string;
  payload: Buffer;
  publish: IClientPublishOptions;
  resolve: (result: HandlerResult) => void;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
  messageId: number | undefined;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: ${name} must be a positive number, got ${String(value)}`);
  return v;
}

interface Settings {
  /** the URL as shown in messages and logs: redactUrl() */
  shownUrl: string;
  /** takes the password out of any text from mqtt.js or the broker, and redacts URLs */
  scrub: (text: string) => string;
  topic: string;
  qos: 0 | 1 | 2;
  publishTimeoutMs: number;
  retryAfterMs: number;
  closeTimeoutMs: number;
  inflightMax: number;
  reservedFilters: readonly string[];
  log: (msg: string, fields?: object) => void;
  backend: MqttHandlerOptions['backend'];
}

/**
 * The URL without its userinfo, and the credentials that were in it (percent-decoded, as mqtt.js
 * would read them). Throws CONFIG_INVALID for a URL that cannot be read, naming no more of it
 * than redactUrl shows.
 */
export function credentialsFromUrl(url: string): { url: string; username?: string; password?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: url: not a URL (${redactUrl(url)})`, { cause: err });
  }
  if (u.username === '' && u.password === '') return { url };
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const username = decode(u.username);
  const password = decode(u.password);
  u.username = '';
  u.password = '';
  return { url: u.href, ...(username !== '' && { username }), ...(password !== '' && { password }) };
}

function settingsFrom(opts: MqttHandlerOptions): { settings: Settings; clientOpts: IClientOptions; url: string } {
  if (typeof opts.topic !== 'string' || opts.topic.length === 0) throw new FerryError(ErrorCode.CONFIG_INVALID, 'mqtt handler: topic must be a non-empty template');
  // A template that no agent or target can make publishable (a wildcard, a noncharacter) fails at start, not per packet.
  const templateProblem = topicProblem(renderTopic(opts.topic, 'agent', 'target'));
  if (templateProblem !== undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: topic template: ${templateProblem}`);
  const qos = opts.qos ?? 1;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: qos must be 0, 1 or 2, got ${String(qos)}`);
  const inflightMax = positive('inflightMax', opts.inflightMax, inflightMaxDefault);
  if (!Number.isInteger(inflightMax) || inflightMax > inflightMaxLimit) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: inflightMax must be an integer of at most ${inflightMaxLimit}, got ${inflightMax}`);
  }
  const fromUrl = credentialsFromUrl(opts.url);
  if ((fromUrl.username !== undefined || fromUrl.password !== undefined) && (opts.username !== undefined || opts.password !== undefined)) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: credentials are given both in the url (${redactUrl(opts.url)}) and as username/password: keep them in username/password only`);
  }
  const username = opts.username ?? fromUrl.username;
  const password = opts.password ?? fromUrl.password;
  const settings: Settings = {
    shownUrl: redactUrl(opts.url),
    scrub: secretScrubber(password !== undefined ? [password] : []),
    topic: opts.topic,
    qos,
    publishTimeoutMs: positive('publishTimeoutMs', opts.publishTimeoutMs, 5000),
    retryAfterMs: positive('retryAfterMs', opts.retryAfterMs, 1000),
    closeTimeoutMs: positive('closeTimeoutMs', opts.closeTimeoutMs, 2000),
    inflightMax,
    reservedFilters: opts.reservedFilters ?? [],
    log: opts.log ?? (() => {}),
    backend: opts.backend,
  };
  const clientOpts: IClientOptions = {
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: positive('reconnectPeriodMs', opts.reconnectPeriodMs, 1000),
    connectTimeout: positive('connectTimeoutMs', opts.connectTimeoutMs, 10_000),
    ...(opts.clientId !== undefined && { clientId: opts.clientId }),
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
  };
  return { settings, clientOpts, url: fromUrl.url };
}

/**
 * A handler that publishes each packet to an MQTT 5 broker. It connects at creation and reconnects
 * by itself; a broker that is down is never an exception, only a retryable result. `handle` never
 * rejects: it resolves ok once the broker acknowledged the publish (QoS 1: PUBACK), a retryable
 * HANDLER_FAILED when the broker is unreachable, refuses, or does not answer in time, and a
 * permanent HANDLER_FAILED when the packet can never be published (a topic, agent ID or target
 * that breaks MQTT's rules, a packet over the broker's Maximum Packet Size, data with no JSON
 * form), and a permanent HANDLER_REJECTED when the broker refuses the one publish for good (its
 * PUBACK reason code) or the topic lies under the gateway's own downlink subscription
 * (`reservedFilters`). Whatever mosquitto would treat as a malformed packet is caught before it is
 * sent: a malformed packet ends the connection every agent's packets share. A publish that failed is withdrawn from mqtt.js, so mqtt.js does not send it
 * again on reconnect behind the agent's own retry. The packet identity travels in user properties
 * `ferry-agent`, `ferry-seq`, `ferry-target`, `ferry-ts` for consumers to de-duplicate.
 * Invalid options throw CONFIG_INVALID.
 */
export function createMqttHandler(opts: MqttHandlerOptions, deps: MqttHandlerDeps = {}): MqttHandler {
  const { settings, clientOpts, url } = settingsFrom(opts);
  let client: MqttClient;
  try {
    client = (deps.connect ?? mqttConnect)(url, clientOpts);
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `mqtt handler: cannot use broker URL ${settings.shownUrl}: ${settings.scrub((err as Error).message)}`);
  }
  return new MqttPublisher(settings, client);
}

class MqttPublisher implements MqttHandler {
  readonly kind = 'mqtt' as const;
  /** The gateway may pipeline as many packets of one target as may be un-acknowledged at once. */
  readonly inflightMax: number;
  private state: MqttHandlerStatus = 'connecting';
  /** The broker's Maximum Packet Size from the last CONNACK, else MQTT's own ceiling. */
  private packetBytesMax = mqttPacketBytesMax;
  /** Jobs waiting for the connection or for an in-flight slot, oldest first. */
  private readonly waiting: Job[] = [];
  private readonly sentJobs = new Set<Job>();
  private corked = false;
  private lastError = '';
  private inflightEmpty: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly s: Settings,
    private readonly client: MqttClient,
  ) {
    this.inflightMax = s.inflightMax;
    client.on('connect', (connack?: IConnackPacket) => this.onConnect(connack));
    client.on('close', () => this.onClose());
    client.on('error', (err: Error & { code?: unknown }) => {
      if (this.s.backend) return this.s.backend.down(typeof err.code === 'string' || typeof err.code === 'number' ? String(err.code) : ErrorCode.HANDLER_FAILED, this.s.scrub(err.message));
      if (err.message === this.lastError) return;
      this.lastError = err.message;
      this.s.log('mqtt handler: client error', { url: this.s.shownUrl, error: this.s.scrub(err.message) });
    });
  }

  get status(): MqttHandlerStatus {
    return this.state;
  }

  get inflight(): number {
    return this.sentJobs.size;
  }

  handle(packet: DispatchPacket): Promise<HandlerResult> {
    if (this.state === 'closed') return Promise.resolve(this.retryable('the mqtt handler is closed'));
    const topic = renderTopic(this.s.topic, packet.agent, packet.target);
    const problem = topicProblem(topic) ?? stringProblem(packet.agent, 'the agent ID') ?? stringProblem(packet.target, 'the target');
    if (problem !== undefined) return Promise.resolve(this.permanent(`cannot publish: ${problem}`));
    const reserved = this.s.reservedFilters.find((f) => topicMatchesFilter(f, topic));
    if (reserved !== undefined) {
      return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `cannot publish to "${topic}": the gateway's downlink subscription (${reserved}) listens there, and an uplink packet must not become a downlink message` });
    }
    let encoded: { payload: Buffer; json: boolean };
    try {
      encoded = encodePayload(packet.data);
    } catch (err) {
      return Promise.resolve(this.permanent(`cannot publish: data cannot be encoded as JSON (${(err as Error).message})`));
    }
    if (this.state === 'disconnected') return Promise.resolve(this.retryable(`the MQTT broker at ${this.s.shownUrl} is not connected`));
    const publish: IClientPublishOptions = {
      qos: this.s.qos,
      properties: {
        userProperties: {
          'ferry-agent': packet.agent,
          'ferry-seq': String(packet.seq),
          'ferry-target': packet.target,
          'ferry-ts': String(packet.ts),
        },
        ...(encoded.json && { contentType: 'application/json', payloadFormatIndicator: true }),
      },
    };
    return new Promise<HandlerResult>((resolve) => {
      const job: Job = { topic, payload: encoded.payload, publish, resolve, timer: undefined, settled: false, messageId: undefined };
      job.timer = setTimeout(() => this.onTimeout(job), this.s.publishTimeoutMs);
      this.waiting.push(job);
      this.pump();
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private retryable(message: string): HandlerResult {
    return { ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message, retryAfterMs: this.s.retryAfterMs };
  }

  private permanent(message: string): HandlerResult {
    return { ok: false, retryable: false, code: ErrorCode.HANDLER_FAILED, message };
  }

  /** Settles a job once; a failed job still held by mqtt.js is withdrawn so mqtt.js does not send it again. */
  private finish(job: Job, result: HandlerResult): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    // A job that was sent is not in the queue: only one that timed out while waiting needs the scan.
    if (!this.sentJobs.delete(job)) {
      const at = this.waiting.indexOf(job);
      if (at >= 0) this.waiting.splice(at, 1);
    }
    if (job.messageId !== undefined && !result.ok) this.client.removeOutgoingMessage(job.messageId);
    job.resolve(result);
    if (this.sentJobs.size === 0) this.inflightEmpty?.();
    this.pump();
  }

  private pump(): void {
    while (this.state === 'connected' && this.sentJobs.size < this.s.inflightMax && this.waiting.length > 0) this.send(this.waiting.shift()!);
  }

  private send(job: Job): void {
    const bytes = publishPacketBytes(job.topic, job.payload.length, job.publish);
    if (bytes > this.packetBytesMax) {
      this.finish(job, this.permanent(`cannot publish: the packet would be ${bytes} bytes; the broker takes at most ${this.packetBytesMax}`));
      return;
    }
    this.sentJobs.add(job);
    const done = (err?: Error & { code?: unknown }): void => {
      if (!err) return this.finish(job, { ok: true });
      if (typeof err.code === 'number' && refusedForGood.has(err.code)) {
        return this.finish(job, { ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `the MQTT broker refused the publish to "${job.topic}": ${this.s.scrub(err.message)}` });
      }
      this.finish(job, this.retryable(`mqtt publish to "${job.topic}" failed: ${this.s.scrub(err.message)}`));
    };
    this.corkUntilNextTurn();
    this.client.publish(job.topic, job.payload, job.publish, done);
    if (this.s.qos > 0 && !job.settled) {
      // publish() allocates the id synchronously while connected; keep it to withdraw the message on failure.
      const id = this.client.getLastMessageId();
      if (this.client.outgoing[id]?.cb === done) job.messageId = id;
    }
  }

  /**
   * Publishes started in one turn of the event loop (a DATA frame's packets) leave in one write
   * instead of one system call each: mqtt-packet corks per packet until the next tick, and this
   * outer cork holds them all until the I/O phase.
   */
  private corkUntilNextTurn(): void {
    const stream = this.client.stream as (NodeJS.WritableStream & { cork?(): void; uncork?(): void }) | undefined;
    if (this.corked || !stream?.cork || !stream.uncork) return;
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      stream.uncork!();
    });
  }

  private onTimeout(job: Job): void {
    const why = this.sentJobs.has(job) ? 'the broker did not acknowledge the publish' : this.state === 'connected' ? 'no in-flight slot became free' : 'the broker did not connect';
    this.finish(job, this.retryable(`mqtt publish to "${job.topic}" timed out after ${this.s.publishTimeoutMs} ms: ${why}`));
  }

  private onConnect(connack: IConnackPacket | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'connected';
    this.packetBytesMax = connack?.properties?.maximumPacketSize ?? mqttPacketBytesMax;
    this.lastError = '';
    this.s.backend?.up();
    this.s.log('mqtt handler: connected', { url: this.s.shownUrl });
    this.pump();
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    if (this.state === 'connected') this.s.log('mqtt handler: connection lost', { url: this.s.shownUrl });
    this.state = 'disconnected';
    for (const job of [...this.sentJobs]) this.finish(job, this.retryable('the connection to the MQTT broker was lost before it acknowledged the publish'));
    for (const job of [...this.waiting]) this.finish(job, this.retryable(`the MQTT broker at ${this.s.shownUrl} is not connected`));
  }

  /** Refuses new work, gives in-flight publishes until closeTimeoutMs, then ends the client (forced if need be). */
  private async shutdown(): Promise<void> {
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    for (const job of [...this.waiting]) this.finish(job, this.retryable('the mqtt handler is closed'));
    if (this.sentJobs.size > 0 && wasConnected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.s.closeTimeoutMs);
        this.inflightEmpty = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const job of [...this.sentJobs]) this.finish(job, this.retryable('the mqtt handler closed before the broker acknowledged the publish'));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.client.stream?.destroy(); // the broker did not answer the DISCONNECT: drop the socket, which ends the client
        resolve();
      }, this.s.closeTimeoutMs);
      this.client.end(!wasConnected, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
