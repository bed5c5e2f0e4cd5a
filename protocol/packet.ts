import { ErrorCode, FerryError } from './errors.js';

/** Bytes, or any CBOR/JSON value. Handlers turn a value into JSON text and pass bytes through. */
export type PacketData = Uint8Array | null | boolean | number | string | PacketData[] | { [key: string]: PacketData };

/** What a producer hands to the agent: a sensor rule, `ferry send`, or the local API. */
export interface NewPacket {
  target: string;
  data: PacketData;
  /** event time, ms since the epoch */
  ts: number;
  /** the packet expires this long after `ts` if it was not delivered by then */
  ttlMs?: number;
  /** 0 (lowest, the default) to 255: with the store's `priority` policy, lower priorities are dropped first when full */
  priority?: number;
}

/**
 * A packet once the agent stored it. `seq` is per agent, strictly increasing for the agent's
 * life; (agent ID, seq) is the packet's identity end to end. Carried as a JS number: exact up to
 * 2^53, which a million packets a second takes 285 years to reach. On the wire it is a CBOR
 * number: cbor-x writes values above 2^32 as float64 (exact to 2^53); decoders also accept a
 * 64-bit unsigned integer, as other CBOR encoders write it.
 */
export interface Packet extends NewPacket {
  seq: number;
}

export { checkTarget, targetBytesMax } from './ids.js';
export const dataBytesMaxDefault = 64 * 1024;

const utf8 = new TextEncoder();

/** The data's size as the limit counts it: bytes as they are, a value as its JSON text. */
export function dataBytes(data: PacketData): number {
  if (data instanceof Uint8Array) return data.byteLength;
  return utf8.encode(JSON.stringify(data) ?? 'null').length;
}

/** What one packet counts against the gateway's byte credit; both sides compute it the same way. */
export function packetCreditBytes(p: { target: string; data: PacketData }): number {
  return p.target.length + dataBytes(p.data);
}

/**
 * A key cbor-x renames on decode (its prototype-pollution guard), so it would not arrive as sent.
 * Looks 128 levels deep at most (the frame decoder's ceiling, protocol/limits.ts).
 */
export function hasProtoKey(v: unknown, depth = 0): boolean {
  if (depth > 128 || typeof v !== 'object' || v === null || v instanceof Uint8Array) return false;
  if (Array.isArray(v)) return v.some((x) => hasProtoKey(x, depth + 1));
  return Object.keys(v).some((k) => k === '__proto__' || hasProtoKey((v as Record<string, unknown>)[k], depth + 1));
}

/**
 * Throws DATA_TOO_LARGE past `dataBytesMax`, DATA_INVALID for a `__proto__` key (CBOR decoders drop
 * or rename it). The whole packet rule (depth too) is `checkPacket` in protocol/limits.ts.
 */
export function checkData(data: PacketData, dataBytesMax: number): PacketData {
  if (hasProtoKey(data)) throw new FerryError(ErrorCode.DATA_INVALID, 'packet data has a "__proto__" key, which does not survive encoding; rename it');
  const bytes = dataBytes(data);
  if (bytes > dataBytesMax) {
    throw new FerryError(ErrorCode.DATA_TOO_LARGE, `data is ${bytes} bytes; the maximum is ${dataBytesMax}`);
  }
  return data;
}

/** Packet data inside a JSON document: bytes, at any depth, become `{ "base64": ... }`; values stay as they are. */
export function dataToJson(data: PacketData): unknown {
  if (data instanceof Uint8Array) return { base64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
  if (Array.isArray(data)) return data.map(dataToJson);
  if (data !== null && typeof data === 'object') return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, dataToJson(v)]));
  return data;
}

/**
 * The same as a `JSON.stringify` replacer, without copying the value first: bytes at any depth
 * become `{ "base64": ... }`. It looks at the raw value, before a Buffer's own toJSON.
 */
export function bytesAsBase64(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array ? { base64: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') } : value;
}
