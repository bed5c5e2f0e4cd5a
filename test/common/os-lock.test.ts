import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { osLock, osLockWaiting } from '../../common/os-lock.js';

// The child runs the built module (npx tsc -p tsconfig.json first, as for the integration tests).
const built = fileURLToPath(new URL('../../dist/common/os-lock.js', import.meta.url));

async function refusal(t: Test, path: string): Promise<NodeJS.ErrnoException> {
  const err = await osLock(path).then(async (l) => {
    await l.release();
    return null;
  }, (e: NodeJS.ErrnoException) => e);
  t.ok(err, `a lock on ${path} is refused`);
  return err ?? new Error('not refused');
}

/** A separate process that takes the lock and holds it until it is killed. */
async function holder(t: Test, path: string): Promise<ChildProcess> {
  const script = `import { osLock } from ${JSON.stringify(built)};\nawait osLock(${JSON.stringify(path)});\nprocess.stdout.write('locked\\n');\nsetInterval(() => undefined, 60_000);\n`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('locked\n')) ok();
    });
    child.once('exit', (code) => fail(new Error(`holder exited (${code}) before locking: ${out}`)));
  });
  return child;
}

t.test('os-lock - a second lock in the same process is refused with ELOCKED; release then re-lock works', async (t) => {
  const path = join(t.testdir(), 'LOCK');
  const first = await osLock(path);
  t.equal((await readFile(path, 'utf8')).trim(), String(process.pid), 'the lock file names the holder');
  const err = await refusal(t, path);
  t.equal(err.code, 'ELOCKED');
  t.match(err.message, path, 'the message names the path');
  t.match(err.message, /this process/, 'and who holds it');
  await first.release();
  await first.release(); // a second release is a no-op
  const again = await osLock(path);
  t.pass('locked again after release');
  await again.release();
});

t.test('os-lock - another live process holding the lock refuses it; after SIGKILL it is free at once', async (t) => {
  const path = join(t.testdir(), 'LOCK');
  const child = await holder(t, path);
  const err = await refusal(t, path);
  t.equal(err.code, 'ELOCKED');
  t.match(err.message, `pid ${child.pid}`, 'the message names the holder from the lock file');
  const exited = new Promise((ok) => child.once('exit', ok));
  child.kill('SIGKILL');
  await exited;
  // The first attempt after the exit succeeds: no stale-lock time-out, no retry.
  const lock = await osLock(path);
  t.equal((await readFile(path, 'utf8')).trim(), String(process.pid), 'the new holder wrote its PID over the dead one');
  await lock.release();
});

t.test('os-lock - a lock file naming a live, unrelated PID (a PID reused after a reboot) does not block', async (t) => {
  const dir = t.testdir();
  for (const pid of [1, process.ppid]) {
    await mkdir(join(dir, `pid-${pid}`));
    const path = join(dir, `pid-${pid}`, 'LOCK');
    await writeFile(path, `${pid}\n`);
    const lock = await osLock(path);
    t.pass(`a lock file naming pid ${pid} (alive) is taken over`);
    await lock.release();
  }
});

t.test('os-lock - the same directory through a symlinked path collides; other directories and names do not', async (t) => {
  const dir = t.testdir();
  await mkdir(join(dir, 'real'));
  await mkdir(join(dir, 'other'));
  await symlink(join(dir, 'real'), join(dir, 'link'));
  await symlink(join(dir, 'link'), join(dir, 'link-to-link'));
  const lock = await osLock(join(dir, 'real', 'LOCK'));
  t.equal((await refusal(t, join(dir, 'link', 'LOCK'))).code, 'ELOCKED', 'through the symlink');
  t.equal((await refusal(t, join(dir, 'link-to-link', 'LOCK'))).code, 'ELOCKED', 'through a chain of symlinks');
  const other = await osLock(join(dir, 'other', 'LOCK'));
  const otherName = await osLock(join(dir, 'real', 'LOCK2'));
  t.pass('another directory, and another name in the same directory, lock independently');
  await Promise.all([lock.release(), other.release(), otherName.release()]);
});

t.test('os-lock - a held lock does not keep the process alive', async (t) => {
  const path = join(t.testdir(), 'LOCK');
  const script = `import { osLock } from ${JSON.stringify(built)};\nawait osLock(${JSON.stringify(path)});\nprocess.stdout.write('locked\\n');\n`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  // A lock that kept the process alive would hold it past its script's end: kill it after 10 s.
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await new Promise((ok) => child.once('exit', ok));
  clearTimeout(timer);
  t.equal(out, 'locked\n');
  t.equal(code, 0, 'the holder exited by itself once its script ended');
});

t.test('os-lock - the directory must exist', async (t) => {
  const err = await osLock(join(t.testdir(), 'missing', 'LOCK')).then(() => null, (e: NodeJS.ErrnoException) => e);
  t.equal(err?.code, 'ENOENT');
});

t.test('os-lock - osLockWaiting waits for a holder to let go, and past waitMsMax rejects with ELOCKED', async (t) => {
  const path = join(t.testdir(), 'agents.lock');
  const held = await osLock(path);
  const waiting = osLockWaiting(path, { waitMsMax: 5000, retryMs: 10 });
  setTimeout(() => void held.release(), 100);
  const got = await waiting;
  t.pass('taken once the holder released it');
  const err = await osLockWaiting(path, { waitMsMax: 150, retryMs: 10 }).then(() => null, (e: NodeJS.ErrnoException) => e);
  t.equal(err?.code, 'ELOCKED', 'a lock still held past the bound is refused');
  await got.release();
  const missing = await osLockWaiting(join(t.testdir(), 'no-such-dir', 'x.lock'), { waitMsMax: 5000 }).then(() => null, (e: NodeJS.ErrnoException) => e);
  t.equal(missing?.code, 'ENOENT', 'other errors reject at once');
});
