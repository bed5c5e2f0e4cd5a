import t from 'tap';
import { FirmwareSim, simConfigSchema, type SimIo } from '../../firmware-sim/index.js';

/** Simulated clock and interval timers: `advance(ms)` runs due timers in order, 1 ms at a time. */
function fakeIo(): SimIo & { lines: string[]; logs: string[]; advance(ms: number): void } {
  let now = 1000;
  let nextId = 1;
  const timers = new Map<number, { fn: () => void; ms: number; next: number }>();
  const lines: string[] = [];
  const logs: string[] = [];
  return {
    lines,
    logs,
    clock: { now: () => now },
    timers: {
      setInterval: (fn, ms) => {
        const id = nextId++;
        timers.set(id, { fn, ms, next: now + ms });
        return id;
      },
      clearInterval: (handle) => void timers.delete(handle as number),
    },
    rng: () => 0.5,
    write: (line) => lines.push(line),
    log: (line) => logs.push(line),
    advance(ms) {
      for (const end = now + ms; now < end; ) {
        now++;
        for (const timer of [...timers.values()]) {
          while (timer.next <= now) {
            timer.next += timer.ms;
            timer.fn();
          }
        }
      }
    },
  };
}

t.test('sim - emits key=value lines at rateHz following the waveform', async (t) => {
  const io = fakeIo();
  const config = simConfigSchema.parse({ rateHz: 10, waveform: { periodMs: 4000 } });
  const sim = new FirmwareSim(config, io);
  sim.start();
  io.advance(1000);
  // Readings at 0, 100, ..., 1000 ms: 11 of them.
  t.equal(sim.readings, 11);
  t.equal(io.lines.length, 11);
  t.match(io.lines[0], /^t=20\.00\n$/, 'the sine starts at its baseline');
  // 1000 ms is a quarter of the 4000 ms period: the peak, 20 + 5.
  t.equal(io.lines[10], 't=25.00\n');
  for (const line of io.lines) t.match(line, /^t=-?\d+\.\d{2}\n$/);
  sim.stop();
  io.advance(1000);
  t.equal(sim.readings, 11, 'nothing after stop');
});

t.test('sim - high rates are batched per tick without losing readings', async (t) => {
  const io = fakeIo();
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 5000, key: 'v', decimals: 1 }), io);
  sim.start();
  io.advance(2000);
  t.equal(sim.readings, 10001, '5 kHz for 2 s, both ends included');
  t.equal(sim.skipped, 0);
  t.match(io.lines[0], /^v=\d+\.\d\n$/);
});

t.test('sim - rate=N from the serial line changes the rate; other lines are refused with err', async (t) => {
  const io = fakeIo();
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 10 }), io);
  sim.start();
  io.advance(1000);
  const before = sim.readings;
  sim.receive('hello\nra');
  sim.receive('te=20\r\n');
  t.equal(sim.rateHz, 20);
  t.same(answers(io.lines), ['err unknown command: hello', 'ok rate=20']);
  io.advance(1000);
  t.equal(sim.readings - before, 21, '20 Hz from the command on, the first reading at once');
  sim.receive('rate=0\nrate=99999\nrate=abc\n');
  t.equal(sim.rateHz, 20, 'out-of-range rates are ignored');
  t.equal(sim.commandsIgnored, 4);
  t.same(answers(io.lines).slice(2).map((a) => a.split(' (')[0]), ['err bad value: rate=0', 'err bad value: rate=99999', 'err bad value: rate=abc']);
  sim.receive('x'.repeat(1000) + 'rate=5\n');
  t.equal(sim.rateHz, 20, 'an over-long line is discarded whole');
  t.match(answers(io.lines).at(-1), /^err command too long/);
  sim.receive('rate=5\n');
  t.equal(sim.rateHz, 5);
});

/** The answer lines among what the sim wrote (`ok ...` / `err ...`), without their newline. */
const answers = (lines: string[]): string[] => lines.filter((l) => /^(ok|err)\b/.test(l)).map((l) => l.replace(/\n$/, ''));

t.test('sim - interval=MS changes the emit interval and answers ok on a line of its own', async (t) => {
  const io = fakeIo();
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 10 }), io);
  sim.start();
  io.advance(1000);
  sim.receive('interval=200\n');
  t.equal(io.lines.at(-1), 'ok interval=200\n', 'the answer is a whole line');
  t.equal(sim.rateHz, 5);
  const before = sim.readings;
  io.advance(2000);
  t.equal(sim.readings - before, 11, 'one reading every 200 ms, the first at once');
  sim.receive('interval=0\ninterval=-5\ninterval=abc\ninterval=\ninterval=99999999999\n');
  t.same(answers(io.lines).slice(1).map((a) => a.replace(/ \(.*$/, '')), ['err bad value: interval=0', 'err bad value: interval=-5', 'err bad value: interval=abc', 'err bad value: interval=', 'err bad value: interval=99999999999']);
  t.equal(sim.rateHz, 5, 'a bad value changes nothing');
  sim.receive('interval=0.5\n');
  t.equal(sim.rateHz, 2000, 'fractions of a ms up to the maximum rate');
  sim.receive('  interval = 100 \r\n');
  t.equal(io.lines.at(-1), 'ok interval=100\n', 'blanks around the command and the value are allowed');
});

t.test('sim - threshold=VALUE adds alarm=0|1 to each reading; threshold=off removes it', async (t) => {
  const io = fakeIo();
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 10, waveform: { periodMs: 4000 } }), io);
  sim.start();
  t.equal(io.lines[0], 't=20.00\n', 'no alarm field without a threshold');
  sim.receive('threshold=22\n');
  t.equal(io.lines.at(-1), 'ok threshold=22\n');
  t.equal(sim.threshold, 22);
  io.advance(1000);
  const readings = io.lines.filter((l) => l.startsWith('t='));
  const last = readings.at(-1)!;
  t.equal(last, 't=25.00 alarm=1\n', 'the peak is above 22');
  t.match(readings[1], /^t=20\.\d\d alarm=0\n$/, 'just after the start the value is below 22');
  for (const r of readings.slice(1)) {
    const [, v, a] = /^t=(-?[\d.]+) alarm=([01])\n$/.exec(r)!;
    t.equal(a, Number(v) > 22 ? '1' : '0', `${r.trim()}: alarm says whether the value is above the threshold`);
  }
  sim.receive('threshold=hot\nthreshold=\n');
  t.same(answers(io.lines).slice(1).map((a) => a.replace(/ \(.*$/, '')), ['err bad value: threshold=hot', 'err bad value: threshold=']);
  t.equal(sim.threshold, 22);
  sim.receive('threshold=off\n');
  t.equal(io.lines.at(-1), 'ok threshold=off\n');
  io.advance(100);
  t.match(io.lines.at(-1), /^t=[\d.]+\n$/, 'no alarm field after off');
  sim.receive('threshold=-3.5\n');
  t.equal(io.lines.at(-1), 'ok threshold=-3.5\n', 'negative and fractional values');
});

t.test('sim - threshold from the configuration; unknown commands are answered err with the command', async (t) => {
  const io = fakeIo();
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 10, threshold: 100 }), io);
  sim.start();
  t.equal(io.lines[0], 't=20.00 alarm=0\n');
  sim.receive('reboot\nfoo=1\n\n');
  t.same(answers(io.lines), ['err unknown command: reboot', 'err unknown command: foo=1'], 'an empty line is skipped, not answered');
  t.equal(sim.commandsIgnored, 2);
});

t.test('sim - a stall longer than a second is skipped, not replayed', async (t) => {
  const io = fakeIo();
  let stalled = 0;
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 100 }), {
    ...io,
    clock: { now: () => io.clock.now() + stalled },
  });
  sim.start();
  io.advance(100);
  const before = sim.readings;
  stalled = 5000;
  sim.tick();
  t.equal(sim.readings - before, 1, 'one reading now');
  t.ok(sim.skipped >= 499, `about 5 s of readings skipped (${sim.skipped})`);
});
