/**
 * The packet limits, in one place: the agent refuses at submission what the gateway would refuse,
 * because both call `checkPacket` with the limits in force (the agent with its own, the gateway
 * with its own, which it also tells the agent in WELCOME). The frame decoder only enforces the
 * structural ceilings below, far above any configurable limit, so that one packet over a limit
 * arrives inside a readable frame and is refused on its own (NACK), never by closing the session.
 */
import { ErrorCode, FerryError } from './errors.js';
import { checkTarget } from './ids.js';
import { dataBytes, dataBytesMaxDefault, hasProtoKey, type PacketData } from './packet.js';

/** What a packet may be: its data's size and nesting. Targets have one fixed rule (protocol/ids.ts checkTarget). */
export interface PacketLimits {
  /** data bytes (bytes as they are, a value as its JSON text), at most */
  dataBytesMax: number;
  /** arrays and maps on the longest path into the data, at most: 1 is 0 levels, [] and {"a": 1} are 1, [[1]] is 2 */
  dataDepthMax: number;
}

export const dataDepthMaxDefault = 32;
/** The most a configuration may set `dataDepthMax` to, well below what the frame decoder reads. */
export const dataDepthMaxCeiling = 64;
export const packetLimitsDefault: PacketLimits = { dataBytesMax: dataBytesMaxDefault, dataDepthMax: dataDepthMaxDefault };

/**
 * The frame decoder's own ceiling on data nesting: deeper is not a packet over a limit but a
 * stream no ferry peer writes (FRAME_MALFORMED, the session ends). Also bounds the decoder's recursion.
 */
export const frameDataDepthMax = 128;

/**
 * The gateway's limit on an unauthenticated connection's first frame: a HELLO is small (agent ID
 * of 255 characters, token of 1,024), so a large length prefix before HELLO is refused at once
 * (FRAME_TOO_LARGE) instead of being buffered.
 */
export const helloFrameBytesMax = 4096;

/** What one walk over packet data found: its nesting depth (counted up to `depthStop + 1`) and the first value that is not bytes or a JSON value. */
export interface DataShape {
  depth: number;
  /** set when some value is not PacketData (names what it is) */
  invalid?: string;
}

/**
 * Walks `v` once. Stops descending past `depthStop` (so deep data costs no more than that, and the
 * recursion is bounded); `depth` is then `depthStop + 1`.
 */
export function dataShape(v: unknown, depthStop: number): DataShape {
  const shape: DataShape = { depth: 0 };
  walk(v, 0, depthStop, shape);
  return shape;
}

function walk(v: unknown, depth: number, depthStop: number, shape: DataShape): void {
  if (shape.invalid !== undefined) return;
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || v instanceof Uint8Array) return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) shape.invalid = 'a non-finite number';
    return;
  }
  const isArray = Array.isArray(v);
  if (!isArray && !(typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)) {
    shape.invalid = `a ${v === undefined ? 'undefined' : typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v}`;
    return;
  }
  const level = depth + 1;
  if (level > shape.depth) shape.depth = level;
  if (level > depthStop) return;
  for (const item of isArray ? (v as unknown[]) : Object.values(v as Record<string, unknown>)) walk(item, level, depthStop, shape);
}

/**
 * Throws unless the packet is within `limits`: TARGET_INVALID (checkTarget, protocol/ids.ts: what
 * every handler's protocol carries unchanged), DATA_TOO_DEEP past
 * `dataDepthMax`, DATA_INVALID for a value that is not bytes or JSON or a `__proto__` key,
 * DATA_TOO_LARGE past `dataBytesMax`. The agent calls it at submission, the gateway on each
 * packet it decodes (then the code goes back in a permanent NACK).
 */
export function checkPacket(p: { target: unknown; data: unknown }, limits: PacketLimits): void {
  checkTarget(p.target);
  const shape = dataShape(p.data, limits.dataDepthMax);
  if (shape.invalid !== undefined) throw new FerryError(ErrorCode.DATA_INVALID, `packet data holds ${shape.invalid} (bytes or a JSON value expected)`);
  if (shape.depth > limits.dataDepthMax) {
    throw new FerryError(ErrorCode.DATA_TOO_DEEP, `data is nested deeper than the maximum of ${limits.dataDepthMax} levels (arrays and maps inside each other)`);
  }
  if (hasProtoKey(p.data)) throw new FerryError(ErrorCode.DATA_INVALID, 'packet data has a "__proto__" key, which does not survive encoding; rename it');
  const bytes = dataBytes(p.data as PacketData);
  if (bytes > limits.dataBytesMax) throw new FerryError(ErrorCode.DATA_TOO_LARGE, `data is ${bytes} bytes; the maximum is ${limits.dataBytesMax}`);
}
