import { redactUrl } from '../common/redact.js';
import type { InboxStats } from './downlink/inbox.js';
import type { LinkStats } from './link/link.js';
import type { SourceStats } from './sources/serial-source.js';
import type { DropCounts, StoreStats } from './store/store.js';

/**
 * What `ferry status` shows and the `status` op of the local API returns (docs/operations.md):
 * one object, plain JSON, built from the parts' own stats at the moment it is asked.
 */
export interface AgentStatus {
  agent: string;
  link: {
    /** connecting, connected, backoff or stopped */
    state: LinkStats['state'];
    up: boolean;
    /** of the gateway in use (with several URLs: the one chosen); null while none is open */
    transport: Transport | null;
    gateway: string | null;
    rttMs: number | null;
    /** sessions opened since start */
    connects: number;
    /** why the last session or dial ended, while backing off */
    error: string | null;
  };
  backlog: { packets: number; bytes: number; oldestAgeMs: number | null };
  inflight: number;
  /** packets the gateway refused for now, waiting to be sent again */
  retrying: number;
  deadLetters: number;
  store: { usedBytes: number; capacityBytes: number };
  /** packets that left the store unsent, by why; `rejected`: appends refused while full */
  drops: DropCounts & { rejected: number };
  nacked: Record<string, number>;
  sources: SourceStatus[];
  downlink: {
    /** messages taken from the gateway, not yet answered */
    pending: number;
    accepted: number;
    refused: Record<string, number>;
    /** the routes (pattern and kind of consumer) and the local subscriptions now */
    consumers: { routes: { match: string; to: string }[]; subscriptions: number };
  };
  /** over the last minute (or since start, if shorter) */
  rate: { overS: number; storedPerS: number; ackedPerS: number };
  totals: { stored: number; acked: number };
}

export type Transport = 'tcp' | 'tls' | 'longpoll';

export interface SourceStatus {
  name: string;
  path: string;
  /** open; retrying (with `error`) while it waits to reopen; opening at first */
  state: 'open' | 'retrying' | 'opening';
  error: string | null;
  /** lines read: readings, bad lines and answers */
  lines: number;
  readings: number;
  invalidLines: number;
}

export interface StatusParts {
  agent: string;
  nowMs: number;
  link: LinkStats;
  gatewayUrl: string | null;
  store: StoreStats;
  backlogBytes: number;
  oldestTs: number | null;
  capacityBytes: number;
  sources: { name: string; path: string; stats: SourceStats }[];
  downlink: InboxStats & { subscriptions: number; routes: { match: string; to: string }[] };
  rate: { overS: number; storedPerS: number; ackedPerS: number };
}

export function transportOf(url: string): Transport {
  if (url.startsWith('tls://')) return 'tls';
  if (url.startsWith('http://') || url.startsWith('https://')) return 'longpoll';
  return 'tcp';
}

export function agentStatus(p: StatusParts): AgentStatus {
  const { link, store } = p;
  const up = link.state === 'connected';
  return {
    agent: p.agent,
    link: {
      state: link.state, up, transport: up && p.gatewayUrl ? transportOf(p.gatewayUrl) : null,
      gateway: up && p.gatewayUrl ? redactUrl(p.gatewayUrl) : null, rttMs: link.rttMs, connects: link.connects, error: link.error,
    },
    backlog: { packets: store.backlogPackets, bytes: p.backlogBytes, oldestAgeMs: p.oldestTs === null ? null : Math.max(0, p.nowMs - p.oldestTs) },
    inflight: link.inflightPackets,
    retrying: link.retryPackets,
    deadLetters: store.deadLetters,
    store: { usedBytes: store.storeBytes, capacityBytes: p.capacityBytes },
    drops: { ...store.dropped, rejected: store.rejected },
    nacked: link.nacked,
    sources: p.sources.map(({ name, path, stats: s }) => ({
      name, path, state: s.open ? 'open' : s.error !== null ? 'retrying' : 'opening', error: s.error,
      lines: s.readings + s.invalidLines + s.answers, readings: s.readings, invalidLines: s.invalidLines,
    })),
    downlink: {
      pending: p.downlink.waiting, accepted: p.downlink.accepted, refused: p.downlink.refused,
      consumers: { routes: p.downlink.routes, subscriptions: p.downlink.subscriptions },
    },
    rate: p.rate,
    totals: { stored: store.appended, acked: store.acked },
  };
}
