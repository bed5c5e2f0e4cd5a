/**
 * What a long-poll answer other than 200 means to the agent: the gateway's JSON refusal body
 * `{ code, message, retryAfterMs? }` (protocol/longpoll/http.ts) when there is one, else the code
 * the carrier gives that status; a status the carrier does not define (a proxy's 407 or 502) is
 * LONGPOLL_HTTP_STATUS. No IO: the HTTP client and the simulator share it.
 */
import { ErrorCode, FerryError, isErrorCode } from '../../protocol/errors.js';
import { statusForCode } from '../../protocol/longpoll/http.js';

/** A refusal body is a few hundred bytes; a longer one (a proxy's HTML page) is not parsed. */
export const refusalBodyBytesMax = 8192;
/** The longest wait the agent takes from a refusal: a bad value must not park it for days. */
export const refusalRetryAfterMsMax = 3_600_000;

/** A long-poll request refused with an HTTP status: the code, and how long the gateway asked the agent to wait. */
export class LongPollRefusal extends FerryError {
  readonly status: number;
  readonly retryAfterMs: number | undefined;
  constructor(code: ErrorCode, message: string, status: number, retryAfterMs: number | undefined) {
    super(code, message);
    this.name = 'LongPollRefusal';
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The code the carrier gives each refusal status, when several share one the first listed. */
const codeForStatus = new Map<number, ErrorCode>();
for (const [code, status] of Object.entries(statusForCode)) if (!codeForStatus.has(status)) codeForStatus.set(status, code as ErrorCode);
codeForStatus.set(503, ErrorCode.GATEWAY_BUSY);

/** A retry-after in ms from a JSON body's `retryAfterMs`, bounded; undefined when absent or not a non-negative number. */
export function boundedRetryAfterMs(v: unknown): number | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return undefined;
  return Math.min(Math.ceil(v), refusalRetryAfterMsMax);
}

/** The JSON refusal body, if the bytes are one; nothing else is trusted from them. */
export function parseRefusalBody(body: Uint8Array): { code?: string; message?: string; retryAfterMs?: number } | undefined {
  if (body.length === 0 || body.length > refusalBodyBytesMax) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const out: { code?: string; message?: string; retryAfterMs?: number } = {};
  if (typeof o.code === 'string') out.code = o.code;
  if (typeof o.message === 'string') out.message = o.message.slice(0, 1024);
  const r = boundedRetryAfterMs(o.retryAfterMs);
  if (r !== undefined) out.retryAfterMs = r;
  return out;
}

/** The refusal a non-200 answer stands for. `retryAfterMs` (the Retry-After header, as the Post read it) wins over the body's. */
export function refusalOf(res: { status: number; body: Uint8Array; retryAfterMs?: number }): LongPollRefusal {
  const parsed = parseRefusalBody(res.body);
  // Only a code of the catalogue counts: a proxy's JSON must not pass as the gateway's word.
  const code = parsed?.code !== undefined && isErrorCode(parsed.code) ? parsed.code : codeForStatus.get(res.status) ?? ErrorCode.LONGPOLL_HTTP_STATUS;
  const retryAfterMs = boundedRetryAfterMs(res.retryAfterMs) ?? parsed?.retryAfterMs;
  const what = parsed?.message ?? (code === ErrorCode.LONGPOLL_HTTP_STATUS ? 'not a status of the long-poll carrier (a proxy in the way?)' : 'no refusal body');
  return new LongPollRefusal(code, `long-poll request refused with HTTP ${res.status}: ${what}`, res.status, retryAfterMs);
}
