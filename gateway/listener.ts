/**
 * The gateway's tunnel listeners: plaintext TCP and/or TLS. Every accepted connection passes
 * admission (gateway/admission.ts) on its raw TCP socket, before any work is done for it (on the
 * TLS port: before the handshake), then becomes a `SocketTransport` carrying `peer` (address, TLS
 * or not, the verified client certificate's CN) and is handed to `onTransport`; its first frame may
 * be at most `helloFrameBytesMax` (4 KiB) and its write queue is bounded (WriteLimits). A refused
 * connection on the plaintext port gets a BYE saying why and is closed; on the TLS port it is
 * destroyed at once (a BYE could only follow a handshake, which is the work a refusal must not
 * cost), and counted in `stats().refused` and the throttled log either way.
 *
 * The TLS port looks at the first byte: a TLS handshake starts with 0x16; anything else is a
 * plaintext client, which gets a plaintext BYE TLS_REQUIRED instead of a handshake error it
 * could not read. Client certificates, when `tlsFiles.ca` is set, are requested but not required
 * at the TLS level (`rejectUnauthorized: false`): the session decides (gateway/auth.ts), so an
 * unverified certificate reaches the session as no certificate and is refused with a ferry code.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Log } from '../common/log.js';
import { encodeFrame } from '../protocol/codec.js';
import { ErrorCode, type ErrorCode as Code } from '../protocol/errors.js';
import { bind } from '../common/bind.js';
import { FrameType } from '../protocol/frames.js';
import { helloFrameBytesMax } from '../protocol/limits.js';
import { SocketTransport, type WriteLimits } from '../protocol/socket-transport.js';
import { subjectCN, type TlsFiles } from '../protocol/tls-files.js';
import type { PeerInfo, Transport } from '../protocol/transport.js';
import { Admission, type Admit } from './admission.js';
import { LogSummary, logSummaryIntervalMsDefault } from './log-summary.js';

export interface ListenOptions {
  /** HOST:PORT of the plaintext listener */
  tcp?: string;
  /** HOST:PORT of the TLS listener; needs `tlsFiles.cert` and `tlsFiles.key` */
  tls?: string;
  /** PEM contents (protocol/tls-files.ts loadTlsFiles); `ca` turns on client certificates */
  tlsFiles?: TlsFiles;
  limits: {
    /** sockets open at once (not those refused by admission, which have their own bound); beyond it a new one is closed at once, without a BYE */
    connectionsMax: number;
    connectionsPerAddressMax: number;
    sessionsPerSecondMax: number;
    /** a share of sessionsPerSecondMax for one address (default: gateway/admission.ts) */
    sessionsPerAddressPerSecondMax?: number;
    frameBytesMax: number;
    /** time for a TLS client's first byte and handshake */
    handshakeTimeoutMs: number;
  } & Partial<WriteLimits>;
  log: Log;
  /** for the admission token bucket (default Date.now) */
  now?: () => number;
  /**
   * Where refusals are logged: the first of each code whole, then a summary line per interval
   * (gateway/log-summary.ts). The gateway shares one with its sessions; absent: the listener
   * makes its own on real timers (closed with the listener).
   */
  summary?: LogSummary;
  /** for GATEWAY_BUSY retryAfterMs jitter (default Math.random) */
  rng?: () => number;
  /** admission shared with other listeners (the long-poll sessions), so an address's limits cover all its connections; absent: one of its own from `limits` */
  admission?: Admission;
}

export interface ListenerStats {
  /** sockets open now */
  connections: number;
  /** refusals so far, by code (`connectionsMax` for those closed without a BYE) */
  refused: Record<string, number>;
}

export interface Listener {
  /** the ports actually bound (useful with port 0) */
  ports: { tcp?: number; tls?: number };
  stats(): ListenerStats;
  /** Stops accepting; closes connections not handed on yet; resolves once every connection has ended. */
  close(): Promise<void>;
}

/** A raw connection between accept and hand-over. */
interface Pending {
  socket: Socket;
  address: string;
  admit: Admit;
}

const tlsHandshakeByte = 0x16;

export { bind };

/** Refused sockets kept open at once so their BYE can be read (admission refusals on the plaintext port). */
const refusingSocketsMax = 256;

/** Writes a BYE, ends the connection, and destroys it after a bound if the peer never closes. */
function refuse(socket: Socket, code: Code, reason: string, retryAfterMs?: number): void {
  socket.resume(); // read and drop what the client sends, so closing does not reset the connection before it read the BYE
  socket.end(encodeFrame({ t: FrameType.BYE, code, reason, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }));
  setTimeout(() => socket.destroy(), 1000).unref();
}

export async function listen(opts: ListenOptions, onTransport: (t: Transport) => void): Promise<Listener> {
  const { limits, log } = opts;
  const now = opts.now ?? Date.now;
  const admission = opts.admission ?? new Admission(limits, { now, rng: opts.rng ?? Math.random });
  // Absent ones take the transport's defaults.
  const writeLimits: Partial<WriteLimits> = { writeQueueBytesHigh: limits.writeQueueBytesHigh, writeQueueBytesMax: limits.writeQueueBytesMax, writeStallMs: limits.writeStallMs };
  const sockets = new Set<Socket>();
  /** raw sockets not yet handed to a transport (closed by `close()`) */
  const pending = new Set<Socket>();
  const refused: Record<string, number> = {};
  const ownSummary = opts.summary === undefined;
  const summary = opts.summary ?? new LogSummary({
    log, intervalMs: logSummaryIntervalMsDefault,
    clock: { now, setTimeout: (fn, ms) => setTimeout(fn, ms).unref(), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) },
  });

  /** Counts a refusal and logs it through the summary (a storm must not flood the log). */
  const noteRefused = (code: string, fields: Record<string, unknown>): void => {
    refused[code] = (refused[code] ?? 0) + 1;
    summary.note('warn', 'listener: connection refused', code, fields);
  };

  const handOver = (p: Pending, socket: Socket | TLSSocket, peer: PeerInfo, admit: Admit & { ok: true }): void => {
    pending.delete(p.socket);
    socket.once('close', admit.release);
    // Before HELLO a connection is unauthenticated: its first frame may be no larger than a HELLO can be.
    onTransport(new SocketTransport(socket, { ...writeLimits, frameBytesMax: limits.frameBytesMax, firstFrameBytesMax: helloFrameBytesMax, peer }));
  };

  /** Accepts a raw socket; returns its admission, or null when it was closed at once. */
  const accept = (socket: Socket): Pending | null => {
    socket.on('error', () => undefined);
    if (sockets.size >= limits.connectionsMax) {
      noteRefused('connectionsMax', { address: socket.remoteAddress, connectionsMax: limits.connectionsMax });
      socket.destroy();
      return null;
    }
    sockets.add(socket);
    pending.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      pending.delete(socket);
    });
    const address = socket.remoteAddress ?? 'unknown';
    return { socket, address, admit: admission.admit(address) };
  };

  /**
   * Sockets refused by admission, waiting up to a second for their BYE to be read. They no longer
   * count against connectionsMax (else one address opening sockets fast would fill it with its
   * own refusals) and have a bound of their own: past it, a refused socket is closed without a BYE.
   */
  const refusing = new Set<Socket>();
  const refuseAdmission = (socket: Socket | TLSSocket, p: Pending): void => {
    if (p.admit.ok) return;
    noteRefused(p.admit.code, { address: p.address, reason: p.admit.reason });
    sockets.delete(socket);
    pending.delete(socket);
    if (refusing.size >= refusingSocketsMax) {
      socket.destroy();
      return;
    }
    refusing.add(socket);
    socket.once('close', () => refusing.delete(socket));
    refuse(socket, p.admit.code, p.admit.reason, p.admit.retryAfterMs);
  };

  const servers: Server[] = [];
  const ports: Listener['ports'] = {};

  if (opts.tcp !== undefined) {
    const server = createServer((socket) => {
      const p = accept(socket);
      if (!p) return;
      if (!p.admit.ok) return refuseAdmission(socket, p);
      handOver(p, socket, { address: p.address, tls: false }, p.admit);
    });
    servers.push(server);
    ports.tcp = await bind(server, opts.tcp, 'listen.tcp');
  }

  if (opts.tls !== undefined) {
    const files = opts.tlsFiles;
    if (files?.cert === undefined || files.key === undefined) throw new Error('listen: listen.tls needs tlsFiles.cert and tlsFiles.key');
    const clientCerts = files.ca !== undefined;
    const tlsServer = createTlsServer({
      cert: files.cert, key: files.key, ...(clientCerts ? { ca: files.ca } : {}),
      requestCert: clientCerts, rejectUnauthorized: false, handshakeTimeout: limits.handshakeTimeoutMs,
    });
    // The TLS server never listens: the raw listener hands it connections that start with a handshake.
    // Its TLSSocket for a raw socket is found again by the remote address and port they share.
    const inHandshake = new Map<string, Pending>();
    const key = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string => `${s.remoteAddress}|${s.remotePort}`;
    tlsServer.on('secureConnection', (ts: TLSSocket) => {
      const p = inHandshake.get(key(ts));
      inHandshake.delete(key(ts));
      ts.on('error', () => undefined);
      // Only admitted sockets reach the handshake (refused ones were destroyed at accept).
      if (!p?.admit.ok) {
        ts.destroy();
        return;
      }
      const peer: PeerInfo = { address: p.address, tls: true };
      if (clientCerts && ts.authorized) {
        const cn = ts.getPeerX509Certificate();
        const subject = cn && subjectCN(cn);
        if (subject !== undefined) peer.certSubject = subject;
      }
      handOver(p, ts, peer, p.admit);
    });
    tlsServer.on('tlsClientError', (err: Error & { code?: string }, ts: TLSSocket) => {
      const p = ts.remotePort !== undefined ? inHandshake.get(key(ts)) : undefined;
      if (p) inHandshake.delete(key(ts));
      noteRefused(ErrorCode.TLS_FAILED, { address: p?.address ?? ts.remoteAddress ?? null, error: err.message, tlsCode: err.code ?? null });
      ts.destroy();
    });
    const server = createServer((socket) => {
      const p = accept(socket);
      if (!p) return;
      if (!p.admit.ok) {
        // Refused before the handshake: one address cannot hold the port with silent sockets, nor make the gateway handshake for nothing.
        noteRefused(p.admit.code, { address: p.address, reason: p.admit.reason, tls: true });
        socket.destroy();
        return;
      }
      const k = key(socket);
      socket.setTimeout(limits.handshakeTimeoutMs, () => socket.destroy());
      socket.once('close', () => {
        if (inHandshake.get(k) === p) inHandshake.delete(k);
        if (p.admit.ok) p.admit.release(); // idempotent; the transport's close releases it too
      });
      socket.once('data', (chunk: Buffer) => {
        socket.setTimeout(0);
        if (chunk[0] !== tlsHandshakeByte) {
          noteRefused(ErrorCode.TLS_REQUIRED, { address: p.address });
          refuse(socket, ErrorCode.TLS_REQUIRED, 'this port takes TLS only: use a tls:// gateway URL');
          return;
        }
        socket.pause();
        socket.unshift(chunk);
        inHandshake.set(k, p);
        tlsServer.emit('connection', socket);
      });
    });
    servers.push(server);
    ports.tls = await bind(server, opts.tls, 'listen.tls');
  }

  return {
    ports,
    stats: () => ({ connections: sockets.size, refused: { ...refused } }),
    async close() {
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      // Transports already handed on are ended by their owner (the gateway says BYE SHUTDOWN).
      for (const s of pending) s.destroy();
      for (const s of refusing) s.destroy();
      await Promise.all(closed);
      if (ownSummary) summary.close();
    },
  };
}
