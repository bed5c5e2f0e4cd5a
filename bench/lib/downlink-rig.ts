/**
 * ferry's downlink as an application and a device see it, for bench/downlink.ts: a real `ferry
 * gateway` with the application API (`listen.api`, and optionally the MQTT source
 * `downlink.mqtt`), a real `ferry agent` whose `downlink.routes` send `bench/#` to local-socket
 * subscribers, an application token, and the device's consumer (clients/local-subscriber.ts).
 * Configured by YAML and the CLI only, as a user would.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ferryBin } from '../../cli/proc.js';
import type { LocalSubscriberReport } from '../clients/local-subscriber.js';
import type { Cleanup } from './cleanup.js';
import { clientScript } from './client.js';
import { agentId, tempDir } from './configs.js';
import { fileRoute, gatewayUrl, startAgent, startGateway, type Carrier, type RigOptions, type StartedAgent, type StartedGateway } from './ferry-rig.js';
import { subscriberResult } from './mqtt-side.js';
import { pinnedNode, spawnProc, type Proc } from './proc.js';

/** What the application posts to, and what the agent's route takes. */
export const downTarget = 'bench/down';
export const downPattern = 'bench/#';
/** The gateway's MQTT source topic for the benchmark's agent (downlink.mqtt's default form). */
export const mqttSourceTopic = `ferry/down/${agentId}/${downTarget}`;

export interface DownlinkRigSpec {
  carrier: Carrier;
  /** the agent's downlink window (downlink.messagesMax); undefined: its default */
  window?: number;
  /** messages the run posts: the gateway's queue is sized to hold them all, so no POST meets QUEUE_FULL */
  messages: number;
  /** also queue what is published under ferry/down/{agent}/# on this broker (downlink.mqtt) */
  mqttUrl?: string;
}

export interface DownlinkRig extends DownlinkGateway {
  agent: StartedAgent;
  servers: { name: string; pid: number }[];
}

/** A token from `ferry gateway add-app NAME --data-dir DIR` (printed on stdout, the note on stderr). */
async function addApp(gatewayDataDir: string, name: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [ferryBin, 'gateway', 'add-app', name, '--data-dir', gatewayDataDir]);
  const token = stdout.trim();
  if (!/^\S{16,}$/.test(token)) throw new Error(`ferry gateway add-app printed no token: ${JSON.stringify(stdout.slice(0, 200))}`);
  return token;
}

export interface DownlinkGateway {
  dir: string;
  gw: StartedGateway;
  /** POST here (…/v1/agents/bench-agent/messages) with `token` */
  postUrl: string;
  token: string;
}

/** The gateway alone, with the API and an application token (the `intake` run posts into it with no agent). */
export async function startDownlinkGateway(spec: Omit<DownlinkRigSpec, 'window'>, o: RigOptions, cleanup: Cleanup): Promise<DownlinkGateway> {
  const dir = await tempDir('ferry-bench-downlink-', cleanup);
  // The registry is a file in the gateway's data dir: added before the gateway starts, it is there at its first request.
  const token = await addApp(join(dir, 'gateway'), 'bench');
  // A little over 100 bytes per message (target + data) as the queue counts them; 512 leaves room.
  const queue = Math.max(1000, spec.messages);
  const yaml = [
    'downlink:', `  queueMessagesMax: ${queue}`, `  queueBytesMax: ${Math.max(4 << 20, queue * 512)}`,
    ...(spec.mqttUrl ? ['  mqtt:', `    url: ${spec.mqttUrl}`, `    clientId: ferry-bench-${process.pid}-${Date.now()}`] : []),
  ];
  const gw = await startGateway(dir, { routes: fileRoute(join(dir, 'uplink.log')), http: spec.carrier === 'longpoll', api: true, yaml }, o, cleanup);
  return { dir, gw, token, postUrl: `${gw.apiUrl!}/v1/agents/${agentId}/messages` };
}

export async function startDownlinkRig(spec: DownlinkRigSpec, o: RigOptions, cleanup: Cleanup): Promise<DownlinkRig> {
  const g = await startDownlinkGateway(spec, o, cleanup);
  const agentYaml = [
    'downlink:', ...(spec.window !== undefined ? [`  messagesMax: ${spec.window}`, `  dedupIdsMax: ${Math.max(4096, spec.window)}`] : []),
    '  routes:', `    - match: "${downPattern}"`, '      to: local',
  ];
  const agent = await startAgent(g.dir, gatewayUrl(g.gw, spec.carrier), o, cleanup, agentYaml);
  return { ...g, agent, servers: [{ name: 'ferry gateway', pid: g.gw.proc.pid }, { name: 'ferry agent', pid: agent.proc.pid }] };
}

export type LocalSubscriberResult = Awaited<ReturnType<typeof subscriberResult<LocalSubscriberReport>>>;

/**
 * Starts clients/local-subscriber (pinned) on the agent's socket and resolves once the agent took
 * the subscription; `result` rejects if a message is missing, repeated or foreign, or an ack was refused.
 */
export async function startLocalSubscriber(socket: string, expected: number, opts: { cpus: string; cleanup: Cleanup; latency?: boolean; stallMs?: number }): Promise<{ proc: Proc; result: Promise<LocalSubscriberResult> }> {
  const args = [socket, downPattern, String(expected), opts.latency ? 'latency' : 'count', String(opts.stallMs ?? 30_000)];
  const proc = spawnProc('local subscriber', pinnedNode(opts.cpus, clientScript('local-subscriber'), args), { cleanup: opts.cleanup });
  await proc.waitFor(/^subscribed$/m);
  const result = subscriberResult<LocalSubscriberReport>(proc, `${socket} ${downPattern}`, expected).then((r) => {
    if (r.refused > 0) throw new Error(`the agent refused ${r.refused} of the subscriber's acks, e.g. ${r.refusedExamples[0]}`);
    return r;
  });
  result.catch(() => undefined);
  return { proc, result };
}
