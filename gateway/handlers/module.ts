/**
 * The `module` route: a handler written by the user as a plain ES module (docs/handlers.md).
 * Its default export is `createHandler(options, { log }) => Handler | Promise<Handler>`. The
 * handler it returns is wrapped so that what it gets wrong cannot break the gateway or the wire:
 * a throw or rejection becomes a retryable HANDLER_FAILED, a malformed result too (and is
 * logged), a code outside the handler codes is replaced, and long messages are cut.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import type { DispatchPacket, Handler, HandlerResult } from './handler.js';

export interface ModuleRoute {
  /** The module file; a relative path is resolved against `baseDir`. */
  module: string;
  options: Record<string, unknown>;
}

/** What the module's default export is called with besides its options. */
export interface ModuleContext {
  log: Log;
}

export type CreateHandler = (options: Record<string, unknown>, ctx: ModuleContext) => Handler | Promise<Handler>;

const handlerCodes = new Set<string>([ErrorCode.HANDLER_FAILED, ErrorCode.HANDLER_TIMEOUT, ErrorCode.HANDLER_REJECTED]);
/** The result message goes into a NACK, the agent's dead letters and logs: keep it a line, not a dump. */
const messageCharsMax = 1000;
const retryAfterMsDefault = 1000;

function invalid(path: string, why: string, cause?: unknown): FerryError {
  return new FerryError(ErrorCode.CONFIG_INVALID, `module handler ${path}: ${why}`, { cause });
}

/**
 * Imports the module, calls its default export and checks what it returns. `baseDir` is where a
 * relative path starts (the gateway passes its working directory). Throws CONFIG_INVALID, naming
 * the file, when the module is missing, does not load, has no default function, or that function
 * fails or returns something without `handle`.
 */
export async function loadModuleHandler(route: ModuleRoute, log: Log, baseDir: string = process.cwd()): Promise<Handler> {
  const path = isAbsolute(route.module) ? route.module : resolve(baseDir, route.module);
  let exported: { default?: unknown };
  try {
    exported = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    throw invalid(path, `cannot load the module: ${(err as Error).message}`, err);
  }
  if (typeof exported.default !== 'function') throw invalid(path, 'the default export must be a function createHandler(options, { log })');
  const moduleLog = log.child({ handler: 'module', module: path });
  let made: unknown;
  try {
    made = await (exported.default as CreateHandler)(structuredClone(route.options), { log: moduleLog });
  } catch (err) {
    throw invalid(path, `createHandler failed: ${(err as Error)?.message ?? String(err)}`, err);
  }
  const h = made as Partial<Handler> | null;
  if (h === null || typeof h !== 'object' || typeof h.handle !== 'function') throw invalid(path, 'createHandler must return an object with a handle(packet) method');
  if (h.close !== undefined && typeof h.close !== 'function') throw invalid(path, 'close, when given, must be a method');
  const inflightMax = h.inflightMax ?? 1;
  if (!Number.isInteger(inflightMax) || inflightMax < 1) throw invalid(path, `inflightMax must be a positive integer, got ${String(h.inflightMax)}`);
  return new GuardedHandler(h as Handler, typeof h.kind === 'string' ? h.kind : 'module', inflightMax, moduleLog);
}

class GuardedHandler implements Handler {
  constructor(
    private readonly inner: Handler,
    readonly kind: string,
    readonly inflightMax: number,
    private readonly log: Log,
  ) {}

  handle(packet: DispatchPacket): Promise<HandlerResult> {
    return Promise.resolve()
      .then(() => this.inner.handle(packet))
      .then(
        (r) => this.checked(r),
        (err: unknown) => {
          this.log.warn('module handler: handle threw; treated as a retryable failure', { agent: packet.agent, seq: packet.seq, err });
          return failed(`the handler threw: ${(err as Error)?.message ?? String(err)}`);
        },
      );
  }

  async close(): Promise<void> {
    try {
      await this.inner.close?.();
    } catch (err) {
      this.log.warn('module handler: close failed', { err });
    }
  }

  private checked(r: unknown): HandlerResult {
    const v = r as Partial<{ ok: unknown; retryable: unknown; code: unknown; message: unknown; retryAfterMs: unknown }> | null;
    if (v !== null && typeof v === 'object' && v.ok === true) return { ok: true };
    if (v === null || typeof v !== 'object' || v.ok !== false || typeof v.retryable !== 'boolean') {
      this.log.warn('module handler: handle resolved something that is not a result; treated as a retryable failure', { result: String(JSON.stringify(r)).slice(0, 200) });
      return failed('the handler returned an invalid result');
    }
    const given = typeof v.code === 'string' ? v.code : '';
    const text = typeof v.message === 'string' ? v.message : '';
    const known = handlerCodes.has(given);
    const message = (known || given === '' ? text : `${given}: ${text}`).slice(0, messageCharsMax);
    if (!v.retryable) return { ok: false, retryable: false, code: known ? given : ErrorCode.HANDLER_REJECTED, message };
    const ms = typeof v.retryAfterMs === 'number' && Number.isFinite(v.retryAfterMs) && v.retryAfterMs >= 0 ? Math.round(v.retryAfterMs) : retryAfterMsDefault;
    return { ok: false, retryable: true, code: known ? given : ErrorCode.HANDLER_FAILED, message, retryAfterMs: ms };
  }
}

function failed(message: string): HandlerResult {
  return { ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: message.slice(0, messageCharsMax), retryAfterMs: retryAfterMsDefault };
}
