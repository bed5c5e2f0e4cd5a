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

export const downlinkParts = ['latency', 'throughput'] as const;
export type DownlinkPart = (typeof downlinkParts)[number];
export const downlinkSources = ['api', 'mqtt'] as const;
/** How the application hands ferry a downlink message: the HTTP API, or the gateway's MQTT subscription (downlink.mqtt). */
export type DownlinkSource = (typeof downlinkSources)[number];

/** `downlink` (issue 12): application → gateway → agent → local consumer, vs mqtt.js → mosquitto → subscriber. */
export interface DownlinkOptions extends BenchOptions {
  /** BENCH_DOWNLINK_PARTS (default all) */
  parts: DownlinkPart[];
  /** BENCH_DOWNLINK_CARRIERS (default tcp,longpoll) */
  carriers: ('tcp' | 'longpoll')[];
  /** BENCH_DOWNLINK_SOURCES (default api): ferry's ways in; `mqtt` needs the gateway's downlink.mqtt */
  sources: DownlinkSource[];
  /** latency: BENCH_DOWNLINK_RATES messages/s (default 100,1000), BENCH_DOWNLINK_SECONDS measured (default 10) after BENCH_DOWNLINK_WARMUP (default 3) */
  rates: number[];
  seconds: number;
  warmupSeconds: number;
  /** latency: keep-alive connections of the paced poster, BENCH_DOWNLINK_CONNECTIONS (default 16) */
  connections: number;
  /** throughput: BENCH_DOWNLINK_MESSAGES (default 20,000) posted with BENCH_DOWNLINK_CONCURRENCY requests in progress (default 64) */
  messages: number;
  concurrency: number;
  /** throughput: the agent's downlink.messagesMax per run, BENCH_DOWNLINK_WINDOWS (default 32,256) */
  windows: number[];
  /** BENCH_DOWNLINK_ROUNDS (default 1): every run this many times, the order alternating */
  downlinkRounds: number;
}

function list<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = env[name] ? env[name]!.split(',').map((p) => p.trim()) : [...fallback];
  for (const p of raw) if (!(allowed as readonly string[]).includes(p)) throw new Error(`${name}: unknown '${p}' (expected ${allowed.join(', ')})`);
  return allowed.filter((p) => raw.includes(p));
}

const ints = (env: NodeJS.ProcessEnv, name: string, fallback: string, max: number): number[] =>
  (env[name] || fallback).split(',').filter((w) => w.trim() !== '').map((w) => int({ [name]: w.trim() }, name, 1, max));

export function downlinkOptions(base: BenchOptions, env: NodeJS.ProcessEnv = process.env): DownlinkOptions {
  return {
    ...base,
    parts: list(env, 'BENCH_DOWNLINK_PARTS', downlinkParts, downlinkParts),
    carriers: list(env, 'BENCH_DOWNLINK_CARRIERS', ['tcp', 'longpoll'] as const, ['tcp', 'longpoll']),
    sources: list(env, 'BENCH_DOWNLINK_SOURCES', downlinkSources, ['api']),
    rates: ints(env, 'BENCH_DOWNLINK_RATES', '100,1000', 100_000),
    seconds: int(env, 'BENCH_DOWNLINK_SECONDS', 10, 3600),
    warmupSeconds: env.BENCH_DOWNLINK_WARMUP === '0' ? 0 : int(env, 'BENCH_DOWNLINK_WARMUP', 3, 600),
    connections: int(env, 'BENCH_DOWNLINK_CONNECTIONS', 16, 1024),
    messages: int(env, 'BENCH_DOWNLINK_MESSAGES', 20_000, 1_000_000),
    concurrency: int(env, 'BENCH_DOWNLINK_CONCURRENCY', 64, 1000),
    windows: ints(env, 'BENCH_DOWNLINK_WINDOWS', '32,256', 1024),
    downlinkRounds: int(env, 'BENCH_DOWNLINK_ROUNDS', 1, 20),
  };
}
