import type { AgentStatus } from '../agent/status.js';
import { formatAge, formatBytes, formatRate } from './format-units.js';

const labelChars = 14;

/** `ferry status` for an agent, as aligned lines (docs/operations.md shows an example). */
export function formatAgentStatus(s: AgentStatus): string {
  const rows: [string, string][] = [];
  const row = (label: string, value: string): void => {
    rows.push([label, value]);
  };
  row('agent', s.agent);
  const l = s.link;
  const rtt = l.rttMs === null ? '' : `  rtt ${l.rttMs} ms`;
  row('link', l.up ? `up (${l.transport}) ${l.gateway}${rtt}` : `down (${l.state}${l.error ? `: ${l.error}` : ''})`);
  const b = s.backlog;
  row('backlog', `${b.packets} packets, ${formatBytes(b.bytes)}${b.oldestAgeMs === null ? '' : `, oldest ${formatAge(b.oldestAgeMs)}`}`);
  row('in flight', `${s.inflight} packets`);
  row('retrying', `${s.retrying} packets`);
  row('dead letters', String(s.deadLetters));
  const pct = s.store.capacityBytes > 0 ? ` (${((100 * s.store.usedBytes) / s.store.capacityBytes).toFixed(1)}%)` : '';
  row('store', `${formatBytes(s.store.usedBytes)} of ${formatBytes(s.store.capacityBytes)}${pct}`);
  row('drops', counts({ ...s.drops }));
  row('nacks', counts(s.nacked));
  row('rate', `stored ${formatRate(s.rate.storedPerS)}, acked ${formatRate(s.rate.ackedPerS)} (last ${formatAge(s.rate.overS * 1000)})`);
  row('totals', `stored ${s.totals.stored}, acked ${s.totals.acked} since start`);
  if (s.sources.length === 0) row('sources', 'none');
  s.sources.forEach((src, i) => {
    const state = src.state === 'retrying' ? `retrying (${src.error})` : src.state;
    row(i === 0 ? 'sources' : '', `${src.name}  ${state}  ${src.lines} lines (${src.invalidLines} bad)${src.name === src.path ? '' : `  ${src.path}`}`);
  });
  const d = s.downlink;
  const routes = d.consumers.routes.map((r) => `${r.match} -> ${r.to}`).join(', ') || 'no routes';
  row('downlink', `${d.pending} pending, ${d.accepted} accepted; ${routes}; ${d.consumers.subscriptions} local subscriptions`);
  return rows.map(([label, value]) => `${label.padEnd(labelChars)}${value}`).join('\n') + '\n';
}

/** `none`, or `code 3, other 1` with the zeros left out. */
function counts(c: Record<string, number>): string {
  const parts = Object.entries(c).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}
