/**
 * The error catalogue. Every code here is stable: it goes on the wire (NACK/BYE reason), into
 * logs and into docs/errors.md; test/protocol/errors.test.ts checks each is unique and documented.
 */
export const ErrorCode = {
  // wire
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  FRAME_MALFORMED: 'FRAME_MALFORMED',
  FRAME_UNKNOWN_TYPE: 'FRAME_UNKNOWN_TYPE',
  PROTOCOL_VERSION: 'PROTOCOL_VERSION',
  PROTOCOL_STATE: 'PROTOCOL_STATE',
  GATEWAY_PROTOCOL_VIOLATION: 'GATEWAY_PROTOCOL_VIOLATION',
  // packets
  TARGET_INVALID: 'TARGET_INVALID',
  DATA_TOO_LARGE: 'DATA_TOO_LARGE',
  DATA_INVALID: 'DATA_INVALID',
  DATA_TOO_DEEP: 'DATA_TOO_DEEP',
  UNKNOWN_TARGET: 'UNKNOWN_TARGET',
  HANDLER_FAILED: 'HANDLER_FAILED',
  HANDLER_TIMEOUT: 'HANDLER_TIMEOUT',
  HANDLER_REJECTED: 'HANDLER_REJECTED',
  TARGET_BUSY: 'TARGET_BUSY',
  // sessions
  PEER_TIMEOUT: 'PEER_TIMEOUT',
  SHUTDOWN: 'SHUTDOWN',
  CREDIT_EXCEEDED: 'CREDIT_EXCEEDED',
  GATEWAY_BUSY: 'GATEWAY_BUSY',
  PEER_NOT_READING: 'PEER_NOT_READING',
  // security and admission
  AUTH_FAILED: 'AUTH_FAILED',
  AUTH_REVOKED: 'AUTH_REVOKED',
  AUTH_AGENT_MISMATCH: 'AUTH_AGENT_MISMATCH',
  TLS_REQUIRED: 'TLS_REQUIRED',
  TLS_FAILED: 'TLS_FAILED',
  CONNECTIONS_PER_ADDRESS: 'CONNECTIONS_PER_ADDRESS',
  AGENTS_MAX: 'AGENTS_MAX',
  // local
  CONFIG_INVALID: 'CONFIG_INVALID',
  PROFILE_INVALID: 'PROFILE_INVALID',
  STORE_CORRUPT: 'STORE_CORRUPT',
  STORE_CLOSED: 'STORE_CLOSED',
  STORE_FULL: 'STORE_FULL',
  STORE_IO: 'STORE_IO',
  STORE_LOCKED: 'STORE_LOCKED',
  RECORD_TOO_LARGE: 'RECORD_TOO_LARGE',
  DATA_DIR_LOCKED: 'DATA_DIR_LOCKED',
  INTERNAL: 'INTERNAL',
  SESSION_REPLACED: 'SESSION_REPLACED',
  LOCAL_REQUEST_INVALID: 'LOCAL_REQUEST_INVALID',
  AGENT_UNREACHABLE: 'AGENT_UNREACHABLE',
  SERIAL_LINE_INVALID: 'SERIAL_LINE_INVALID',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class FerryError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FerryError';
    this.code = code;
  }
}

export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}
