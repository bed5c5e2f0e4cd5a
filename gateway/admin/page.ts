/**
 * The status page: HTML tables rendered here (they work with JavaScript off), and one inline
 * script that refreshes them and draws the last hour's dispatch rate and failures as SVG lines.
 * No build step and nothing loaded from elsewhere (the server's CSP forbids it).
 */
import type { GatewayStatus } from './status.js';

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (v: unknown): string => String(v).replace(/[&<>"']/g, (c) => escapes[c]!);
const time = (ms: number | null | undefined): string => (ms == null ? '' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
const rate = (n: number): string => (n === 0 ? '0' : n < 0.1 ? n.toFixed(3) : n.toFixed(1));

function table(id: string, head: string[], rows: string[], empty: string): string {
  const body = rows.length > 0 ? rows.join('') : `<tr><td colspan="${head.length}" class="none">${esc(empty)}</td></tr>`;
  return `<table id="${id}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body}</tbody></table>`;
}

/** The three tables, also what the script swaps in on each refresh. */
export function renderTables(s: GatewayStatus): string {
  const agents = s.agents.map((a) => `<tr data-agent="${esc(a.id)}" data-state="${a.state}" class="${a.state}">` + [
    esc(a.id), `<span class="state">${a.state}</span>`, esc(a.transport), esc(a.address ?? ''), time(a.connectedSinceMs), time(a.lastSeenMs),
    String(a.reconnects), a.backlog?.backlogPackets ?? '', a.backlog?.backlogBytes ?? '', a.backlog?.oldestAgeMs ?? '', `<span class="rate">${rate(a.packetsPerSecond)}</span>`,
  ].map((c) => `<td>${c}</td>`).join('') + '</tr>');
  const routes = s.routes.map((r) => `<tr data-route="${esc(r.route)}" data-health="${r.health.state}" class="${r.health.state}">` + [
    esc(r.route), esc(r.handler), `<span class="state">${r.health.state}</span>`, esc(r.health.state === 'failing' ? `${r.health.code}: ${r.health.reason}` : ''),
    String(r.dispatched), String(r.failures), rate(r.dispatchedPerSecond), rate(r.failuresPerSecond),
  ].map((c) => `<td>${c}</td>`).join('') + '</tr>');
  const queues = s.downlink.queues.map((q) => `<tr data-queue="${esc(q.agent)}">${[esc(q.agent), q.queued, q.inFlight, q.bytes].map((c) => `<td>${c}</td>`).join('')}</tr>`);
  return `<h2>Agents</h2>${table('agents', ['agent', 'state', 'transport', 'address', 'connected since', 'last seen', 'reconnects', 'backlog packets', 'backlog bytes', 'oldest ms', 'packets/s'], agents, 'no agent has connected since the gateway started')}`
    + `<h2>Routes and handlers</h2>${table('routes', ['route', 'handler', 'health', 'failure', 'dispatched', 'failures', 'dispatched/s', 'failures/s'], routes, 'no routes')}`
    + `<h2>Downlink queues</h2>${table('queues', ['agent', 'queued', 'in flight', 'bytes'], queues, 'no downlink message is waiting')}`;
}

const style = `body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}.disconnected,.failing{color:#a00}
.connected .state,.ok .state{color:#070}.none{color:#777}svg{border:1px solid #ccc;background:#fcfcfc;margin-right:1em}
#charts{display:flex;flex-wrap:wrap}.chart h3{margin:.2em 0;font-size:14px}`;

/** Polls /status and /history every 2 s; refreshes the tables from / (rendered above, one renderer). */
const script = `(() => {
  const W = 560, H = 140;
  function draw(svg, points, color) {
    const max = Math.max(1, ...points.map((p) => p[1]));
    const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
    const xy = points.map((p) => ((p[0] - t0) / (t1 - t0 || 1) * (W - 40) + 35).toFixed(1) + ',' + (H - 15 - p[1] / max * (H - 30)).toFixed(1));
    svg.innerHTML = '<text x="2" y="12" font-size="10">' + max.toFixed(1) + '/s</text><text x="2" y="' + (H - 4) + '" font-size="10">-1 h</text>'
      + '<text x="' + (W - 30) + '" y="' + (H - 4) + '" font-size="10">now</text>'
      + '<line x1="35" y1="' + (H - 15) + '" x2="' + (W - 5) + '" y2="' + (H - 15) + '" stroke="#999"/>'
      + '<polyline fill="none" stroke-width="1.5" stroke="' + color + '" points="' + xy.join(' ') + '"/>';
    svg.dataset.drawn = String(points.length);
  }
  async function tick() {
    try {
      const [st, hist, page] = await Promise.all([fetch('/status'), fetch('/history'), fetch('/')]);
      const s = await st.json(), h = await hist.json();
      const sec = h.bucketMs / 1000;
      draw(document.getElementById('chart-rate'), h.buckets.map((b) => [b.t, b.dispatched / sec]), '#06c');
      draw(document.getElementById('chart-failures'), h.buckets.map((b) => [b.t, b.failures / sec]), '#c00');
      const doc = new DOMParser().parseFromString(await page.text(), 'text/html');
      document.getElementById('tables').innerHTML = doc.getElementById('tables').innerHTML;
      document.getElementById('summary').textContent = s.agents.filter((a) => a.state === 'connected').length + ' agents connected, '
        + s.totals.dispatched + ' packets dispatched; updated ' + new Date(s.nowMs).toLocaleTimeString();
    } catch (e) {
      document.getElementById('summary').textContent = 'cannot reach the gateway: ' + e;
    }
  }
  document.getElementById('charts').hidden = false;
  tick();
  setInterval(tick, 2000);
})();`;

export function renderPage(s: GatewayStatus): string {
  const connected = s.agents.filter((a) => a.state === 'connected').length;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ferry gateway</title><style>${style}</style></head><body>
<h1>ferry gateway</h1><p id="summary">${connected} agents connected, ${s.totals.dispatched} packets dispatched; as of ${time(s.nowMs)} (reload to refresh)</p>
<p>Listening: ${s.listeners.map((l) => `${esc(l.kind)} ${esc(l.address)}:${l.port}`).join(', ')}</p>
<div id="charts" hidden><div class="chart"><h3>Dispatched per second, last hour</h3><svg id="chart-rate" width="560" height="140"></svg></div>
<div class="chart"><h3>Failures per second, last hour</h3><svg id="chart-failures" width="560" height="140"></svg></div></div>
<noscript><p>The live charts need JavaScript; the tables below are as of this page's load.</p></noscript>
<div id="tables">${renderTables(s)}</div>
<script>${script}</script></body></html>`;
}
