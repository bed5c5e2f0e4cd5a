/**
 * `ferry status --gateway http://HOST:PORT [--token-file F] [--json]`, or `--config gateway.yaml`
 * (its listen.admin and admin.tokenFile): the gateway's state from its admin endpoint, as a
 * readable summary or (--json) the JSON of GET /status. cli/status.ts dispatches here.
 */
import { readFileSync } from 'node:fs';
import { flags } from './args.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import type { GatewayStatus } from '../gateway/admin/status.js';

/** How long the admin endpoint has to answer. */
const requestTimeoutMs = 5000;

async function target(f: { gateway?: string; config?: string; 'token-file'?: string }): Promise<{ url: string; token?: string }> {
  let url = f.gateway;
  let tokenFile = f['token-file'];
  if (url === undefined) {
    if (f.config === undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, 'give --gateway http://HOST:PORT or --config GATEWAY_CONFIG');
    const [{ loadYamlFile }, { gatewayConfigSchema }] = await Promise.all([import('../hw/yaml-file.js'), import('../gateway/config.js')]);
    const c = loadYamlFile(f.config, gatewayConfigSchema);
    if (c.listen.admin === false) throw new FerryError(ErrorCode.CONFIG_INVALID, `${f.config}: listen.admin is false: this gateway has no admin endpoint`);
    // A gateway bound to every address answers on loopback too.
    url = `http://${c.listen.admin.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:')}`;
    tokenFile ??= c.admin.tokenFile;
  }
  const token = tokenFile === undefined ? undefined : readFileSync(tokenFile, 'utf8').replace(/\r?\n$/, '');
  return { url: url.replace(/\/+$/, ''), ...(token !== undefined ? { token } : {}) };
}

async function fetchStatus(url: string, token: string | undefined): Promise<GatewayStatus> {
  let r: Response;
  try {
    r = await fetch(`${url}/status`, { headers: token !== undefined ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(requestTimeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new FerryError(ErrorCode.ADMIN_UNREACHABLE, `cannot reach the gateway's admin endpoint ${url} (${cause})`);
  }
  const body = await r.text();
  if (r.status !== 200) {
    let refusal: { code?: string; message?: string } = {};
    try {
      refusal = JSON.parse(body) as typeof refusal;
    } catch { /* not the admin endpoint's JSON */ }
    const code = Object.values(ErrorCode).find((c) => c === refusal.code) ?? ErrorCode.ADMIN_UNREACHABLE;
    throw new FerryError(code, `${url}/status answered ${r.status}: ${refusal.message ?? body.slice(0, 200)}`);
  }
  try {
    const s = JSON.parse(body) as GatewayStatus;
    if (s.role === 'gateway') return s;
  } catch { /* below */ }
  throw new FerryError(ErrorCode.ADMIN_UNREACHABLE, `${url}/status did not answer with a gateway's status`);
}

const ago = (nowMs: number, ms: number | null): string => (ms === null ? '-' : `${Math.max(0, Math.round((nowMs - ms) / 1000))}s ago`);
const perS = (n: number): string => `${n.toFixed(n < 1 ? 2 : 1)}/s`;

/** The readable summary (the same data as --json). */
export function formatGatewayStatus(s: GatewayStatus): string {
  const out: string[] = [];
  const connected = s.agents.filter((a) => a.state === 'connected');
  out.push(`gateway: up ${Math.round((s.nowMs - s.startedAtMs) / 1000)}s; ${s.totals.sessions} sessions, ${s.totals.dispatched} dispatched, ${s.totals.rejected} rejected, ${s.totals.retried} retried`);
  out.push(`listeners: ${s.listeners.map((l) => `${l.kind} ${l.address}:${l.port}`).join(', ')}`);
  out.push(`agents: ${connected.length} connected, ${s.agents.length - connected.length} disconnected`);
  for (const a of s.agents) {
    const backlog = a.backlog ? `backlog ${a.backlog.backlogPackets ?? '?'} packets ${a.backlog.backlogBytes ?? '?'} bytes${a.backlog.oldestAgeMs !== undefined ? ` oldest ${a.backlog.oldestAgeMs} ms` : ''}` : 'backlog -';
    const when = a.state === 'connected' ? `since ${ago(s.nowMs, a.connectedSinceMs)}, seen ${ago(s.nowMs, a.lastSeenMs)}` : `disconnected ${ago(s.nowMs, a.disconnectedAtMs)}`;
    out.push(`  ${a.id}  ${a.state}  ${a.transport} ${a.address ?? '-'}  ${when}  ${perS(a.packetsPerSecond)}  reconnects ${a.reconnects}  ${backlog}`);
  }
  out.push('routes:');
  for (const r of s.routes) {
    const health = r.health.state === 'failing' ? `FAILING ${r.health.code}: ${r.health.reason}` : r.health.state;
    out.push(`  ${r.route}  ${r.handler}  ${health}  ${perS(r.dispatchedPerSecond)} (${r.dispatched} dispatched)  failures ${perS(r.failuresPerSecond)} (${r.failures}${r.failures > 0 ? `: ${Object.entries(r.failuresByCode).map(([c, n]) => `${c} ${n}`).join(', ')}` : ''})`);
  }
  out.push(`downlink: ${s.downlink.queued} queued, ${s.downlink.delivered} in flight`);
  for (const q of s.downlink.queues) out.push(`  ${q.agent}  queued ${q.queued}  in flight ${q.inFlight}  ${q.bytes} bytes`);
  return `${out.join('\n')}\n`;
}

export async function runGatewayStatus(args: string[]): Promise<number> {
  const f = flags(args, { gateway: { type: 'string' }, config: { type: 'string' }, 'token-file': { type: 'string' }, json: { type: 'boolean' } });
  const { url, token } = await target(f);
  const s = await fetchStatus(url, token);
  process.stdout.write(f.json ? `${JSON.stringify(s, null, 2)}\n` : formatGatewayStatus(s));
  return 0;
}
