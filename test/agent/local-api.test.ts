import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localLineBytesMax, localRequest, startLocalApi, type LocalApiHandlers } from '../../agent/local-api.js';
import { silentLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import type { PacketData } from '../../protocol/packet.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** A short socket path (Unix socket paths are limited to ~107 bytes), removed after the test. */
async function socketPath(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'agent.sock');
}

interface Fake extends LocalApiHandlers {
  sent: { target: string; data: PacketData }[];
}

function fakeHandlers(seqFrom = 41): Fake {
  const sent: Fake['sent'] = [];
  return {
    sent,
    send: async (target, data) => {
      sent.push({ target, data });
      return seqFrom + sent.length;
    },
    stats: () => ({ backlog: 3 }),
  };
}

async function start(t: Test, path: string, handlers: LocalApiHandlers, dataBytesMax = 1024): Promise<Server> {
  const server = await startLocalApi(path, handlers, { log: silentLog, dataBytesMax });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

/**
 * Writes `text` on a fresh connection and collects what the server sends until it closes, `lines`
 * lines arrived, or 10 s passed (a bound against hanging, reported as not closed by the server).
 */
function exchange(path: string, text: string, lines: number): Promise<{ lines: string[]; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    let done = false;
    const timer = setTimeout(() => finish(false), 10_000);
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      resolve({ lines: buf.split('\n').filter((l) => l !== ''), closedByServer });
    };
    c.setEncoding('utf8');
    c.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? finish(true) : reject(err)));
    c.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.split('\n').length - 1 >= lines) finish(false);
    });
    c.on('end', () => finish(true));
    c.on('connect', () => c.write(text));
  });
}

t.test('local-api - send returns the seq the handler gave and passes target and data on', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers(41);
  await start(t, path, h);
  t.same(await localRequest(path, { op: 'send', target: 'telemetry/temp', data: { t: 21.5 } }), { ok: true, seq: 42 });
  t.same(await localRequest(path, { op: 'send', target: 'x', data: 'text' }), { ok: true, seq: 43 });
  t.same(h.sent, [{ target: 'telemetry/temp', data: { t: 21.5 } }, { target: 'x', data: 'text' }]);
});

t.test('local-api - stats returns what the handler reports', async (t) => {
  const path = await socketPath(t);
  await start(t, path, fakeHandlers());
  t.same(await localRequest(path, { op: 'stats' }), { ok: true, stats: { backlog: 3 } });
});

t.test('local-api - bad requests get ok:false with LOCAL_REQUEST_INVALID and are not sent', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h);
  const requests = ['not json', '[1', '"a string"', 'null', '{"op":"delete"}', '{}', '{"op":"send","target":"t"}'];
  const { lines } = await exchange(path, requests.map((r) => `${r}\n`).join(''), requests.length);
  t.equal(lines.length, requests.length, 'one response per request line');
  for (const [i, line] of lines.entries()) t.match(JSON.parse(line), { ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID, message: String }, requests[i]!);
  t.match(JSON.parse(lines[4]!), { message: /unknown op "delete"/ });
  t.same(h.sent, [], 'the handler saw none of them');
});

t.test('local-api - a target over 255 bytes gives TARGET_INVALID; 255 bytes is fine', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h);
  t.match(await localRequest(path, { op: 'send', target: 'a'.repeat(256), data: 1 }), { ok: false, code: ErrorCode.TARGET_INVALID });
  t.match(await localRequest(path, { op: 'send', target: 'é'.repeat(128), data: 1 }), { ok: false, code: ErrorCode.TARGET_INVALID }, 'bytes are counted, not characters');
  t.match(await localRequest(path, { op: 'send', target: '', data: 1 }), { ok: false, code: ErrorCode.TARGET_INVALID });
  t.match(await localRequest(path, { op: 'send', target: 'a\nb', data: 1 }), { ok: false, code: ErrorCode.TARGET_INVALID }, 'control characters');
  t.same(h.sent, []);
  t.match(await localRequest(path, { op: 'send', target: 'a'.repeat(255), data: 1 }), { ok: true });
  t.equal(h.sent.length, 1);
});

t.test('local-api - data over dataBytesMax gives DATA_TOO_LARGE; at the limit is fine', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h, 100);
  // A JSON string of n characters is n + 2 bytes of JSON text.
  t.match(await localRequest(path, { op: 'send', target: 't', data: 'x'.repeat(99) }), { ok: false, code: ErrorCode.DATA_TOO_LARGE });
  t.same(h.sent, []);
  t.match(await localRequest(path, { op: 'send', target: 't', data: 'x'.repeat(98) }), { ok: true });
  t.equal(h.sent.length, 1);
});

t.test('local-api - a handler failure comes back as ok:false with its code', async (t) => {
  const path = await socketPath(t);
  await start(t, path, {
    send: async () => {
      throw new FerryError(ErrorCode.STORE_FULL, 'store is full');
    },
    stats: () => ({}),
  });
  t.same(await localRequest(path, { op: 'send', target: 't', data: 1 }), { ok: false, code: 'STORE_FULL', message: 'store is full' });
});

t.test('local-api - several requests on one connection are answered in request order', async (t) => {
  const path = await socketPath(t);
  let n = 0;
  await start(t, path, {
    // The first send resolves last.
    send: (target) => new Promise((resolve) => setTimeout(() => resolve(Number(target)), target === '1' ? 50 : 0)),
    stats: () => ({ n: ++n }),
  });
  const reqs = ['1', '2', '3'].map((target) => JSON.stringify({ op: 'send', target, data: null }));
  const { lines } = await exchange(path, `${reqs[0]}\n${reqs[1]}\n{"op":"stats"}\n${reqs[2]}\n`, 4);
  t.same(lines.map((l) => JSON.parse(l) as unknown), [{ ok: true, seq: 1 }, { ok: true, seq: 2 }, { ok: true, stats: { n: 1 } }, { ok: true, seq: 3 }]);
});

t.test('local-api - a line over localLineBytesMax closes the connection with an error response', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h, 4 * localLineBytesMax);
  // No newline: the server must not wait for the end of an unbounded line.
  const res = await exchange(path, 'x'.repeat(localLineBytesMax + 4096), 2);
  t.equal(res.lines.length, 1);
  t.match(JSON.parse(res.lines[0]!), { ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID, message: /longer than/ });
  t.equal(res.closedByServer, true, 'the server closed the connection');
  t.same(h.sent, []);
  t.same(await localRequest(path, { op: 'send', target: 't', data: 1 }), { ok: true, seq: 42 }, 'other connections are served');
});

t.test('local-api - a stale socket file left by a killed process is replaced', async (t) => {
  const path = await socketPath(t);
  // A process that listens on the path and is then SIGKILLed leaves the socket file behind.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => resolve());
    child.once('exit', () => reject(new Error('listener exited early')));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  t.ok(existsSync(path) && lstatSync(path).isSocket(), 'setup: a stale socket file is left');
  await t.rejects(localRequest(path, { op: 'stats' }), { code: ErrorCode.AGENT_UNREACHABLE }, 'setup: nobody answers on it');

  await start(t, path, fakeHandlers());
  t.same(await localRequest(path, { op: 'send', target: 't', data: 1 }), { ok: true, seq: 42 });
});

t.test('local-api - a socket with a live listener is not taken over', async (t) => {
  const path = await socketPath(t);
  await start(t, path, fakeHandlers(41));
  await t.rejects(startLocalApi(path, fakeHandlers(0), { log: silentLog, dataBytesMax: 1024 }), /already listening/);
  t.same(await localRequest(path, { op: 'send', target: 't', data: 1 }), { ok: true, seq: 42 }, 'the first server still answers');
});

t.test('local-api - localRequest to a missing socket throws AGENT_UNREACHABLE', async (t) => {
  const path = await socketPath(t);
  await t.rejects(localRequest(path, { op: 'stats' }), { name: 'FerryError', code: ErrorCode.AGENT_UNREACHABLE, message: new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) });
});

t.test('local-api - localRequest gives up with AGENT_UNREACHABLE when the agent does not answer', async (t) => {
  const path = await socketPath(t);
  await start(t, path, { send: () => new Promise<number>(() => undefined), stats: () => ({}) });
  await t.rejects(localRequest(path, { op: 'send', target: 't', data: 1 }, 100), { code: ErrorCode.AGENT_UNREACHABLE, message: /within 100 ms/ });
});

t.test('local-api - nothing after an over-long line on the same connection is executed', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h, 4 * localLineBytesMax);
  const res = await exchange(path, `${'x'.repeat(localLineBytesMax + 10)}\n{"op":"send","target":"after","data":1}\n`, 2);
  t.equal(res.lines.length, 1, 'one answer: the refusal');
  t.match(JSON.parse(res.lines[0]!), { ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID });
  t.same(h.sent, [], 'the request after the over-long line was not sent');
});

t.test('local-api - the line limit counts bytes, and holds when the newline is in the same chunk', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h, 4 * localLineBytesMax);
  const justOver = JSON.stringify({ op: 'send', target: 't', data: 'a'.repeat(localLineBytesMax) });
  const r1 = await exchange(path, `${justOver}\n`, 1);
  t.match(JSON.parse(r1.lines[0]!), { ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID }, 'a line just over the limit with its newline is refused');
  // 'é' is 2 bytes in UTF-8: 0.6 × limit characters are 1.2 × limit bytes.
  const wide = JSON.stringify({ op: 'send', target: 't', data: 'é'.repeat(Math.ceil(localLineBytesMax * 0.6)) });
  const r2 = await exchange(path, `${wide}\n`, 1);
  t.match(JSON.parse(r2.lines[0]!), { ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID }, 'multi-byte characters count as bytes');
  t.same(h.sent, [], 'neither was sent');
});

// Issue 9, case 10: the local API accepted data the gateway would refuse (40 levels deep), and
// the agent then stalled on it. It now applies the gateway's own rule (checkPacket, same defaults).
t.test('local-api - data nested deeper than 32 levels gives DATA_TOO_DEEP and is not sent; 32 levels are fine', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  await start(t, path, h);
  const deep = (n: number): string => `{"op":"send","target":"a/b","data":${'['.repeat(n)}${']'.repeat(n)}}\n`;
  const { lines } = await exchange(path, deep(40) + deep(33) + deep(32), 3);
  t.match(JSON.parse(lines[0]!), { ok: false, code: ErrorCode.DATA_TOO_DEEP, message: /maximum of 32 levels/ }, '40 levels, the issue\'s reproduction');
  t.match(JSON.parse(lines[1]!), { ok: false, code: ErrorCode.DATA_TOO_DEEP }, '33 levels');
  t.match(JSON.parse(lines[2]!), { ok: true }, '32 levels');
  t.equal(h.sent.length, 1, 'only the one within the limit reached the store');
});

t.test('local-api - dataDepthMax sets the depth limit', async (t) => {
  const path = await socketPath(t);
  const h = fakeHandlers();
  const server = await startLocalApi(path, h, { log: silentLog, dataBytesMax: 1024, dataDepthMax: 2 });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  t.match(await localRequest(path, { op: 'send', target: 't', data: { a: [1] } }), { ok: true });
  t.match(await localRequest(path, { op: 'send', target: 't', data: { a: [[1]] } }), { ok: false, code: ErrorCode.DATA_TOO_DEEP });
});
