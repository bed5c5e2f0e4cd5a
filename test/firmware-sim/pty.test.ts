import { lstat, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ReadlineParser, SerialPort } from 'serialport';
import { openPtyPair, runSim, SimError, SimErrorCode, simConfigSchema, simLinkFor, type SimHandle } from '../../firmware-sim/index.js';

const READING = /^t=-?\d+\.\d{2}$/;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sim-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens the device side like the agent does and collects lines until `count` or a deadline. */
async function readLines(path: string, count: number, msMax = 10_000): Promise<{ lines: string[]; port: SerialPort }> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const parser = port.pipe(new ReadlineParser({ delimiter: '\n' }));
  const lines: string[] = [];
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, msMax);
    parser.on('data', (line: string) => {
      lines.push(line);
      if (lines.length >= count) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { lines, port };
}

function closePort(port: SerialPort): Promise<void> {
  return new Promise((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve()));
}

/** All lines are readings, except perhaps the first (the device may be opened mid-line). */
function checkReadings(t: Test, lines: string[], min: number, what: string): void {
  const good = lines.filter((line) => READING.test(line));
  t.ok(good.length >= min, `${what}: ${good.length} readings (want >= ${min})`);
  t.same(lines.slice(1).filter((line) => !READING.test(line)), [], `${what}: every whole line is a reading`);
}

async function startSim(t: Test, config: Record<string, unknown>, pendingBytesMax?: number): Promise<{ sim: SimHandle; logs: string[] }> {
  const logs: string[] = [];
  const ready: string[] = [];
  const sim = await runSim(simConfigSchema.parse(config), {
    log: (line) => logs.push(line),
    onReady: (path) => ready.push(path),
    ...(pendingBytesMax === undefined ? {} : { pendingBytesMax }),
  });
  t.teardown(() => sim.stop());
  t.same(ready, [sim.devicePath], 'onReady is called with the device path');
  return { sim, logs };
}

t.test('sim - readings arrive as text lines on the device side, across a reopen', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'dev', 'ttyFERRY0');
  const { sim } = await startSim(t, { link, rateHz: 200 });
  t.equal(sim.devicePath, link);

  const first = await readLines(sim.devicePath, 60);
  t.teardown(() => closePort(first.port));
  checkReadings(t, first.lines, 50, 'first open');
  await closePort(first.port);

  await sleep(300); // the sim keeps writing while nobody has the device open
  t.ok(alive(sim.socatPid), 'socat survives the device side being closed');

  const second = await readLines(sim.devicePath, 60);
  t.teardown(() => closePort(second.port));
  checkReadings(t, second.lines, 50, 'after reopen');
  await closePort(second.port);
  t.ok(sim.readings() >= 120, `readings counted (${sim.readings()})`);

  const pid = sim.socatPid;
  await sim.stop();
  t.notOk(alive(pid), 'socat is gone after stop');
  t.notOk(await exists(link), 'device link removed');
  t.notOk(await exists(simLinkFor(link)), 'sim link removed');
  await sim.closed;
  await sim.stop(); // idempotent
});

t.test('sim - obeys interval= sent by the agent on the serial line and answers each command', async (t) => {
  const dir = await tempDir(t);
  const { sim, logs } = await startSim(t, { link: join(dir, 'tty0'), rateHz: 20 });
  const port = new SerialPort({ path: sim.devicePath, baudRate: 115200, autoOpen: false });
  t.teardown(() => closePort(port));
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const answers: string[] = [];
  port.pipe(new ReadlineParser({ delimiter: '\n' })).on('data', (line: string) => {
    if (/^(ok|err)\b/.test(line)) answers.push(line);
  });
  port.write('nonsense\ninterval=2\n');
  for (let i = 0; i < 500 && answers.length < 2; i++) await sleep(20);
  t.same(answers, ['err unknown command: nonsense', 'ok interval=2'], 'each command answered on a line of its own, in order');
  t.ok(logs.some((l) => l.includes('ok interval=2 (now 500 Hz)')), 'the interval command took effect');
});

t.test('sim - with nobody reading, readings beyond the pending bound are dropped, not queued', async (t) => {
  const dir = await tempDir(t);
  const { sim } = await startSim(t, { link: join(dir, 'tty0'), rateHz: 10_000 });
  // ~100 KB/s into a pty nobody reads fills the kernel buffers within a few seconds.
  const t0 = Date.now();
  for (let i = 0; i < 500 && sim.dropped() === 0; i++) await sleep(20);
  t.comment(`first drop after ${Date.now() - t0} ms`);
  t.ok(sim.dropped() > 0, `readings dropped (${sim.dropped()} of ${sim.readings()})`);
  t.ok(alive(sim.socatPid), 'still running');
  const { lines, port } = await readLines(sim.devicePath, 200);
  t.teardown(() => closePort(port));
  t.ok(lines.filter((line) => READING.test(line)).length >= 100, 'a reader that comes later still gets readings');
});

t.test('pty - stale links are replaced; a non-link file is refused', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'tty0');
  await symlink('/nonexistent/pts/99', link);
  await symlink('/nonexistent/pts/98', simLinkFor(link));
  const pair = await openPtyPair(link);
  t.teardown(() => pair.close());
  t.ok((await lstat(pair.devicePath)).isSymbolicLink());
  t.ok((await lstat(pair.simPath)).isSymbolicLink());
  await pair.close();
  t.notOk(alive(pair.pid), 'socat killed by close');

  const file = join(dir, 'plain');
  await writeFile(file, 'keep me');
  await t.rejects(openPtyPair(file), { code: SimErrorCode.LINK_INVALID });
  t.ok(await exists(file), 'the file is left alone');
});

t.test('pty - a missing socat gives a clear error naming the Debian package', async (t) => {
  const dir = await tempDir(t);
  const err = await openPtyPair(join(dir, 'tty0'), { socat: join(dir, 'no-such-socat') }).catch((e: unknown) => e);
  t.ok(err instanceof SimError, 'a SimError');
  t.equal((err as SimError).code, SimErrorCode.SOCAT_MISSING);
  t.match((err as SimError).message, /install the Debian package socat/);
});

t.test('pty - socat failing to start reports its own message', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'tty0');
  // A stand-in that exits at once with a message, as socat does on a bad address.
  const fake = join(dir, 'socat');
  await writeFile(fake, '#!/bin/sh\necho "E bad address" >&2\nexit 1\n', { mode: 0o755 });
  await t.rejects(openPtyPair(link, { socat: fake }), { code: SimErrorCode.PTY_FAILED, message: /socat exited \(code 1\).*E bad address/s });
  t.notOk(await exists(link), 'no link left behind');
});

t.test('sim - stops by itself after durationMs, and when socat dies', async (t) => {
  const dir = await tempDir(t);
  const timed = await startSim(t, { link: join(dir, 'a'), rateHz: 100, durationMs: 200 });
  await timed.sim.closed;
  t.notOk(alive(timed.sim.socatPid), 'socat gone after durationMs');
  t.notOk(await exists(join(dir, 'a')), 'link removed after durationMs');
  const readings = timed.sim.readings();
  t.ok(readings >= 1, `readings before the end (${readings})`);
  await sleep(100);
  t.equal(timed.sim.readings(), readings, 'no readings after the end');

  const killed = await startSim(t, { link: join(dir, 'b'), rateHz: 100 });
  process.kill(killed.sim.socatPid, 'SIGKILL');
  await killed.sim.closed;
  t.ok(killed.logs.some((l) => l.includes('socat exited unexpectedly')), 'logged');
  t.notOk(await exists(join(dir, 'b')), 'link removed after socat died');
});
