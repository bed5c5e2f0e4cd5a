/**
 * The agent's side of the HTTP long-poll carrier: a Dialer whose Transport is a ChannelTransport
 * (protocol/longpoll/channel-transport.ts) that a driver keeps moving with HTTP requests. The
 * Link above sends HELLO and the rest on it exactly as over TCP. No HTTP code here: requests go
 * through an injected `post` (agent/link/http-post.ts for real, the simulator its own), and every
 * timer through the injected clock.
 *
 * One dial = one long-poll session: the opening request (no session, bundle 1) makes it at the
 * gateway, and the dialer resolves once its 200 response names the session. From then on the
 * RequestPolicy decides when to send; each response is checked and applied (acks, new messages,
 * a termination). What does not get a good response is resent: an unreadable body, a 409 (a
 * duplicate or overtaken request), a 429/503 (after their retry-after), a network error or any
 * other status (these count toward requestsUnansweredMax, and the next request waits a growing
 * pause so a request that fails at once does not spin). 404/403 mean the session is gone: the
 * transport closes with that code. Closing on this side sends one last request carrying `end`
 * (with any frames still queued, such as the Link's BYE) and aborts the rest.
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { BodyKind, decodeBody, encodeBody } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { endError } from '../../protocol/longpoll/channel-transport.js';
import { bodyLimitsFor, channelLimitsDefault, type ChannelLimits } from '../../protocol/longpoll/limits.js';
import { RequestPolicy, type RequestPolicyOptions } from '../../protocol/longpoll/request-policy.js';
import type { Dialer, Transport } from '../../protocol/transport.js';
import { LongPollClient } from './longpoll-driver.js';
import { refusalOf } from './longpoll-refusal.js';

/** One HTTP exchange: POST `body`, resolve with the status and the whole response body; reject on a network error. `signal` aborts it. */
export type Post = (body: Uint8Array, signal: AbortSignal) => Promise<PostResult>;
export interface PostResult {
  status: number;
  body: Uint8Array;
  /** the refusal's Retry-After (header, or the JSON body's retryAfterMs), in ms */
  retryAfterMs?: number;
}

/** Counts the caller may read (benchmarks: requests per delivered packet); the client only adds to them. */
export interface LongPollCounters {
  requests: number;
  responses: number;
  /** 200s whose body could not be read or did not fit (not applied) */
  unreadable: number;
  /** network errors and error statuses */
  failed: number;
  stale: number;
  busy: number;
}

export const newLongPollCounters = (): LongPollCounters => ({ requests: 0, responses: 0, unreadable: 0, failed: 0, stale: 0, busy: 0 });

export interface LongPollDialerOptions {
  post: Post;
  agentId: string;
  clock: Clock;
  log: Log;
  /** this side's channel; the gateway's bundles are read within the same limits */
  limits?: ChannelLimits;
  policy?: Partial<RequestPolicyOptions>;
  /** the opening exchange, at most (default 5000) */
  openTimeoutMs?: number;
  /** the last request, carrying `end`, is given up after this (default 3000) */
  endTimeoutMs?: number;
  /** the pause after a request without a good response, doubling per one in a row (default 100), up to errorDelayMsMax (default 5000) */
  errorDelayMsMin?: number;
  errorDelayMsMax?: number;
  /** the pause after a 429/503 that names no retry-after (default 1000) */
  busyDelayMsDefault?: number;
  counters?: LongPollCounters;
}

/** The options with every default filled in (the driver's view). */
export type Resolved = Required<Omit<LongPollDialerOptions, 'policy'>> & { policy: Partial<RequestPolicyOptions> };

/** A Dialer over the long-poll carrier. Options are checked here, so a bad limit fails at start. */
export function longPollDialer(opts: LongPollDialerOptions): Dialer {
  const o: Resolved = {
    limits: channelLimitsDefault, policy: {}, openTimeoutMs: 5000, endTimeoutMs: 3000, errorDelayMsMin: 100, errorDelayMsMax: 5000,
    busyDelayMsDefault: 1000, counters: newLongPollCounters(), ...opts,
  };
  new BundleChannel(o.limits); // throws CONFIG_INVALID for bad limits
  new RequestPolicy(o.policy);
  return () => open(o);
}

async function open(o: Resolved): Promise<Transport> {
  const channel = new BundleChannel(o.limits);
  const opening = encodeBody({ kind: BodyKind.REQUEST, ...channel.nextBundle() });
  o.counters.requests++;
  const res = await withTimeout(o, (signal) => o.post(opening, signal));
  if (res.status !== 200) throw refusalOf(res);
  const body = decodeBody(res.body, BodyKind.RESPONSE, bodyLimitsFor(o.limits));
  o.counters.responses++;
  if (body.answers !== 1) throw new FerryError(ErrorCode.LONGPOLL_BODY_INVALID, `the answer to the long-poll opening request says it answers request ${body.answers}`);
  if (body.end) throw endError(body.end, 'the gateway');
  // The gateway answers before it has any frame to send (HELLO has not been sent yet); if it did
  // send some, they are not taken (no one listens yet) and it sends them again.
  if (body.messages.length === 0) channel.accept(body);
  else channel.acknowledged(body);
  const client = new LongPollClient(channel, body.session!, o);
  client.start();
  return client.transport;
}

function withTimeout(o: Resolved, run: (signal: AbortSignal) => Promise<PostResult>): Promise<PostResult> {
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    const timer = o.clock.setTimeout(() => {
      ac.abort();
      reject(new FerryError(ErrorCode.LONGPOLL_CONNECTION_FAILED, `no answer to the long-poll opening request within ${o.openTimeoutMs} ms`));
    }, o.openTimeoutMs);
    run(ac.signal).then(
      (r) => { o.clock.clearTimeout(timer); resolve(r); },
      (err: unknown) => { o.clock.clearTimeout(timer); reject(err as Error); },
    );
  });
}

