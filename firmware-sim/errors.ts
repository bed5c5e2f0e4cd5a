/**
 * Errors of the simulator's own machinery (the pseudo-terminal pair). Stable codes; they never go
 * on the wire, so they live here rather than in protocol/errors.ts.
 */
export const SimErrorCode = {
  /** The `socat` program is not installed (Debian package `socat`). */
  SOCAT_MISSING: 'SIM_SOCAT_MISSING',
  /** socat exited, or the links did not appear in time. */
  PTY_FAILED: 'SIM_PTY_FAILED',
  /** The link path cannot be used (not a plain path, or an existing non-symlink file). */
  LINK_INVALID: 'SIM_LINK_INVALID',
} as const;
export type SimErrorCode = (typeof SimErrorCode)[keyof typeof SimErrorCode];

export class SimError extends Error {
  readonly code: SimErrorCode;
  constructor(code: SimErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SimError';
    this.code = code;
  }
}
