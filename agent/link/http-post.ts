/**
 * The real `Post` of the long-poll client (agent/link/longpoll-client.ts): one HTTP(S) POST of a
 * CBOR body to `${url}/v1/longpoll` with the agent's name in `ferry-agent`, resolving with the
 * status and the whole response body.
 *
 * - Through the proxy the environment names (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, agent/link/proxy.ts;
 *   https: through a CONNECT tunnel with TLS to the gateway inside it), else straight, on a
 *   keep-alive Agent of its own so a session reuses its connections.
 * - https: checks the gateway's certificate as tls:// does: the chain against `tls.ca` (else the
 *   system's CAs), the name against the URL's host or `tls.servername`; a client certificate is
 *   shown when given.
 * - The response body is read up to `responseBytesMax` (checked against Content-Length first) and
 *   the whole exchange within `timeoutMs`; past either the request is destroyed and rejects.
 * - For a refusal, the wait it asks for: the JSON body's `retryAfterMs`, else `Retry-After`.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { agentHeader, longpollContentType, longpollPath } from '../../protocol/longpoll/http.js';
import { bodyLimitsDefault } from '../../protocol/longpoll/limits.js';
import type { Post, PostResult } from './longpoll-client.js';
import { boundedRetryAfterMs, parseRefusalBody } from './longpoll-refusal.js';
import { proxyFor, type ProxyEnv } from './proxy.js';
import type { DialerTls } from './tcp.js';

export interface HttpPostOptions {
  /** sent in `ferry-agent` on every request */
  agentId: string;
  /** for https: the same settings as for tls:// */
  tls?: DialerTls;
  /** where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read (main.ts passes process.env); default: none, straight to the gateway */
  env?: ProxyEnv;
  /** one exchange, sent to last byte received, at most; above the gateway's hold (25 s) and the client's response time-out (35 s). Default 60000 */
  timeoutMs?: number;
  /** response body bytes, at most; default: what the default channel limits allow a body, plus 4 KiB for a proxy's error page */
  responseBytesMax?: number;
  /** connections to the gateway (or proxy), at most; default 4: two requests outstanding, the end, one being given up */
  socketsMax?: number;
}

export interface HttpPost extends Post {
  /** the proxy requests go through, if any */
  readonly proxyUrl: URL | undefined;
  /** closes the kept-alive connections once the requests in flight (such as a session's last, carrying `end`) have finished */
  close(): void;
}

export const httpPostTimeoutMsDefault = 60_000;
export const responseSlackBytes = 4096;

/** Retry-After: delta-seconds or an HTTP date, in ms from now. */
export function retryAfterHeaderMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return boundedRetryAfterMs(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : boundedRetryAfterMs(Math.max(0, at - nowMs));
}

/** A kept-alive socket idle this long is closed (the gateway's keepAliveTimeoutMs defaults to 30 s). */
export const idleSocketMs = 4000;

export function httpPost(url: string, opts: HttpPostOptions): HttpPost {
  const base = new URL(url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new FerryError(ErrorCode.CONFIG_INVALID, `a long-poll gateway URL must be http:// or https://, got ${url}`);
  const target = new URL(longpollPath, base);
  const secure = base.protocol === 'https:';
  const timeoutMs = opts.timeoutMs ?? httpPostTimeoutMsDefault;
  const responseBytesMax = opts.responseBytesMax ?? bodyLimitsDefault.bodyBytesMax + responseSlackBytes;
  const maxSockets = opts.socketsMax ?? 4;
  // An idle kept-alive socket is closed after idleSocketMs (node's Agent `timeout` destroys only
  // free sockets; a held request is not cut by it): well under the gateway's keep-alive time-out,
  // and a socket a middlebox went silent on is not kept for the next request.
  const agentOptions = { maxSockets, timeout: idleSocketMs };
  const choice = proxyFor(target, opts.env ?? {}, agentOptions);
  const agent = choice.kind === 'proxy' ? choice.agent : secure ? new HttpsAgent({ keepAlive: true, ...agentOptions }) : new HttpAgent({ keepAlive: true, ...agentOptions });
  const t = opts.tls ?? {};
  const tlsOptions = secure
    ? {
        rejectUnauthorized: true,
        ...(t.ca !== undefined ? { ca: t.ca } : {}),
        ...(t.cert !== undefined ? { cert: t.cert } : {}),
        ...(t.key !== undefined ? { key: t.key } : {}),
        ...(t.servername !== undefined ? { servername: t.servername } : {}),
      }
    : {};
  const send = secure ? httpsRequest : httpRequest;
  let inFlight = 0;
  let closing = false;
  const release = (): void => {
    inFlight--;
    if (closing && inFlight === 0) agent.destroy();
  };

  const post = (body: Uint8Array, signal: AbortSignal): Promise<PostResult> =>
    new Promise<PostResult>((resolve, reject) => {
      let done = false;
      inFlight++;
      const finish = (err: Error | undefined, result?: PostResult): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        release();
        if (err) reject(err);
        else resolve(result!);
      };
      const options: RequestOptions = {
        method: 'POST', agent, signal, ...tlsOptions,
        headers: { 'content-type': longpollContentType, 'content-length': body.length, accept: `${longpollContentType}, application/json`, [agentHeader]: opts.agentId },
      };
      const req = send(target, options);
      const timer = setTimeout(() => req.destroy(new Error(`long-poll request to ${target.origin} got no whole answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => finish(err));
      req.on('response', (res: IncomingMessage) => readResponse(res, req.destroy.bind(req), finish));
      req.end(body);
    });

  function readResponse(res: IncomingMessage, destroy: (err: Error) => void, finish: (err: Error | undefined, r?: PostResult) => void): void {
    const tooLarge = (bytes: number): Error => new FerryError(ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll response from ${target.origin} of ${bytes} bytes or more; at most ${responseBytesMax} are read`);
    const announced = Number(res.headers['content-length']);
    if (Number.isFinite(announced) && announced > responseBytesMax) return destroy(tooLarge(announced));
    const chunks: Buffer[] = [];
    let bytes = 0;
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > responseBytesMax) destroy(tooLarge(bytes));
      else chunks.push(chunk);
    });
    res.on('error', (err) => finish(err));
    res.on('close', () => {
      if (!res.complete) finish(new Error(`long-poll response from ${target.origin} cut off after ${bytes} bytes`));
    });
    res.on('end', () => {
      const status = res.statusCode ?? 0;
      const bodyBytes = Buffer.concat(chunks);
      const result: PostResult = { status, body: bodyBytes };
      if (status !== 200) {
        const retryAfterMs = parseRefusalBody(bodyBytes)?.retryAfterMs ?? retryAfterHeaderMs(headerOf(res, 'retry-after'), Date.now());
        if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
      }
      finish(undefined, result);
    });
  }

  return Object.assign(post, {
    proxyUrl: choice.kind === 'proxy' ? choice.proxyUrl : undefined,
    close: () => {
      closing = true;
      if (inFlight === 0) agent.destroy();
    },
  });
}

function headerOf(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
