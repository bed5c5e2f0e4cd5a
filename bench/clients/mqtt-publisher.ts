/**
 * Peer for the ferry benchmark: mqtt.js 5 publishing QoS 1 to a broker with WINDOW publishes
 * outstanding; a publish is done when its PUBACK arrives. usage: mqtt-publisher URL PACKETS WINDOW TOPIC
 */
import { connectAsync } from 'mqtt';
import { fail, intArg, payload, report, startCpu } from './common.js';

const [url, packetsArg, windowArg, topic] = process.argv.slice(2);
if (url === undefined || topic === undefined) fail('usage: mqtt-publisher URL PACKETS WINDOW TOPIC');
const packets = intArg(packetsArg, 'PACKETS');
const window = intArg(windowArg, 'WINDOW');

const client = await connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
let sent = 0;
let acked = 0;
startCpu();
const firstSendNs = process.hrtime.bigint();
await new Promise<void>((resolve, reject) => {
  const topUp = (): void => {
    while (sent < packets && sent - acked < window) {
      client.publishAsync(topic, Buffer.from(payload(sent++)), { qos: 1 }).then(() => {
        acked++;
        if (acked === packets) resolve();
        else topUp();
      }, reject);
    }
  };
  topUp();
}).catch((err: Error) => fail(`publish failed after ${acked} PUBACKs: ${err.message}`));
report({ firstSendNs, lastAckNs: process.hrtime.bigint(), acked });
await client.endAsync();
