/**
 * Throughput load for the downlink benchmark: POSTs MESSAGES downlink messages to the gateway's
 * application API as fast as it answers, CONCURRENCY requests in progress at once, over a
 * keep-alive http.Agent with one socket per request in progress. Each body is
 * `{"target":TARGET,"data":"p000000042-xxx…"}` (100-character data, the index read by the
 * consumer); the token is $FERRY_BENCH_TOKEN. A request is done on its 201 (the message is
 * durable at the gateway); any other answer fails the run (the benchmark sizes the gateway's
 * queue to hold every message, so QUEUE_FULL means it did not).
 * usage: api-poster URL MESSAGES CONCURRENCY TARGET
 */
import { apiPoster, fail, intArg, payload, report, startCpu } from './common.js';

const [dest, messagesArg, concurrencyArg, target] = process.argv.slice(2);
if (dest === undefined || target === undefined) fail('usage: api-poster URL MESSAGES CONCURRENCY TARGET');
const messages = intArg(messagesArg, 'MESSAGES');
const concurrency = intArg(concurrencyArg, 'CONCURRENCY');
const token = process.env.FERRY_BENCH_TOKEN;
if (!token) fail('needs FERRY_BENCH_TOKEN (an application token)');

const api = apiPoster(dest, token, concurrency);
const targetJson = JSON.stringify(target);

function post(i: number): Promise<void> {
  return api.post(`message ${i}`, `{"target":${targetJson},"data":"${payload(i)}"}`);
}

let next = 0;
let acked = 0;
startCpu();
const firstSendNs = process.hrtime.bigint();
const worker = async (): Promise<void> => {
  while (next < messages) {
    await post(next++);
    acked++;
  }
};
await Promise.all(Array.from({ length: Math.min(concurrency, messages) }, worker)).catch((err: Error) => fail(`after ${acked} answers: ${err.message}`));
report({ firstSendNs, lastAckNs: process.hrtime.bigint(), acked });
api.close();
