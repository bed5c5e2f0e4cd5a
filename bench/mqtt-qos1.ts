/**
 * Peer of the ferry benchmark: mqtt.js 5 publishing QoS 1 directly to a private mosquitto, the
 * same 100-byte payloads and the same window of outstanding publishes, timed from the first
 * publish until the last PUBACK. mosquitto runs under the same CPU list as ferry (pinned after
 * start). Its PUBACK does not mean on disk: this config has `persistence false`, and even with
 * persistence on mosquitto only snapshots every `autosave_interval`.
 */
import { startMosquitto } from '../test/helpers/mosquitto.js';
import type { Cleanup } from './lib/cleanup.js';
import { runClient } from './lib/client.js';
import type { BenchOptions } from './lib/options.js';
import { placement, type Measured } from './lib/measured.js';
import { cpuMeter } from './lib/cpu.js';
import { pinPid } from './lib/proc.js';
import { countSyncs } from './lib/syncs.js';
import { secondsBetween } from './lib/timing.js';

export interface MqttQos1Result extends Measured {
  /** first publish → last PUBACK */
  seconds: number;
}

export async function benchMqttQos1(o: BenchOptions, cleanup: Cleanup): Promise<MqttQos1Result> {
  const broker = await startMosquitto();
  cleanup.defer(`stop mosquitto (pid ${broker.pid})`, () => broker.stop());
  await pinPid(broker.pid, o.cpus);
  const servers = await placement([{ name: 'mosquitto', pid: broker.pid }]);
  const counter = o.countSyncs ? await countSyncs('mosquitto', broker.pid, cleanup) : null;
  const cpu = await cpuMeter([{ name: 'mosquitto', pid: broker.pid }]);
  const publisher = runClient('mqtt-publisher', [broker.url, String(o.packets), String(o.window), 'bench/packets'], { cpus: o.cpus, cleanup });
  const r = await publisher.result;
  const brokerCpu = await cpu.stop();
  const syncs = counter ? { mosquitto: await counter.stop() } : null;
  await broker.stop();
  if (r.acked !== o.packets) throw new Error(`mqtt-publisher: ${r.acked} of ${o.packets} PUBACKs`);
  return { packets: o.packets, seconds: secondsBetween(r.firstSendNs, r.lastAckNs), placement: [...servers, { name: 'mqtt.js publisher', pid: publisher.proc.pid, cpus: r.cpus }], cpu: { ...brokerCpu, 'mqtt.js publisher': r.cpuSeconds }, syncs };
}
