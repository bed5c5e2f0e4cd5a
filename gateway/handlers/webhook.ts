/**
 * The `webhook` handler: one HTTP(S) POST per packet. Body: the data (a value as JSON text,
 * `application/json`, bytes nested in it as {"base64": …}; bytes as they are,
 * `application/octet-stream`). Headers: `Idempotency-Key: AGENT:SEQ`, `Ferry-Agent`, `Ferry-Seq`,
 * `Ferry-Target`, `Ferry-Ts` (agent and target percent-encoded outside printable ASCII and for
 * `%`), then the configured static headers. http-outcome.ts says what each answer means.
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { redactUrl, secretScrubber } from '../../common/redact.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { bytesAsBase64, type PacketData } from '../../protocol/packet.js';
import type { DispatchPacket, Handler, HandlerResult } from './handler.js';
import { headerProblem, outcomeOf, renderUrl, urlProblem, type RetryPolicy } from './http-outcome.js';

export interface WebhookHandlerOptions {
  /** `http://` or `https://`; `{agent}` and `{target}` are replaced, URL-encoded. */
  url: string;
  /** Bound on one `handle` call: waiting for a free connection, the request, and reading the answer (default 5000). */
  timeoutMs?: number;
  /** Requests in flight at once, and connections kept alive (default 1, at most 256); also the handler's `inflightMax`. */
  concurrency?: number;
  /** Static headers sent with every request (e.g. Authorization); their values never appear in a message. */
  headers?: Record<string, string>;
  /** The retry-after of a retryable failure without a usable `Retry-After` header (default 1000). */
  retryAfterMs?: number;
  /** A `Retry-After` header is clamped to [retryAfterMsMin, retryAfterMsMax] (defaults 1000, 60000). */
  retryAfterMsMin?: number;
  retryAfterMsMax?: number;
}

export interface WebhookHandlerDeps {
  /** The clock an HTTP-date `Retry-After` is measured against; Date.now by default. */
  now?: () => number;
}

export const concurrencyLimit = 256;
/** Past this many response bytes the rest is not read: the connection is dropped instead of drained. */
const responseBytesMax = 64 * 1024;
/** How much of an error answer goes into the failure message. */
const messageBodyChars = 200;
/** A path segment this long may be a token: a server's answer has it taken out. */
const pathSecretCharsMin = 8;

interface Job {
  url: URL;
  body: Buffer;
  headers: Record<string, string | number>;
  what: string;
  resolve: (r: HandlerResult) => void;
  timer: NodeJS.Timeout | undefined;
  req: ClientRequest | undefined;
  status: number | undefined;
  retryAfter: string | undefined;
  bodyStart: string;
  settled: boolean;
}

function count(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v <= 0 || v > max) throw new FerryError(ErrorCode.CONFIG_INVALID, `webhook handler: ${name} must be a positive integer of at most ${max}, got ${String(value)}`);
  return v;
}

/**
 * Printable ASCII stays, everything else and `%` is percent-encoded: header values must be latin1,
 * and decodeURIComponent restores it. A space at either end is encoded too: HTTP strips it.
 */
function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x24\x26-\x7e]|^ | $/gu, (c) => encodeURIComponent(c));
}

/**
 * True when the path of a rendered URL (before URL resolution) has a segment of only dots, `.` or
 * `..`, in any spelling the WHATWG URL parser resolves (`%2e` too): resolution would drop it or
 * climb a level, so the request would go to a path the route does not name. encodeURIComponent
 * leaves dots alone, so an agent or target `..` (or `.` next to a dot in the template) makes one.
 */
function hasDotSegment(rendered: string): boolean {
  const authority = rendered.indexOf('//');
  const pathStart = rendered.indexOf('/', authority < 0 ? 0 : authority + 2);
  if (pathStart < 0) return false;
  const path = rendered.slice(pathStart).split(/[?#]/, 1)[0]!;
  return path.split('/').some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment));
}

function encodeBody(data: PacketData): { body: Buffer; contentType: string } | undefined {
  if (data instanceof Uint8Array) return { body: Buffer.from(data.buffer, data.byteOffset, data.byteLength), contentType: 'application/octet-stream' };
  const text = JSON.stringify(data, bytesAsBase64) as string | undefined;
  return text === undefined ? undefined : { body: Buffer.from(text, 'utf8'), contentType: 'application/json' };
}

/** Makes a webhook handler; invalid options throw CONFIG_INVALID. */
export function createWebhookHandler(opts: WebhookHandlerOptions, deps: WebhookHandlerDeps = {}): WebhookHandler {
  const problem = urlProblem(opts.url);
  if (problem !== undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `webhook handler: url: ${problem}`);
  if (hasDotSegment(renderUrl(opts.url, 'agent', 'target'))) throw new FerryError(ErrorCode.CONFIG_INVALID, 'webhook handler: url: a path segment of "." or ".." is resolved away; write the path without it');
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    const p = headerProblem(name, value);
    if (p !== undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `webhook handler: headers: ${p}`);
  }
  const policy: RetryPolicy = {
    retryAfterMs: count('retryAfterMs', opts.retryAfterMs, 1000),
    retryAfterMsMin: count('retryAfterMsMin', opts.retryAfterMsMin, 1000),
    retryAfterMsMax: count('retryAfterMsMax', opts.retryAfterMsMax, 60_000),
  };
  if (policy.retryAfterMsMin > policy.retryAfterMsMax) throw new FerryError(ErrorCode.CONFIG_INVALID, 'webhook handler: retryAfterMsMin must not exceed retryAfterMsMax');
  return new WebhookHandler(opts.url, count('timeoutMs', opts.timeoutMs, 5000), count('concurrency', opts.concurrency, 1, concurrencyLimit), { ...opts.headers }, policy, deps.now ?? Date.now);
}

export class WebhookHandler implements Handler {
  readonly kind = 'webhook';
  /** One request per packet in flight at most `concurrency` at once: that many may be pipelined per target. */
  readonly inflightMax: number;
  private readonly agent: HttpAgent;
  private readonly https: boolean;
  private readonly waiting: Job[] = [];
  private readonly active = new Set<Job>();
  private closed = false;
  /** takes header values (tokens) out of what a server or node:http says, and redacts URLs */
  private readonly scrub: (text: string) => string;

  constructor(
    private readonly template: string,
    private readonly timeoutMs: number,
    private readonly concurrency: number,
    private readonly staticHeaders: Record<string, string>,
    private readonly policy: RetryPolicy,
    private readonly now: () => number,
  ) {
    this.inflightMax = concurrency;
    // A value and its credentials after the scheme word (`Bearer TOKEN`), which a server may echo alone.
    this.scrub = secretScrubber(Object.values(staticHeaders).flatMap((v) => [v, v.replace(/^\S+\s+/, '')]));
    this.https = template.toLowerCase().startsWith('https:');
    // Keep-alive so a steady stream reuses connections; maxSockets matches our own bound on requests.
    const agentOpts = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency, scheduling: 'fifo' as const };
    this.agent = this.https ? new HttpsAgent(agentOpts) : new HttpAgent(agentOpts);
  }

  /** Requests sent and not yet answered (or given up on). */
  get inflight(): number {
    return this.active.size;
  }

  handle(p: DispatchPacket): Promise<HandlerResult> {
    if (this.closed) return Promise.resolve(this.retryable(ErrorCode.HANDLER_FAILED, 'the webhook handler is closed'));
    let url: URL;
    try {
      const rendered = renderUrl(this.template, p.agent, p.target);
      if (hasDotSegment(rendered)) {
        return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `webhook: agent ${p.agent} and target ${p.target} make a URL path segment of only dots, which would not stay in its place` });
      }
      url = new URL(rendered);
    } catch {
      // A placeholder in the host part that this agent or target cannot fill, or an ID that is not well-formed Unicode.
      return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `webhook: agent ${p.agent} and target ${p.target} give no valid URL from the route's url` });
    }
    // scheme, host and port only: the query and the path (Slack and Teams style) may be the secret.
    const what = `webhook ${redactUrl(url)}`;
    const encoded = encodeBody(p.data);
    if (encoded === undefined) return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `${what}: the data has no JSON form` });
    let agent: string;
    let target: string;
    try {
      agent = headerSafe(p.agent);
      target = headerSafe(p.target);
    } catch {
      // A lone surrogate (not UTF-8) has no percent-encoding; protocol/ids.ts refuses it before it gets here.
      return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `${what}: the agent ID or target is not well-formed Unicode` });
    }
    const headers = {
      ...this.staticHeaders,
      'Content-Type': encoded.contentType,
      'Content-Length': encoded.body.length,
      'Idempotency-Key': `${agent}:${p.seq}`,
      'Ferry-Agent': agent,
      'Ferry-Seq': String(p.seq),
      'Ferry-Target': target,
      'Ferry-Ts': String(p.ts),
    };
    return new Promise<HandlerResult>((resolve) => {
      const job: Job = { url, body: encoded.body, headers, what, resolve, timer: undefined, req: undefined, status: undefined, retryAfter: undefined, bodyStart: '', settled: false };
      job.timer = setTimeout(() => this.onTimeout(job), this.timeoutMs);
      this.waiting.push(job);
      this.pump();
    });
  }

  /** Fails what waits or is in flight (retryable: the agent offers it again) and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of [...this.waiting, ...this.active]) this.finish(job, this.retryable(ErrorCode.HANDLER_FAILED, `${job.what}: the webhook handler closed`));
    this.agent.destroy();
  }

  private retryable(code: string, message: string): HandlerResult {
    return { ok: false, retryable: true, code, message, retryAfterMs: this.policy.retryAfterMs };
  }

  private pump(): void {
    while (!this.closed && this.active.size < this.concurrency && this.waiting.length > 0) this.send(this.waiting.shift()!);
  }

  private send(job: Job): void {
    this.active.add(job);
    let req: ClientRequest;
    try {
      req = (this.https ? httpsRequest : httpRequest)(job.url, { method: 'POST', agent: this.agent, headers: job.headers });
    } catch (err) {
      // Options are checked at creation, so this is not expected; a result is still owed, never a throw.
      this.finish(job, this.retryable(ErrorCode.HANDLER_FAILED, `${job.what}: ${this.scrubbed(job, (err as Error).message)}`));
      return;
    }
    job.req = req;
    req.on('response', (res) => this.read(job, res));
    req.on('error', (err) => this.finish(job, this.afterStatus(job) ?? this.retryable(ErrorCode.HANDLER_FAILED, `${job.what}: ${this.scrubbed(job, err.message)}`)));
    req.end(job.body);
  }

  /** Reads (and discards) the answer up to responseBytesMax, keeping its start for the message. */
  private read(job: Job, res: IncomingMessage): void {
    job.status = res.statusCode ?? 0;
    const ra = res.headers['retry-after'];
    job.retryAfter = Array.isArray(ra) ? ra[0] : ra;
    let bytes = 0;
    res.on('data', (chunk: Buffer) => {
      if (job.bodyStart.length < messageBodyChars) job.bodyStart += chunk.toString('utf8', 0, messageBodyChars);
      bytes += chunk.length;
      if (bytes > responseBytesMax) this.finish(job, this.afterStatus(job)!);
    });
    res.on('error', () => undefined); // a reset mid-body: 'close' follows and the status decides
    res.on('end', () => this.finish(job, this.afterStatus(job)!, true));
    res.on('close', () => this.finish(job, this.afterStatus(job)!));
  }

  /** Once the status line arrived it decides, whatever happens to the rest of the answer. */
  private afterStatus(job: Job): HandlerResult | undefined {
    if (job.status === undefined) return undefined;
    // eslint-disable-next-line no-control-regex
    const said = this.scrubbed(job, job.bodyStart.slice(0, messageBodyChars).replace(/[\u0000-\u001f\u007f]+/g, ' ').trim());
    return outcomeOf(job.status, job.retryAfter, said, this.now(), this.policy, job.what);
  }

  /**
   * `text` (a server's answer, an error) without the request's path and query, which a server may
   * echo whole or in part, nor a header value. Path segments of pathSecretCharsMin or more count
   * as possible secrets (a Slack token is 24 characters); shorter ones are too plain to hide.
   */
  private scrubbed(job: Job, text: string): string {
    const { pathname, search } = job.url;
    const parts = [pathname + search, search.slice(1), pathname, ...pathname.split('/').filter((seg) => seg.length >= pathSecretCharsMin)];
    let out = text;
    for (const part of parts) if (part.length > 1 && out.includes(part)) out = out.replaceAll(part, '…');
    return this.scrub(out);
  }

  private onTimeout(job: Job): void {
    this.finish(job, this.afterStatus(job) ?? this.retryable(ErrorCode.HANDLER_TIMEOUT, `${job.what} did not answer within ${this.timeoutMs} ms`));
  }

  /** Settles a job once; unless its answer was read to the end, its connection is dropped rather than reused. */
  private finish(job: Job, result: HandlerResult, drained = false): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    // A job that was sent is not in the queue: only one that timed out while waiting needs the scan.
    if (!this.active.delete(job)) {
      const at = this.waiting.indexOf(job);
      if (at >= 0) this.waiting.splice(at, 1);
    }
    if (!drained) job.req?.destroy();
    job.resolve(result);
    this.pump();
  }
}
