import type { NewPacket } from '../protocol/packet.js';
import type { Reading } from './sources/line-parser.js';

export type RuleConfig =
  | { kind: 'threshold'; key: string; above: number; hysteresis: number; target: string }
  | { kind: 'delta'; key: string; delta: number; target: string }
  | { kind: 'heartbeat'; everyMs: number; target: string };

/** A rule turns readings (and the passing of time) into packets. Pure: time comes in as `nowMs`. */
export interface Rule {
  onReading(reading: Reading, nowMs: number): NewPacket[];
  onTick(nowMs: number): NewPacket[];
}

/**
 * Threshold crossing with hysteresis: one packet when the value rises above `above`, and one when
 * it falls below `above - hysteresis`; noise around the line does not produce a packet storm.
 */
export function thresholdRule(c: Extract<RuleConfig, { kind: 'threshold' }>): Rule {
  let state: 'above' | 'below' | null = null;
  return {
    onReading(r, nowMs) {
      const v = r[c.key];
      if (v === undefined) return [];
      const next = v > c.above ? 'above' : v < c.above - c.hysteresis ? 'below' : state;
      if (next === null || next === state) return [];
      const first = state === null;
      state = next;
      // The first reading only sets the state: a crossing needs a before.
      if (first) return [];
      return [{ target: c.target, ts: nowMs, data: { key: c.key, value: v, state: next, threshold: c.above } }];
    },
    onTick: () => [],
  };
}

/** Change by more than `delta` since the last reported value. */
export function deltaRule(c: Extract<RuleConfig, { kind: 'delta' }>): Rule {
  let last: number | null = null;
  return {
    onReading(r, nowMs) {
      const v = r[c.key];
      if (v === undefined || (last !== null && Math.abs(v - last) <= c.delta)) return [];
      last = v;
      return [{ target: c.target, ts: nowMs, data: { key: c.key, value: v } }];
    },
    onTick: () => [],
  };
}

/** Periodic heartbeat with the latest reading and how many readings arrived since the last one. */
export function heartbeatRule(c: Extract<RuleConfig, { kind: 'heartbeat' }>): Rule {
  let latest: Reading = {};
  let readings = 0;
  let nextMs: number | null = null;
  return {
    onReading(r) {
      latest = { ...latest, ...r };
      readings++;
      return [];
    },
    onTick(nowMs) {
      if (nextMs === null) nextMs = nowMs + c.everyMs;
      if (nowMs < nextMs) return [];
      // Skip missed beats instead of bursting after a stall.
      nextMs += Math.max(1, Math.ceil((nowMs - nextMs + 1) / c.everyMs)) * c.everyMs;
      const packet: NewPacket = { target: c.target, ts: nowMs, data: { ...latest, readings } };
      readings = 0;
      return [packet];
    },
  };
}

export function createRule(c: RuleConfig): Rule {
  switch (c.kind) {
    case 'threshold': return thresholdRule(c);
    case 'delta': return deltaRule(c);
    case 'heartbeat': return heartbeatRule(c);
  }
}
