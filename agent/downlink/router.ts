/**
 * The agent's downlink routes (config `downlink.routes`): tried in order, the first whose `match`
 * fits the message's target wins; none: the inbox refuses it (DOWNLINK_NO_ROUTE). Each route's
 * consumer is built once, here, from the parts main.ts gives it: the serial devices by source name,
 * the local subscribers, and what an exec consumer needs.
 */
import { compilePattern, type Matcher } from '../../protocol/pattern.js';
import type { AgentConfig } from '../config.js';
import type { DownlinkConsumer } from './consumer.js';
import { ExecConsumer, type ExecDeps } from './exec-consumer.js';
import type { LocalSubscribers } from './local-subscribers.js';
import type { SerialCommands } from './serial-consumer.js';

export type RouteConfig = AgentConfig['downlink']['routes'][number];

export interface RouterParts {
  /** the commands of the serial source of that name (its `name`, else its path) */
  serial(source: string): SerialCommands;
  local: LocalSubscribers;
  exec: ExecDeps;
}

export interface DownlinkRouter {
  route(target: string): DownlinkConsumer | undefined;
  /** closes every consumer (kills commands still running) */
  close(): Promise<void>;
}

export function createRouter(routes: readonly RouteConfig[], parts: RouterParts): DownlinkRouter {
  const table: { matches: Matcher; consumer: DownlinkConsumer }[] = routes.map((r) => ({ matches: compilePattern(r.match), consumer: consumerOf(r, parts) }));
  return {
    route: (target) => table.find((r) => r.matches(target))?.consumer,
    close: async () => {
      await Promise.all(table.map((r) => r.consumer.close?.()));
    },
  };
}

function consumerOf(r: RouteConfig, parts: RouterParts): DownlinkConsumer {
  switch (r.to) {
    case 'serial':
      return parts.serial(r.source).consumer(r.timeoutMs);
    case 'local':
      return parts.local.consumer(r.timeoutMs);
    case 'exec':
      return new ExecConsumer(r.command, r.timeoutMs, parts.exec);
  }
}
