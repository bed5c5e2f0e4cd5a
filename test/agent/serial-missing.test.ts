/**
 * SerialSource on a device path that does not exist yet (issue 13, "Missing serial device"): the
 * opens it tries grow apart (exponential back-off up to reopenDelayMsMax), the log says so once
 * and then in summaries bounded by time, and once the device appears (a real socat pseudo-terminal
 * pair) readings flow and the log says the cause cleared.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { SerialSource } from '../../agent/sources/serial-source.js';
import type { Reading } from '../../agent/sources/line-parser.js';
import { realClock, type Clock } from '../../common/clock.js';
import { createLog } from '../../common/log.js';
import { StuckLog } from '../../common/stuck-log.js';
import { openPtyPair } from '../../firmware-sim/index.js';
import { until } from '../helpers/wait.js';

interface Line { level: string; msg: string; code?: string; delayMs?: number; total?: number; error?: string }

t.test('serial missing - opens back off, the log is bounded, and readings flow once the device appears', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-serial-missing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'tty', 'ttyUSB0');
  const raw: string[] = [];
  const log = createLog({ write: (l) => raw.push(l), format: 'json' });
  const lines = (): Line[] => raw.map((l) => JSON.parse(l) as Line);
  // The reopen waits the source asks for, in order (the stuck log's own timers are left out).
  const waits: number[] = [];
  const clock: Clock = { ...realClock, setTimeout: (fn, ms) => (waits.push(ms), realClock.setTimeout(fn, ms)) };
  const summaryIntervalMs = 1000;
  const stuck = new StuckLog({ log, clock: realClock, summaryIntervalMs });
  const readings: Reading[] = [];
  const source = new SerialSource(
    { path, baudRate: 115200, format: 'kv', reopenDelayMs: 100, reopenDelayMsMax: 800 },
    {
      clock, log, stuck, rng: () => 0.5, onReading: (r) => readings.push(r),
    },
  );
  t.teardown(() => source.stop());
  const startedMs = Date.now();
  source.start();
  // 75 + 150 + 300 + 600 + 600 + 600 ms: six failed opens in about 2.3 s.
  await until(() => waits.length >= 6, 'six failed opens', 10_000);
  const elapsedMs = Date.now() - startedMs;
  t.same(waits.slice(0, 6), [75, 150, 300, 600, 600, 600], 'each wait doubles (half fixed, half jitter) up to the cap');
  const failed = lines().filter((l) => l.code === 'SERIAL_DEVICE_UNAVAILABLE');
  t.equal(failed[0]?.level, 'warn', 'the first line is a warning');
  t.equal(failed[0]?.msg, 'serial: device unavailable; will reopen');
  t.match(failed[0]?.error, /No such file|ENOENT|cannot open/i, 'it says why');
  t.ok(failed.length <= 1 + Math.ceil(elapsedMs / summaryIntervalMs), `lines bounded by time: ${failed.length} for ${waits.length} failed opens in ${elapsedMs} ms`);
  t.ok(failed.length < waits.length, 'fewer lines than failed opens');

  const pair = await openPtyPair(path);
  t.teardown(() => pair.close());
  await until(() => source.isOpen, 'the device to be opened', 5000);
  const sim = new SerialPort({ path: pair.simPath, baudRate: 115200, autoOpen: false });
  await new Promise<void>((resolve, reject) => sim.open((err) => (err ? reject(err) : resolve())));
  t.teardown(() => new Promise<void>((resolve) => sim.close(() => resolve())));
  sim.write('t=21.5 h=40\n');
  await until(() => readings.length > 0, 'a reading', 5000);
  t.same(readings[0], { t: 21.5, h: 40 }, 'the reading flows');
  const cleared = lines().find((l) => l.msg === 'serial: device unavailable; will reopen (cleared)');
  t.equal(cleared?.level, 'info', 'the cause cleared, at info');
  t.ok((cleared?.total ?? 0) >= 6, 'with the count of failed opens');
  stuck.close();
});
