import type { Test } from 'tap';
import { FerryError, type ErrorCode } from '../../protocol/errors.js';

/** Runs `fn`, which must throw a FerryError with `code`; returns it (undefined, with a failure, otherwise). */
export function refuses(t: Test, fn: () => unknown, code: ErrorCode, what: string): FerryError | undefined {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (!(thrown instanceof FerryError)) {
    t.fail(`${what}: expected FerryError ${code}, got ${thrown === undefined ? 'no error' : String(thrown)}`);
    return undefined;
  }
  t.equal(thrown.code, code, `${what}: ${code} (${thrown.message})`);
  return thrown;
}
