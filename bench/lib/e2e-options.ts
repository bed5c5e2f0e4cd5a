/** Options of the end-to-end benchmarks (tunnel, latency, idle), from the environment; see bench/README-e2e.md. */
import { int, type BenchOptions } from './options.js';

export interface TunnelOptions extends BenchOptions {
  /** BENCH_TUNNEL_PACKETS (default 50,000) */
  tunnelPackets: number;
  /** send requests the ferry producer keeps unanswered, BENCH_TUNNEL_WINDOW (default 1000) */
  tunnelWindow: number;
  /** the peer's in-flight windows, BENCH_TUNNEL_PEER_WINDOWS (default 1,20) */
  peerWindows: number[];
}

export interface LatencyOptions extends BenchOptions {
  /** BENCH_LATENCY_RATE packets/s (default 1000) */
  rate: number;
  /** BENCH_LATENCY_SECONDS measured (default 20), after BENCH_LATENCY_WARMUP_SECONDS (default 5) */
  seconds: number;
  warmupSeconds: number;
  /** BENCH_LATENCY_ROUNDS (default 1) */
  latencyRounds: number;
}

export interface IdleOptions extends BenchOptions {
  /** BENCH_IDLE_AGENTS (default 10,000) */
  agents: number;
  /** connections opened per second, BENCH_IDLE_RATE (default 500) */
  openRate: number;
  /** seconds idle before the RSS samples, BENCH_IDLE_SECONDS (default 10) */
  idleSeconds: number;
  /** source addresses 127.0.0.1.. used round robin, BENCH_IDLE_ADDRESSES (default 10) */
  addresses: number;
}

export function tunnelOptions(base: BenchOptions, env: NodeJS.ProcessEnv = process.env): TunnelOptions {
  const windows = (env.BENCH_TUNNEL_PEER_WINDOWS ?? '1,20').split(',').map((w) => int({ w: w.trim() }, 'w', 1, 16_384));
  return { ...base, tunnelPackets: int(env, 'BENCH_TUNNEL_PACKETS', 50_000, 1_000_000_000), tunnelWindow: int(env, 'BENCH_TUNNEL_WINDOW', 1000, 16_384), peerWindows: windows };
}

export function latencyOptions(base: BenchOptions, env: NodeJS.ProcessEnv = process.env): LatencyOptions {
  const warm = env.BENCH_LATENCY_WARMUP_SECONDS === '0' ? 0 : int(env, 'BENCH_LATENCY_WARMUP_SECONDS', 5, 600);
  return { ...base, rate: int(env, 'BENCH_LATENCY_RATE', 1000, 100_000), seconds: int(env, 'BENCH_LATENCY_SECONDS', 20, 3600), warmupSeconds: warm, latencyRounds: int(env, 'BENCH_LATENCY_ROUNDS', 1, 20) };
}

export function idleOptions(base: BenchOptions, env: NodeJS.ProcessEnv = process.env): IdleOptions {
  return {
    ...base, agents: int(env, 'BENCH_IDLE_AGENTS', 10_000, 60_000), openRate: int(env, 'BENCH_IDLE_RATE', 500, 100_000),
    idleSeconds: int(env, 'BENCH_IDLE_SECONDS', 10, 3600), addresses: int(env, 'BENCH_IDLE_ADDRESSES', 10, 250),
  };
}

export const longpollParts = ['throughput', 'latency', 'idle'] as const;
export type LongpollPart = (typeof longpollParts)[number];

/** `longpoll`: the HTTP long-poll carrier against the TCP tunnel (issue 11); each part reuses another benchmark's options. */
export interface LongpollOptions extends BenchOptions {
  /** BENCH_LONGPOLL_PARTS (default all): throughput (BENCH_PACKETS, BENCH_WINDOW, BENCH_ROUNDS), latency, idle */
  parts: LongpollPart[];
  /** BENCH_LATENCY_* */
  latency: LatencyOptions;
  /** BENCH_IDLE_RATE, _SECONDS, _ADDRESSES; sessions per carrier: BENCH_LONGPOLL_IDLE_SESSIONS (default 4000: fewer and the TCP side's growth is lost in the GC's noise) */
  idle: IdleOptions;
}

export function longpollOptions(base: BenchOptions, env: NodeJS.ProcessEnv = process.env): LongpollOptions {
  const raw = env.BENCH_LONGPOLL_PARTS ? env.BENCH_LONGPOLL_PARTS.split(',').map((p) => p.trim()) : [...longpollParts];
  for (const p of raw) if (!(longpollParts as readonly string[]).includes(p)) throw new Error(`BENCH_LONGPOLL_PARTS: unknown part '${p}' (expected ${longpollParts.join(', ')})`);
  return {
    ...base, parts: longpollParts.filter((p) => raw.includes(p)), latency: latencyOptions(base, env),
    idle: { ...idleOptions(base, env), agents: int(env, 'BENCH_LONGPOLL_IDLE_SESSIONS', 4000, 60_000) },
  };
}
