/**
 * The agent's end of the long-poll carrier, by hand, for gateway tests: a BundleChannel whose
 * request bodies the test sends however it likes (in order, twice, out of order, never) and whose
 * responses it reads back into frames. No HTTP: pair it with `post` below or call
 * LongPollSessions.handle directly.
 */
import { request } from 'node:http';
import { decodeBody as decodeFrameBody, encodeFrameBody } from '../../protocol/codec.js';
import type { Frame } from '../../protocol/frames.js';
import { BodyKind, decodeBody, encodeBody, type Body, type End } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { agentHeader, longpollContentType, longpollPath } from '../../protocol/longpoll/http.js';
import { bodyLimitsFor, channelLimitsDefault, type ChannelLimits } from '../../protocol/longpoll/limits.js';

export class LongPollPeer {
  readonly channel: BundleChannel;
  session: string | undefined;
  /** every frame received from the gateway, in order */
  readonly frames: Frame[] = [];
  /** the termination the gateway sent, if any */
  end: End | undefined;

  constructor(readonly agent: string, limits: ChannelLimits = channelLimitsDefault) {
    this.channel = new BundleChannel(limits);
  }

  /** Queues a frame for the next request. */
  send(frame: Frame): void {
    this.channel.send(encodeFrameBody(frame));
  }

  /** The next request body (the opening one while no session is known), with its request number. */
  request(extra: { end?: End } = {}): { bundle: number; bytes: Buffer; body: Body } {
    const ob = this.channel.nextBundle();
    const body: Body = { kind: BodyKind.REQUEST, ...ob, ...(this.session !== undefined ? { session: this.session } : {}), ...extra };
    return { bundle: ob.bundle, bytes: encodeBody(body), body };
  }

  /** Reads a 200 response: learns the session, applies it to the channel, returns the new frames. */
  accept(bytes: Uint8Array): { body: Body; frames: Frame[] } {
    const body = decodeBody(bytes, BodyKind.RESPONSE, bodyLimitsFor(channelLimitsDefault));
    this.session ??= body.session;
    const frames = this.channel.accept(body).map((m) => decodeFrameBody(m));
    this.frames.push(...frames);
    if (body.end) this.end = body.end;
    return { body, frames };
  }
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** the JSON of a refusal */
  json(): { code: string; message: string; retryAfterMs?: number };
}

/** One POST over a fresh connection (no keep-alive, so a test sees one request per socket). */
export function post(port: number, body: Uint8Array, opts: { agent?: string; path?: string; method?: string; contentType?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, path: opts.path ?? longpollPath, method: opts.method ?? 'POST', agent: false,
      headers: {
        'content-type': opts.contentType ?? longpollContentType, 'content-length': body.length,
        ...(opts.agent !== undefined ? { [agentHeader]: opts.agent } : {}), ...opts.headers,
      },
      ...(opts.signal ? { signal: opts.signal } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, json: () => JSON.parse(b.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
