/**
 * Issue 10, case 7: the local API wrote replies whether or not the client read them; 23 MiB of
 * unread `stats` requests took an agent from 74 MiB to 2.3 GiB of RSS. Over a real Unix socket.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localRequest, startLocalApi, type LocalApiOptions, type LocalApiServer } from '../../agent/local-api.js';
import { createLog } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** A stats answer of about 1 KiB, as an agent's is. */
const bigStats = { backlog: 3, note: 'x'.repeat(1000) };
const statsLine = '{"op":"stats"}\n';

async function start(t: Test, opts: Partial<LocalApiOptions> = {}): Promise<{ server: LocalApiServer; path: string; calls: () => number; logLines: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bp-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.sock');
  let calls = 0;
  const logLines: string[] = [];
  const server = await startLocalApi(path, {
    send: async () => 1,
    stats: () => ({ n: ++calls, ...bigStats }),
  }, { log: createLog({ write: (l) => logLines.push(l) }), dataBytesMax: 1024, ...opts });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, path, calls: () => calls, logLines };
}

/** A client that writes `count` stats requests and reads nothing. */
function flood(t: Test, path: string, count: number): Socket {
  const c = createConnection(path);
  c.on('error', () => undefined);
  c.pause(); // never reads
  c.on('connect', () => c.write(statsLine.repeat(count)));
  t.teardown(() => c.destroy());
  return c;
}

/** Polls until `value()` stops changing for `quietMs` (or reaches `until`): the server has done what it will do. */
async function settled(value: () => number, until: number, quietMs = 500): Promise<number> {
  let last = -1;
  let sameSince = Date.now();
  for (;;) {
    const v = value();
    if (v >= until) return v;
    if (v !== last) {
      last = v;
      sameSince = Date.now();
    } else if (Date.now() - sameSince >= quietMs) {
      return v;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('local-api back-pressure - a client writing 20,000 stats requests and reading nothing gets a bounded number of answers queued; others are served', async (t) => {
  const { server, path, calls } = await start(t);
  const total = 20_000;
  const c = flood(t, path, total);
  const answered = await settled(calls, total);
  // On the old code every request was answered at once: 20,000 replies of 1 KiB queued for a reader that never reads.
  t.ok(answered < total / 4, `the server stopped answering the client that does not read (${answered} of ${total} answered)`);
  const peak = server.localStats().replyQueueBytesPeak;
  t.ok(peak <= 1024 * 1024, `reply bytes queued for it stayed bounded (peak ${peak})`);
  t.ok(c.writableLength > 0 || !c.writable, 'and its requests are no longer read: they wait in its own socket');
  t.match(await localRequest(path, { op: 'stats' }), { ok: true, stats: { backlog: 3 } }, 'another client is served meanwhile');
  t.equal(server.localStats().clientsEnded, 0, 'not ended before replyStallMs');
});

t.test('local-api back-pressure - a client that reads none of its replies for replyStallMs is ended with PEER_NOT_READING', async (t) => {
  const { server, path, logLines } = await start(t, { replyStallMs: 300 });
  const c = flood(t, path, 20_000);
  await new Promise<void>((resolve) => c.once('close', () => resolve()));
  t.equal(server.localStats().clientsEnded, 1);
  t.equal(await settled(() => -server.localStats().clients, 0), 0, 'and forgotten');
  t.ok(logLines.some((l) => l.includes('"code":"PEER_NOT_READING"') && l.includes('local-api: client ended')), 'logged with its code');
  t.match(await localRequest(path, { op: 'stats' }), { ok: true }, 'the API goes on');
});

t.test('local-api back-pressure - replies past replyQueueBytesMax end the client at once', async (t) => {
  // Many requests in flight at once can queue past the high mark before the reading stops: the hard bound catches it.
  const { server, path } = await start(t, { requestsInFlightMax: 100_000, replyQueueBytesMax: 256 * 1024, replyStallMs: 60_000 });
  const c = flood(t, path, 20_000);
  await new Promise<void>((resolve) => c.once('close', () => resolve()));
  t.equal(server.localStats().clientsEnded, 1);
  t.ok(server.localStats().replyQueueBytesPeak <= 256 * 1024 + 2048, `never more than the bound plus one reply (peak ${server.localStats().replyQueueBytesPeak})`);
});

t.test('local-api back-pressure - a client that reads slowly gets every answer, in order, and is not ended', async (t) => {
  const { server, path } = await start(t, { replyQueueBytesHigh: 16 * 1024, requestsInFlightMax: 4, replyStallMs: 5000 });
  const total = 3000;
  const c = createConnection(path);
  t.teardown(() => c.destroy());
  c.setEncoding('utf8');
  let buf = '';
  const lines = await new Promise<string[]>((resolve, reject) => {
    c.on('error', reject);
    c.on('connect', () => c.write(statsLine.repeat(total)));
    // Read in bursts with pauses, so the server's queue fills and drains many times.
    const readABit = (): void => {
      c.resume();
      setTimeout(() => {
        c.pause();
        if (buf.split('\n').length - 1 >= total) resolve(buf.split('\n').filter((l) => l !== ''));
        else setTimeout(readABit, 5);
      }, 5);
    };
    c.on('data', (chunk: string) => (buf += chunk));
    c.pause();
    readABit();
  });
  t.equal(lines.length, total);
  const ns = lines.map((l) => (JSON.parse(l) as { stats: { n: number } }).stats.n);
  t.ok(ns.every((n, i) => n === i + 1), 'in request order');
  t.equal(server.localStats().clientsEnded, 0);
  t.ok(server.localStats().replyQueueBytesPeak < 512 * 1024, `queue stayed near the high mark (peak ${server.localStats().replyQueueBytesPeak})`);
});

t.test('local-api back-pressure - the over-long line is still refused after what came before it', async (t) => {
  const { path, calls } = await start(t);
  const c = createConnection(path);
  t.teardown(() => c.destroy());
  c.setEncoding('utf8');
  let buf = '';
  c.on('data', (s: string) => (buf += s));
  c.on('connect', () => c.write(`${statsLine}${'x'.repeat(300 * 1024)}\n${statsLine}`));
  await new Promise<void>((resolve) => c.once('close', () => resolve()));
  const lines = buf.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { ok: boolean; code?: string });
  t.same(lines.map((l) => (l.ok ? 'ok' : l.code)), ['ok', ErrorCode.LOCAL_REQUEST_INVALID]);
  t.equal(calls(), 1, 'nothing after the over-long line ran');
});
