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

t.test('sim - rate=N from the serial line changes the rate; other lines are ignored', async (t) => {
  const io = fakeIo();
  const sim = new FirmwareSim(simConfigSchema.parse({ rateHz: 10 }), io);
  sim.start();
  io.advance(1000);
  const before = sim.readings;
  sim.receive('hello\nra');
  sim.receive('te=20\r\n');
  t.equal(sim.rateHz, 20);
  io.advance(1000);
  t.equal(sim.readings - before, 21, '20 Hz from the command on, the first reading at once');
  sim.receive('rate=0\nrate=99999\nrate=abc\n');
  t.equal(sim.rateHz, 20, 'out-of-range rates are ignored');
  t.equal(sim.commandsIgnored, 4);
  sim.receive('x'.repeat(1000) + 'rate=5\n');
  t.equal(sim.rateHz, 20, 'an over-long line is discarded whole');
  sim.receive('rate=5\n');
  t.equal(sim.rateHz, 5);
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
