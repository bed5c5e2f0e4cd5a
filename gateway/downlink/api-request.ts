/**
 * The application API's requests, read without IO: which endpoint a method and URL name, the
 * token in the Authorization header, and a POST body. Every refusal carries its HTTP status, a
 * code (protocol/errors.ts) and a message naming what is wrong; none repeats the token.
 *
 *   POST /v1/agents/{id}/messages               queue a message: {target, data | dataBase64, ttl?}
 *   GET  /v1/agents/{id}/messages/{msgId}       one message's state
 *   GET  /v1/agents/{id}/messages?state=&limit= the agent's messages, in queue order
 */
import { ErrorCode } from '../../protocol/errors.js';
import { downIdPattern } from '../../protocol/frames.js';
import type { PacketData } from '../../protocol/packet.js';
import { messageStates, type MessageState, type NewMessage } from './queue.js';
import { dataRefusal, isRefusal, refusal, targetRefusal, ttlMsOf, type MessageLimits, type Refusal } from './message-rules.js';

export type ApiRoute =
  | { op: 'post'; agent: string }
  | { op: 'list'; agent: string; state?: MessageState; limit: number }
  | { op: 'get'; agent: string; id: string };

export const listLimitDefault = 100;
export const listLimitMax = 1000;
/** A token longer than this is not one `add-app` made (those are 43 characters): refused before hashing. */
const tokenCharsMax = 512;
const bodyKeys = new Set(['target', 'data', 'dataBase64', 'ttl']);
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

const notFound = (message: string): Refusal => refusal(404, ErrorCode.API_NOT_FOUND, message);
const invalid = (message: string): Refusal => refusal(400, ErrorCode.API_BODY_INVALID, message);
const paths = 'POST|GET /v1/agents/{id}/messages, GET /v1/agents/{id}/messages/{msgId}';

/** The endpoint `method` and `url` (a request's target: path and query) name. A 405 refusal carries `allow`. */
export function matchRoute(method: string, url: string): { route: ApiRoute } | (Refusal & { allow?: string }) {
  // The path is split by hand: URL parsing would read a request target starting `//` as a host.
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const search = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const raw = path.split('/');
  if (raw.length < 5 || raw.length > 6 || raw[0] !== '' || raw[1] !== 'v1' || raw[2] !== 'agents' || raw[4] !== 'messages' || raw[3] === '' || raw[5] === '') {
    return notFound(`no such path; the API has ${paths}`);
  }
  let agent: string;
  let id: string | undefined;
  try {
    agent = decodeURIComponent(raw[3]!);
    id = raw[5] === undefined ? undefined : decodeURIComponent(raw[5]);
  } catch {
    return notFound('the path holds a broken percent-encoding');
  }
  const allow = id === undefined ? 'GET, POST' : 'GET';
  if (!allow.split(', ').includes(method)) {
    return { ...refusal(405, ErrorCode.API_METHOD_NOT_ALLOWED, `${id === undefined ? '/v1/agents/{id}/messages' : '/v1/agents/{id}/messages/{msgId}'} takes ${allow}, not ${method}`), allow };
  }
  const query = [...search.keys()];
  const allowed = method === 'GET' && id === undefined ? ['state', 'limit'] : [];
  const unknown = query.find((k) => !allowed.includes(k));
  if (unknown !== undefined) return invalid(`query parameter '${unknown.slice(0, 64)}' is not known here${allowed.length > 0 ? ` (known: ${allowed.join(', ')})` : ''}`);
  const repeated = allowed.find((k) => search.getAll(k).length > 1);
  if (repeated !== undefined) return invalid(`query parameter '${repeated}' is given more than once`);
  if (method === 'POST') return { route: { op: 'post', agent } };
  if (id !== undefined) return { route: { op: 'get', agent, id } };
  const state = search.get('state');
  if (state !== null && !(messageStates as readonly string[]).includes(state)) {
    return invalid(`state: one of ${messageStates.join(', ')} expected, got '${state.slice(0, 64)}'`);
  }
  const limitText = search.get('limit');
  let limit = listLimitDefault;
  if (limitText !== null) {
    limit = /^\d{1,7}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= listLimitMax)) return invalid(`limit: a whole number from 1 to ${listLimitMax} expected, got '${limitText.slice(0, 64)}'`);
  }
  return { route: { op: 'list', agent, ...(state !== null ? { state: state as MessageState } : {}), limit } };
}

/** Whether a message ID could be one the queue gave out (else the answer is 404 at once). */
export function isMessageId(id: string): boolean {
  return downIdPattern.test(id);
}

/** The token of an `Authorization: Bearer TOKEN` header, or undefined (no header, another scheme, a malformed token). */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
  if (!m || m[1]!.length > tokenCharsMax) return undefined;
  return m[1];
}

/** Whether a Content-Type header names JSON (`application/json`, any parameters). */
export function isJsonContentType(header: string | undefined): boolean {
  return (header ?? '').split(';')[0]!.trim().toLowerCase() === 'application/json';
}

/**
 * A POST body → the message to queue. The body is a JSON object with `target` (a string, the
 * target rule), `data` (any JSON value) or `dataBase64` (bytes, standard base64), and optionally
 * `ttl` (seconds > 0). Unknown keys are refused, so a misspelt `ttl` is not silently ignored.
 */
export function parseMessageBody(body: Uint8Array, limits: MessageLimits): { accepted: NewMessage } | Refusal {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return invalid('the body is not UTF-8 text');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return invalid(`the body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid('the body must be a JSON object {"target": ..., "data": ...}');
  const doc = value as Record<string, unknown>;
  const unknown = Object.keys(doc).find((k) => !bodyKeys.has(k));
  if (unknown !== undefined) return invalid(`unknown key '${unknown.slice(0, 64)}' (known: target, data, dataBase64, ttl)`);
  if (!('target' in doc)) return invalid('target: missing');
  const badTarget = targetRefusal(doc.target);
  if (badTarget) return badTarget;
  const hasData = 'data' in doc;
  const hasBytes = 'dataBase64' in doc;
  if (hasData === hasBytes) return invalid(hasData ? 'give data or dataBase64, not both' : 'data: missing (or dataBase64 for bytes)');
  let data: PacketData;
  if (hasBytes) {
    const b64 = doc.dataBase64;
    if (typeof b64 !== 'string' || !base64Pattern.test(b64)) return invalid('dataBase64: standard base64 text expected (A-Z a-z 0-9 + /, padded with =)');
    data = new Uint8Array(Buffer.from(b64, 'base64'));
  } else {
    data = doc.data as PacketData;
  }
  const badData = dataRefusal(data, limits, hasBytes ? 'dataBase64' : 'data');
  if (badData) return badData;
  const message: NewMessage = { target: doc.target as string, data };
  if ('ttl' in doc) {
    const ttl = ttlMsOf(doc.ttl);
    if (isRefusal(ttl)) return ttl;
    message.ttlMs = ttl.ttlMs;
  }
  return { accepted: message };
}
