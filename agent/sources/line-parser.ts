import { ErrorCode, FerryError } from '../../protocol/errors.js';

/** One reading: every numeric field of one serial line. */
export type Reading = Record<string, number>;

export const lineBytesMax = 4096;

/**
 * Parses one text line from a sensor: `key=value` pairs separated by spaces or commas
 * (`t=21.5 h=40`), or a JSON object (`{"t":21.5}`). Only finite numbers are kept. Throws
 * SERIAL_LINE_INVALID for anything else, so the caller can count and drop the line.
 */
export function parseLine(line: string, format: 'kv' | 'json'): Reading {
  const text = line.trim();
  if (text.length === 0 || text.length > lineBytesMax) {
    throw new FerryError(ErrorCode.SERIAL_LINE_INVALID, text.length === 0 ? 'empty line' : `line longer than ${lineBytesMax} characters`);
  }
  const reading: Reading = {};
  if (format === 'json') {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new FerryError(ErrorCode.SERIAL_LINE_INVALID, 'line is not JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FerryError(ErrorCode.SERIAL_LINE_INVALID, 'line is not a JSON object');
    for (const [k, val] of Object.entries(v)) if (typeof val === 'number' && Number.isFinite(val)) reading[k] = val;
  } else {
    for (const pair of text.split(/[\s,]+/)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new FerryError(ErrorCode.SERIAL_LINE_INVALID, `not a key=value pair: ${pair.slice(0, 40)}`);
      const value = Number(pair.slice(eq + 1));
      if (!Number.isFinite(value) || pair.slice(eq + 1).trim() === '') throw new FerryError(ErrorCode.SERIAL_LINE_INVALID, `not a number: ${pair.slice(0, 40)}`);
      reading[pair.slice(0, eq)] = value;
    }
  }
  if (Object.keys(reading).length === 0) throw new FerryError(ErrorCode.SERIAL_LINE_INVALID, 'line has no numeric fields');
  return reading;
}
