/**
 * exec downlink consumer: a command that exits in time must not leave what it started in the
 * background running (its stdio closed): else every message could leave one more process behind
 * (found in review, issue 12). Its process group goes with it.
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecConsumer } from '../../agent/downlink/exec-consumer.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { pollUntil } from '../helpers/wait.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('exec consumer - a background child of a command that exited 0 does not outlive the verdict', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-review-exec-'));
  const pidFile = join(dir, 'pid');
  let child = 0;
  t.teardown(async () => {
    if (child > 0 && alive(child)) process.kill(child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const c = new ExecConsumer(['/bin/sh', '-c', `sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}; exit 0`], 1000, { clock: realClock, log: silentLog });
  t.same(await c.deliver({ id: 'm-1', target: 'cmd/run', data: 'x', ts: 1 }), { ok: true });
  child = Number((await readFile(pidFile, 'utf8')).trim());
  await pollUntil(() => !alive(child), 3000, 'the background sleep to be gone')
    .then(() => t.pass('gone'), (err: Error) => t.fail(err.message));
});
