/** Flag parsing shared by the subcommands: a wrong flag is a coded error, not a stack trace. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCode, FerryError } from '../protocol/errors.js';

export function flags<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, (err as Error).message);
  }
}

export const num = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new FerryError(ErrorCode.CONFIG_INVALID, `${flag}: expected a number, got '${v}'`);
  return n;
};
