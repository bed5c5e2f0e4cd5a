/**
 * `ferry listen` (cli/listen.ts), the built CLI as a user runs it, against the agent's real local
 * API with its real subscriber registry: a bad pattern, --count leaving later messages to other
 * subscribers, SIGTERM.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSubscribers } from '../../agent/downlink/local-subscribers.js';
import { startLocalApi } from '../../agent/local-api.js';
import { ferryBin } from '../../cli/proc.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { pollUntil } from '../helpers/wait.js';

async function api(t: Test): Promise<{ path: string; subs: LocalSubscribers }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-listen-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.sock');
  const subs = new LocalSubscribers({ clock: realClock, log: silentLog });
  const server = await startLocalApi(path, { send: async () => 1, stats: () => ({}), subscribers: subs }, { log: silentLog, dataBytesMax: 1024 });
  t.teardown(() => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.endClients();
    return closed;
  });
  return { path, subs };
}

function listen(args: string[]): { child: ReturnType<typeof spawn>; out: () => string; err: () => string; done: Promise<number | null> } {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [ferryBin, 'listen', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const done = new Promise<number | null>((r) => child.once('close', (code) => {
    clearTimeout(timer);
    r(code);
  }));
  return { child, out: () => out, err: () => err, done };
}

const msg = (id: string) => ({ id, target: 'cmd/a', data: { n: id }, ts: 5 });

t.test('listen - a bad pattern is refused by the agent: exit 1 with LOCAL_REQUEST_INVALID', async (t) => {
  const { path } = await api(t);
  const l = listen(['--socket', path, '--target', 'a/#/b']);
  t.equal(await l.done, 1);
  t.match(l.err(), /subscribe refused: invalid target pattern.*\[LOCAL_REQUEST_INVALID\]/);
});

t.test('listen - --count N: N messages printed and acked, then exit 0; a later one goes to the next subscriber', async (t) => {
  const { path, subs } = await api(t);
  const first = listen(['--socket', path, '--target', 'cmd/#', '--count', '1']);
  await pollUntil(() => subs.stats().subscriptions === 1, 10_000, 'the first subscriber');
  const second = listen(['--socket', path, '--target', '#']);
  await pollUntil(() => subs.stats().subscriptions === 2, 10_000, 'the second subscriber');
  const consumer = subs.consumer(10_000);
  t.same(await consumer.deliver(msg('m1')), { ok: true }, 'acked by the oldest subscription');
  t.equal(await first.done, 0);
  t.same(first.out(), '{"id":"m1","target":"cmd/a","data":{"n":"m1"},"ts":5}\n');
  t.same(await consumer.deliver(msg('m2')), { ok: true });
  t.same(second.out(), '{"id":"m2","target":"cmd/a","data":{"n":"m2"},"ts":5}\n', 'the next subscriber took the later one');
  second.child.kill('SIGTERM');
  t.equal(await second.done, 0, 'SIGTERM: exit 0');
  await pollUntil(() => subs.stats().subscriptions === 0, 10_000, 'both gone');
});

t.test('listen - an ack the agent no longer takes (the message timed out) is reported, and listening goes on', async (t) => {
  const { path, subs } = await api(t);
  const l = listen(['--socket', path, '--target', '#', '--count', '2']);
  await pollUntil(() => subs.stats().subscriptions === 1, 10_000, 'the subscriber');
  // The subscriber is stopped (SIGSTOP) while the message waits, so it cannot answer within the
  // time-out whatever the machine's load; once it runs again its ack comes late and is refused.
  l.child.kill('SIGSTOP');
  t.match(await subs.consumer(300).deliver(msg('late')), { ok: false, code: 'DOWNLINK_TIMEOUT' });
  l.child.kill('SIGCONT');
  await pollUntil(() => l.err().includes('did not take an ack'), 10_000, 'the refused ack to be reported');
  t.same(await subs.consumer(10_000).deliver(msg('next')), { ok: true });
  t.equal(await l.done, 0);
  t.equal(l.out().split('\n').filter((x) => x !== '').length, 2, 'two messages printed, nothing else');
  t.match(l.err(), /LOCAL_REQUEST_INVALID/);
});
