/**
 * A route whose handler keeps failing (its broker is down, its webhook answers 503) is one stuck
 * cause per route and code (common/stuck-log.ts): logged once with the handler's own reason, then
 * summarised with the attempts and the packets affected, and cleared by the route's next delivery.
 * One line per packet per attempt would say nothing new (136 lines in 2 minutes for 12 packets).
 */
import type { StuckLog } from '../common/stuck-log.js';
import type { DispatchPacket, Handler, HandlerResult } from './handlers/handler.js';

export class RouteTrouble {
  private readonly scopes = new Map<Handler, { scope: string; route: number; match: string }>();

  constructor(private readonly stuck: StuckLog, routes: { match: string; handler: Handler }[]) {
    this.rename(routes);
  }

  /**
   * The routes after a reload (SIGHUP). Old handlers still finishing keep their scope, so their
   * failures still count and their next delivery still clears it.
   */
  rename(routes: { match: string; handler: Handler }[]): void {
    routes.forEach((r, i) => this.scopes.set(r.handler, { scope: routeScope(r.match), route: i, match: r.match }));
  }

  /** One attempt of `handler` failed, retryably; `cause` is the handler's own (redacted) message. */
  failed(handler: Handler, p: DispatchPacket, r: HandlerResult & { ok: false }, cause: string): void {
    const s = this.scopes.get(handler);
    if (!s) return;
    this.stuck.fail(s.scope, r.code, {
      msg: 'session: handler failed; agent retries later',
      fields: { route: s.route, match: s.match, handler: handler.kind, cause, agent: p.agent, target: p.target, seq: p.seq },
      packet: `${p.agent}/${p.seq}`,
    });
  }

  /** `handler` delivered a packet: whatever held its route back is over. */
  delivered(handler: Handler): void {
    const s = this.scopes.get(handler);
    if (s) this.stuck.clear(s.scope);
  }
}

/**
 * The stuck-cause scope of a route: its dispatch failures and its backend's connection share it.
 * Named by the route's pattern, not its position, so a route a reload keeps but moves stays one cause.
 */
export function routeScope(match: string): string {
  return `routes[${JSON.stringify(match)}]`;
}
