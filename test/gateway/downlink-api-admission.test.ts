/**
 * Security review (issue 10 case 6 on a new surface): the application API on `listen.api` has no
 * admission. Every other listener counts sockets per address at accept (the tunnel:
 * `connectionsPerAddressMax`, 64; long-poll: `socketsPerAddressMax`, 256) and in all
 * (`connectionsMax`), but listenApi (gateway/downlink/api.ts) sets neither a per-address bound nor
 * `maxConnections`: a stranger with no token opens as many silent sockets as it likes from one
 * address, each holding a file descriptor and memory of the gateway process that the tunnel
 * listeners share. This test holds 600 silent sockets from 127.0.0.1 and expects the API to have
 * closed all but a bounded share of them (at most 256, the long-poll listener's per-address default).
 */
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { listenApi } from '../../gateway/downlink/api.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { createLog } from '../../common/log.js';
import { realClock } from '../../common/clock.js';
import { MemoryDownlink } from '../helpers/memory-downlink.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('api - one address without a token cannot hold unbounded silent sockets on listen.api', async (t) => {
  const log = createLog({ write: () => undefined });
  const summary = new LogSummary({ log, clock: realClock, intervalMs: 60_000 });
  const api = await listenApi({
    listen: '127.0.0.1:0', queues: new MemoryDownlink(), log, summary,
    apps: { byToken: () => undefined },
    agentKnown: () => true,
    // the gateway's defaults (gateway/config.ts limits.api)
    limits: { bodyBytesMax: 256 * 1024, requestTimeoutMs: 10_000, requestsInFlightMax: 1000, messageBytesMax: 64 * 1024, dataDepthMax: 32 },
  });
  const sockets: Socket[] = [];
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await api.close(100);
    summary.close();
  });
  let open = 0;
  const n = 600;
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve) => {
    const s = connect(api.port, '127.0.0.1');
    sockets.push(s);
    s.on('error', () => undefined);
    s.once('connect', () => {
      open++;
      resolve();
    });
    s.once('close', () => {
      resolve();
    });
  })));
  for (const s of sockets) s.once('close', () => open--);
  // Long enough for a refusal at accept to arrive; well within node's headersTimeout.
  await sleep(1500);
  const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  t.ok(stillOpen <= 256, `one address holds ${stillOpen} of ${n} silent sockets on the API (expected at most 256)`);
});
