/**
 * The HTTP side of the long-poll carrier, shared by the agent's client and the gateway's listener:
 * one path, one method, CBOR bodies (protocol/longpoll/body.ts), and for every refusal an HTTP
 * status with a JSON body `{ "code": ..., "message": ... }` so any client (and a person with
 * curl) can tell why. docs/protocol.md ("HTTP long-poll carrier") has the table.
 */
import { ErrorCode } from '../errors.js';

/** Every long-poll request is `POST` to this path (an opening request has no session in its body). */
export const longpollPath = '/v1/longpoll';
export const longpollContentType = 'application/cbor';
/** The agent names itself on every request; the gateway refuses a session's requests that name another agent (LONGPOLL_SESSION_FORBIDDEN). */
export const agentHeader = 'ferry-agent';

/** The HTTP status a refusal with `code` carries (200 is a response body; anything else is one of these). */
export const statusForCode: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.LONGPOLL_BODY_INVALID]: 400,
  [ErrorCode.LONGPOLL_VERSION]: 400,
  [ErrorCode.LONGPOLL_ACK_INVALID]: 400,
  [ErrorCode.LONGPOLL_SESSION_FORBIDDEN]: 403,
  [ErrorCode.LONGPOLL_SESSION_UNKNOWN]: 404,
  [ErrorCode.LONGPOLL_NOT_A_REQUEST]: 405,
  [ErrorCode.LONGPOLL_REQUEST_TIMEOUT]: 408,
  [ErrorCode.LONGPOLL_REQUEST_STALE]: 409,
  [ErrorCode.LONGPOLL_BODY_TOO_LARGE]: 413,
  [ErrorCode.CONNECTIONS_PER_ADDRESS]: 429,
  [ErrorCode.LONGPOLL_TOO_MANY_REQUESTS]: 429,
  [ErrorCode.GATEWAY_BUSY]: 503,
  [ErrorCode.SHUTDOWN]: 503,
};

export function httpStatusFor(code: string): number {
  return statusForCode[code as ErrorCode] ?? 500;
}

/** The JSON body of a refusal. */
export interface RefusalBody {
  code: string;
  message: string;
  /** for GATEWAY_BUSY, CONNECTIONS_PER_ADDRESS and LONGPOLL_TOO_MANY_REQUESTS: also in the Retry-After header, in seconds */
  retryAfterMs?: number;
}
