import { z } from 'zod';
import { compilePattern } from './routes.js';

const positiveInt = z.number().int().positive();
const pattern = z.string().min(1).superRefine((p, ctx) => {
  try {
    compilePattern(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid route pattern: ${(err as Error).message}` });
  }
});

const fileRoute = z.strictObject({
  match: pattern,
  handler: z.literal('file'),
  path: z.string().min(1),
  sync: z.enum(['always', 'none']).default('always'),
});
const mqttRoute = z.strictObject({
  match: pattern,
  handler: z.literal('mqtt'),
  url: z.string().regex(/^mqtts?:\/\/.+/, 'a URL like mqtt://HOST:PORT'),
  topic: z.string().min(1).default('ferry/{agent}/{target}'),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
  publishTimeoutMs: positiveInt.default(5000),
});

/** The gateway's configuration file (`ferry gateway --config FILE`). docs/config.md describes every key. */
export const gatewayConfigSchema = z.strictObject({
  listen: z.strictObject({
    /** HOST:PORT for the TCP tunnel; port 0 picks a free port (printed at start) */
    tcp: z.string().regex(/^[^:]+:\d+$/, 'HOST:PORT, e.g. 127.0.0.1:7800'),
  }),
  dataDir: z.string().min(1),
  routes: z.array(z.discriminatedUnion('handler', [fileRoute, mqttRoute])).min(1),
  limits: z.strictObject({
    frameBytesMax: positiveInt.default(1024 * 1024),
    connectionsMax: positiveInt.default(10_000),
    sessionQueuePacketsMax: positiveInt.max(65_535).default(1024),
    sessionQueueBytesMax: positiveInt.default(8 * 1024 * 1024),
    helloTimeoutMs: positiveInt.default(5000),
    peerTimeoutMs: positiveInt.default(30_000),
  }).prefault({}),
  log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info') }).prefault({}),
});

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;
export type RouteConfig = GatewayConfig['routes'][number];
