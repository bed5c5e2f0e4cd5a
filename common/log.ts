/**
 * The logger every component receives: a small `Log` interface, implemented with pino. Components
 * never print directly. By default one JSON object per line on stderr (`level` as a name, `time`
 * as an ISO string, `msg`), so logs stay greppable on a device and machine-readable on a host;
 * `format: 'pretty'` (or `auto` on a terminal) prints them for people through pino-pretty.
 */
import { createRequire } from 'node:module';
import type { DestinationStream, Logger, pino as Pino } from 'pino';

// pino and pino-pretty are loaded when a logger is made, not when this module is imported: the
// config schemas and the store import this module, and `ferry send` should not pay ~100 ms for pino.
const require = createRequire(import.meta.url);
const loadPino = (): typeof Pino => (require('pino') as { pino: typeof Pino }).pino;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

/** `auto`: pretty when stderr is a terminal, JSON otherwise (config `log.format`). */
export const logFormats = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof logFormats)[number];

export interface Log {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Log;
}

export interface LogOptions {
  level?: LogLevel;
  /** where lines go (each ends in a newline); default stderr, written synchronously */
  write?: (line: string) => void;
  /** the clock of the `time` field */
  now?: () => number;
  /** fields on every line */
  base?: LogFields;
  /** default `auto` */
  format?: LogFormat;
  /** whether `auto` means pretty; default whether stderr is a terminal */
  isTty?: boolean;
}

export function createLog(opts: LogOptions = {}): Log {
  const now = opts.now ?? Date.now;
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && (opts.isTty ?? process.stderr.isTTY === true));
  const pino = loadPino();
  const logger = pino({
    level: opts.level ?? 'info',
    base: null,
    timestamp: () => `,"time":"${new Date(now()).toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
    // `safe` shapes errors already; pino's own `err` serializer would add a type and a stack.
    serializers: { err: (e: unknown) => e },
  }, streamOf(opts.write, pretty, pino));
  const top = wrap(logger);
  return opts.base && Object.keys(opts.base).length > 0 ? top.child(opts.base) : top;
}

/**
 * Lines go out synchronously (fd 2, sync): a line logged before a SIGKILL is not lost in a buffer,
 * and stderr keeps its order with stdout. Pretty lines are rendered in the same call.
 */
function streamOf(write: ((line: string) => void) | undefined, pretty: boolean, pino: typeof Pino): DestinationStream {
  const out: (line: string) => void = write ?? stderrWriter(pino);
  if (!pretty) return { write: out };
  const render = prettyRenderer();
  return { write: (line: string) => out(render(line)) };
}

function stderrWriter(pino: typeof Pino): (line: string) => void {
  const dest = pino.destination({ fd: 2, sync: true });
  return (line) => void dest.write(line);
}

/** pino-pretty is loaded only when used: it costs start-up time a device logging JSON need not pay. */
function prettyRenderer(): (line: string) => string {
  const { prettyFactory } = require('pino-pretty') as typeof import('pino-pretty');
  return prettyFactory({ colorize: process.stderr.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', singleLine: true });
}

function wrap(logger: Logger): Log {
  return {
    debug: (m, f) => logger.debug(safe(f), m),
    info: (m, f) => logger.info(safe(f), m),
    warn: (m, f) => logger.warn(safe(f), m),
    error: (m, f) => logger.error(safe(f), m),
    child: (fields) => wrap(logger.child(safe(fields))),
  };
}

/** Errors become { message, code } (no stack: a line stays one line) and bigints strings, as before pino. */
function safe(fields: LogFields | undefined): LogFields {
  if (fields === undefined) return {};
  let out: LogFields | undefined;
  for (const [k, v] of Object.entries(fields)) {
    if (!(v instanceof Error) && typeof v !== 'bigint') continue;
    out ??= { ...fields };
    out[k] = typeof v === 'bigint' ? v.toString() : { message: v.message, code: (v as { code?: unknown }).code };
  }
  return out ?? fields;
}

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {}, child: () => silentLog };
