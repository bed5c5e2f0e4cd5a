import { z } from 'zod';
import { dataBytesMaxDefault, targetBytesMax } from '../protocol/packet.js';

const target = z.string().min(1).refine((s) => Buffer.byteLength(s) <= targetBytesMax, `at most ${targetBytesMax} bytes`);
const positiveInt = z.number().int().positive();

const serialSource = z.strictObject({
  kind: z.literal('serial'),
  path: z.string().min(1),
  baudRate: positiveInt.default(115200),
  format: z.enum(['kv', 'json']).default('kv'),
  reopenDelayMs: positiveInt.default(1000),
});

const rule = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('threshold'), key: z.string().min(1), above: z.number(), hysteresis: z.number().nonnegative().default(0), target }),
  z.strictObject({ kind: z.literal('delta'), key: z.string().min(1), delta: z.number().positive(), target }),
  z.strictObject({ kind: z.literal('heartbeat'), everyMs: positiveInt, target }),
]);

/** The agent's configuration file (`ferry agent --config FILE`). docs/config.md describes every key. */
export const agentConfigSchema = z.strictObject({
  /** the agent's ID: the identity of its packets, also across restarts */
  id: z.string().min(1).max(255).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only'),
  /** where the gateway listens, e.g. tcp://127.0.0.1:7800 */
  gateway: z.string().regex(/^tcp:\/\/[^/:]+:\d+$/, 'a URL like tcp://HOST:PORT'),
  token: z.string().min(1).optional(),
  dataDir: z.string().min(1),
  /** a hardware profile name (hw/profiles) or path: store size and in-flight window follow from it */
  profile: z.string().min(1).optional(),
  /** the local API's Unix socket; default DATADIR/agent.sock */
  socket: z.string().min(1).optional(),
  dataBytesMax: positiveInt.max(16 * 1024 * 1024).default(dataBytesMaxDefault),
  store: z.strictObject({
    sync: z.enum(['always', 'batch', 'none']).default('always'),
    batchWindowMs: z.number().int().min(1).max(10).default(10),
    bytesMax: positiveInt.optional(),
    fullPolicy: z.enum(['drop-oldest', 'reject', 'priority']).default('drop-oldest'),
    segmentBytes: positiveInt.min(4096).optional(),
  }).prefault({}),
  link: z.strictObject({
    inflightPacketsMax: positiveInt.max(65_535).optional(),
    framePacketsMax: positiveInt.max(10_000).default(256),
    reconnectDelayMsMin: positiveInt.default(100),
    reconnectDelayMsMax: positiveInt.default(30_000),
    connectTimeoutMs: positiveInt.default(5000),
    helloTimeoutMs: positiveInt.default(5000),
    pingIntervalMs: positiveInt.default(5000),
    peerTimeoutMs: positiveInt.default(20_000),
  }).prefault({}),
  sources: z.array(serialSource).default([]),
  rules: z.array(rule).default([]),
  /** how often time-driven rules (heartbeat) are evaluated */
  tickMs: positiveInt.default(50),
  log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info') }).prefault({}),
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
