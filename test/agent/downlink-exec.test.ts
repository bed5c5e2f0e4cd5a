/**
 * The `exec` downlink consumer (agent/downlink/exec-consumer.ts) with real /bin/sh scripts:
 * stdin and environment, exit codes, the stderr tail, signals, the time-out kill, a missing program.
 */
import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecConsumer, stderrTailBytesMax } from '../../agent/downlink/exec-consumer.js';
import type { DownlinkMessage } from '../../agent/downlink/consumer.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import type { PacketData } from '../../protocol/packet.js';
import { pollUntil } from '../helpers/wait.js';

const deps = { clock: realClock, log: silentLog };
const msg = (data: PacketData, id = 'm-1', target = 'cmd/run'): DownlinkMessage => ({ id, target, data, ts: 1_700_000_000_000 });
const sh = (script: string, timeoutMs = 10_000): ExecConsumer => new ExecConsumer(['/bin/sh', '-c', script], timeoutMs, deps);

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-exec-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('exec - exit 0 accepts; the data is on stdin and the ID and target in the environment', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'out');
  const c = sh(`cat > ${out}.stdin; printf '%s|%s' "$FERRY_MESSAGE_ID" "$FERRY_TARGET" > ${out}.env`);
  t.same(await c.deliver(msg('interval=200', 'abc-1', 'cfg/interval')), { ok: true });
  t.equal(await readFile(`${out}.stdin`, 'utf8'), 'interval=200', 'a string as it is, no newline added');
  t.equal(await readFile(`${out}.env`, 'utf8'), 'abc-1|cfg/interval');
  t.same(await c.deliver(msg({ interval: 200, on: [true, null] })), { ok: true });
  t.equal(await readFile(`${out}.stdin`, 'utf8'), '{"interval":200,"on":[true,null]}', 'a JSON value as its JSON text');
  t.same(await c.deliver(msg(new Uint8Array([0, 255, 10, 13, 65]))), { ok: true });
  t.same([...(await readFile(`${out}.stdin`))], [0, 255, 10, 13, 65], 'bytes as they are');
});

t.test('exec - a non-zero exit refuses with the code and the stderr tail', async (t) => {
  const r = await sh('echo "bad interval" >&2; exit 3').deliver(msg('x'));
  t.match(r, { ok: false, code: 'DOWNLINK_EXEC_FAILED' });
  t.match((r as { reason: string }).reason, /exited with code 3; stderr: bad interval$/);
});

t.test('exec - only the last 512 bytes of a long stderr are kept', async (t) => {
  // ~200 KB of stderr in many writes, ending in a marker.
  const r = await sh(`i=0; while [ $i -lt 4000 ]; do echo "line $i: some noise to fill stderr" >&2; i=$((i+1)); done; printf 'THE-END' >&2; exit 1`).deliver(msg('x'));
  t.match(r, { ok: false, code: 'DOWNLINK_EXEC_FAILED' });
  const reason = (r as { reason: string }).reason;
  const stderr = reason.slice(reason.indexOf('stderr: ') + 'stderr: '.length);
  t.ok(stderr.endsWith('THE-END'), 'the tail ends where stderr ended');
  t.ok(Buffer.byteLength(stderr) <= stderrTailBytesMax, `at most ${stderrTailBytesMax} bytes (${Buffer.byteLength(stderr)})`);
  t.ok(Buffer.byteLength(stderr) > stderrTailBytesMax - 64, 'and nearly all of them');
  t.notOk(stderr.includes('line 0:'), 'the beginning is gone');
});

t.test('exec - a command killed by a signal refuses with the signal', async (t) => {
  const r = await sh('kill -TERM $$').deliver(msg('x'));
  t.match(r, { ok: false, code: 'DOWNLINK_EXEC_FAILED', reason: /was killed by SIGTERM/ });
});

t.test('exec - past the time-out the command and what it started are killed: DOWNLINK_TIMEOUT', async (t) => {
  const dir = await tempDir(t);
  const pids = join(dir, 'pids');
  const c = sh(`sleep 300 & echo $$ $! > ${pids}; wait`, 300);
  const r = await c.deliver(msg('x'));
  t.match(r, { ok: false, code: 'DOWNLINK_TIMEOUT', reason: /did not finish within 300 ms/ });
  const [shell, child] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number) as [number, number];
  await pollUntil(() => !alive(shell) && !alive(child), 5000, 'the shell and its sleep to be gone');
  t.pass('both killed');
});

t.test('exec - a command that exits 0 while a child it started holds stderr open is still accepted', async (t) => {
  const c = sh('sleep 300 >&2 & exit 0', 500);
  t.same(await c.deliver(msg('x')), { ok: true }, 'its own exit decides, at the latest at the time-out');
});

t.test('exec - a missing program refuses with DOWNLINK_EXEC_FAILED (ENOENT); not executable: EACCES', async (t) => {
  const r = await new ExecConsumer(['/nonexistent/ferry-cmd', 'a'], 5000, deps).deliver(msg('x'));
  t.match(r, { ok: false, code: 'DOWNLINK_EXEC_FAILED', reason: /cannot start \/nonexistent\/ferry-cmd: ENOENT/ });
  const dir = await tempDir(t);
  await writeFile(join(dir, 'noexec'), '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  const r2 = await new ExecConsumer([join(dir, 'noexec')], 5000, deps).deliver(msg('x'));
  t.match(r2, { ok: false, code: 'DOWNLINK_EXEC_FAILED', reason: /EACCES/ });
});

t.test('exec - a command that does not read its stdin is judged by its exit, not by the broken pipe', async (t) => {
  const big = 'x'.repeat(4 * 1024 * 1024);
  t.same(await sh('exit 0').deliver(msg(big)), { ok: true });
  t.match(await sh('exit 4').deliver(msg(big)), { ok: false, code: 'DOWNLINK_EXEC_FAILED', reason: /code 4/ });
});

t.test('exec - arguments are passed without a shell', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'args');
  const c = new ExecConsumer(['/bin/sh', '-c', 'printf "%s\\n" "$@" > "$0"', out, 'a b', '$HOME', ';rm -rf /'], 5000, deps);
  t.same(await c.deliver(msg('x')), { ok: true });
  t.equal(await readFile(out, 'utf8'), 'a b\n$HOME\n;rm -rf /\n', 'each argument arrives as it is');
});

t.test('exec - close kills commands still running', async (t) => {
  const c = sh('sleep 300', 60_000);
  const r = c.deliver(msg('x'));
  await c.close();
  t.match(await r, { ok: false, code: 'DOWNLINK_EXEC_FAILED', reason: /killed by SIGKILL/ });
});

t.test('exec - a background child of a command that exited 0 does not outlive the verdict (found in review)', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'pid');
  let child = 0;
  t.teardown(() => {
    if (child > 0 && alive(child)) process.kill(child, 'SIGKILL');
  });
  const c = sh(`sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}; exit 0`, 1000);
  t.same(await c.deliver(msg('x')), { ok: true });
  child = Number((await readFile(pidFile, 'utf8')).trim());
  await pollUntil(() => !alive(child), 3000, 'the background sleep to be gone');
  t.notOk(alive(child), 'its process group went with it');
});
