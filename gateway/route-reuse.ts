/**
 * Which routes a SIGHUP reload keeps. A route whose settings and credentials did not change keeps
 * its running handler: one writer per file, one broker connection, its counts. Two file handlers on
 * one path must never run together: each cuts the file back to its own idea of its length after a
 * failed write, which would cut lines the other wrote and acknowledged.
 */
import { resolve } from 'node:path';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import type { MqttCredentials } from './route-secrets.js';
import type { RouteConfig } from './config.js';
import type { Handler } from './handlers/handler.js';

/** A route in force: its settings, its credentials as read, and its handler. */
export interface LiveRoute {
  config: RouteConfig;
  creds: MqttCredentials | undefined;
  handler: Handler;
}

/**
 * Which of a reload's routes keep a running handler (same settings and credentials) and which need
 * a new one. A new file handler on a path a running one writes is refused: two writers of one file
 * each cut it back to their own length after a failed write, which could cut the other's acked lines.
 */
export function reusePlan(running: readonly LiveRoute[], routes: readonly RouteConfig[], creds: readonly (MqttCredentials | undefined)[]): { reused: (LiveRoute | undefined)[]; fresh: number[] } {
  const free = running.slice();
  const reused: (LiveRoute | undefined)[] = [];
  const fresh: number[] = [];
  routes.forEach((r, i) => {
    const j = free.findIndex((l) => JSON.stringify(l.config) === JSON.stringify(r) && JSON.stringify(l.creds) === JSON.stringify(creds[i]));
    if (j >= 0) {
      reused[i] = { ...free[j]!, config: r };
      free.splice(j, 1);
      return;
    }
    fresh.push(i);
  });
  for (const i of fresh) {
    const r = routes[i]!;
    if (r.handler !== 'file') continue;
    const clash = running.find((l) => l.config.handler === 'file' && resolve(l.config.path) === resolve(r.path));
    if (clash) throw new FerryError(ErrorCode.CONFIG_INVALID, `routes[${i}]: file ${r.path} is written by a running route with other settings; a reload cannot change them (one writer per file): restart the gateway, or write to another path`);
  }
  return { reused, fresh };
}

