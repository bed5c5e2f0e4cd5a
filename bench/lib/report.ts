/** Turns the rounds of each benchmark into the printed report. */
import type { FerryFileResult } from '../ferry-file.js';
import type { MqttQos1Result } from '../mqtt-qos1.js';
import type { Measured } from './measured.js';
import { formatTable } from './table.js';
import { fmt } from './timing.js';

export interface Rounds {
  ferry: FerryFileResult[];
  peer: MqttQos1Result[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Median seconds and packets/s over the rounds, the ratio to the peer's median, the spread. */
export function table(r: Rounds): string[][] {
  const peerRate = median(r.peer.map((m) => m.packets / m.seconds));
  const row = (name: string, runs: { packets: number; seconds: number }[], ratio: boolean): string[] => {
    const rates = runs.map((x) => x.packets / x.seconds);
    return [name, fmt(runs[0]!.packets), fmt(median(runs.map((x) => x.seconds)), 3), fmt(median(rates)),
      ratio ? fmt(median(rates) / peerRate, 2) : '-', `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`];
  };
  return [
    ['benchmark', 'packets', 'seconds', 'packets/s', 'ferry/peer', 'packets/s min–max'],
    row('ferry agent→gateway, file handler, end to end (durable at both)', r.ferry.map((f) => ({ packets: f.packets, seconds: f.endToEndSeconds })), true),
    row('ferry producer acks (durable at the agent)', r.ferry.map((f) => ({ packets: f.packets, seconds: f.producerSeconds })), true),
    row('peer: mqtt.js QoS 1 → mosquitto, until last PUBACK', r.peer.map((m) => ({ packets: m.packets, seconds: m.seconds })), false),
  ];
}

export function roundLine(i: number, f: FerryFileResult, m: MqttQos1Result): string {
  return `round ${i + 1}: ferry end to end ${fmt(f.packets / f.endToEndSeconds)}/s, producer acks ${fmt(f.packets / f.producerSeconds)}/s | peer ${fmt(m.packets / m.seconds)}/s`;
}

/** Placement of the last round, CPU µs per packet and syncs per 1000 packets summed over all rounds. */
export function details(title: string, runs: Measured[]): string[] {
  const packets = runs.reduce((n, r) => n + r.packets, 0);
  const last = runs[runs.length - 1]!;
  const rows: string[][] = [['process', 'pid (last round)', 'cpus', 'CPU µs/packet', 'fdatasync/1000 p', 'fsync/1000 p']];
  let cpuTotal = 0;
  for (const p of last.placement) {
    const cpu = runs.reduce((s, r) => s + (r.cpu[p.name] ?? 0), 0);
    cpuTotal += cpu;
    const syncs = runs.map((r) => r.syncs?.[p.name]);
    const per1000 = (k: 'fdatasync' | 'fsync'): string =>
      syncs.every((c) => c) ? fmt((syncs.reduce((s, c) => s + c![k], 0) / packets) * 1000, 1) : syncs.some((c) => c === null) ? 'n/a' : '-';
    rows.push([p.name, String(p.pid), p.cpus, fmt((cpu / packets) * 1e6, 1), per1000('fdatasync'), per1000('fsync')]);
  }
  rows.push(['total', '', '', fmt((cpuTotal / packets) * 1e6, 1), '', '']);
  return [`${title}:`, ...formatTable(rows).split('\n').map((l) => `  ${l}`)];
}
