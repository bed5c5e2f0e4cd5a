/**
 * What the gateway's core tells whoever watches it (the status view, the Prometheus metrics).
 * Every hook is called synchronously on the event loop and must not throw or block: an observer
 * only counts. The core works the same without one.
 */
export type TransportKind = 'tcp' | 'tls' | 'longpoll';

/** What an agent said about its backlog in its last PING (protocol/frames.ts PingFrame). */
export interface PingBacklog {
  backlogPackets?: number;
  backlogBytes?: number;
  oldestAgeMs?: number;
}

export interface GatewayObserver {
  /** An agent was admitted (after HELLO and authentication); `session` is its session ID. */
  sessionOpened(s: { agent: string; session: string; transport: TransportKind; address: string | undefined }): void;
  /** A session ended (a replaced session ends after its successor opened: match by `session`). */
  sessionClosed(agent: string, session: string): void;
  /** A DATA frame of `packets` packets arrived from `agent`. */
  packetsReceived(agent: string, packets: number): void;
  pinged(agent: string, backlog: PingBacklog): void;
  /** A route's handler took a packet (`ok`) or failed it, after `seconds`; `cause` is the handler's own message. */
  handled(route: string, seconds: number, verdict: { ok: true } | { ok: false; code: string; cause: string; retryable: boolean }): void;
  /** Starts timing one group commit of the dispatch log; the returned function ends it. */
  commitTimer(): () => void;
}

/** Several observers as one (the status view and the metrics). */
export function observeAll(observers: GatewayObserver[]): GatewayObserver {
  return {
    sessionOpened: (s) => observers.forEach((o) => o.sessionOpened(s)),
    sessionClosed: (a, s) => observers.forEach((o) => o.sessionClosed(a, s)),
    packetsReceived: (a, n) => observers.forEach((o) => o.packetsReceived(a, n)),
    pinged: (a, b) => observers.forEach((o) => o.pinged(a, b)),
    handled: (r, s, v) => observers.forEach((o) => o.handled(r, s, v)),
    commitTimer: () => {
      const ends = observers.map((o) => o.commitTimer());
      return () => ends.forEach((end) => end());
    },
  };
}

/** The transport an agent's session runs on, from what the listener put in its PeerInfo. */
export function transportKind(peer: { tls: boolean; longpoll?: boolean } | undefined): TransportKind {
  if (peer?.longpoll) return 'longpoll';
  return peer?.tls ? 'tls' : 'tcp';
}
