/** A client of the gateway's application API (listen.api) for tests: plain node:http, JSON in and out. */
import { request } from 'node:http';
import { join } from 'node:path';
import { AppRegistry } from '../../gateway/apps.js';
import { waitFor } from './ferry.js';

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

export function apiCall(port: number, token: string | null, method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({
      host: '127.0.0.1', port, method, path,
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) });
        } catch {
          reject(new Error(`API answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Queues a message; resolves with its ID, or throws with the API's answer. */
export async function postMessage(port: number, token: string, agent: string, msg: { target: string; data: unknown; ttl?: number }): Promise<string> {
  const r = await apiCall(port, token, 'POST', `/v1/agents/${encodeURIComponent(agent)}/messages`, msg);
  if (r.status !== 201 || typeof r.body.id !== 'string') throw new Error(`POST for ${agent} answered ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

export async function messageState(port: number, token: string, agent: string, id: string): Promise<Record<string, unknown>> {
  const r = await apiCall(port, token, 'GET', `/v1/agents/${encodeURIComponent(agent)}/messages/${id}`);
  if (r.status !== 200) throw new Error(`GET ${id} answered ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Waits until the message reaches one of `states` and returns it. */
export function waitState(port: number, token: string, agent: string, id: string, states: readonly string[], msMax = 20_000): Promise<Record<string, unknown>> {
  return waitFor(`message ${id} of ${agent} to be ${states.join(' or ')}`, async () => {
    const m = await messageState(port, token, agent, id).catch(() => undefined);
    return m && states.includes(m.state as string) ? m : undefined;
  }, msMax);
}

/** Registers an application in the gateway's data dir, as `ferry gateway add-app` does, and returns its token. */
export async function addApp(gatewayDataDir: string, name: string, agents?: readonly string[]): Promise<string> {
  const apps = await AppRegistry.open(gatewayDataDir, { watchIntervalMs: 0 });
  try {
    return await apps.add(name, agents);
  } finally {
    apps.close();
  }
}

export const gatewayDataDir = (rigDir: string): string => join(rigDir, 'gw');
