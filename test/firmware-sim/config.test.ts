import t from 'tap';
import { DEFAULT_LINK, simConfigSchema } from '../../firmware-sim/index.js';

t.test('config - defaults fill every field, nested waveform included', async (t) => {
  t.same(simConfigSchema.parse({}), {
    link: DEFAULT_LINK,
    rateHz: 10,
    key: 't',
    waveform: { kind: 'sine', baseline: 20, amplitude: 5, periodMs: 20000, noise: 0 },
    decimals: 2,
  });
  const partial = simConfigSchema.parse({ waveform: { kind: 'square' } });
  t.same(partial.waveform, { kind: 'square', baseline: 20, amplitude: 5, periodMs: 20000, noise: 0 });
});

t.test('config - unknown keys and bad values are rejected', async (t) => {
  t.notOk(simConfigSchema.safeParse({ rate: 10 }).success, 'unknown top-level key');
  t.notOk(simConfigSchema.safeParse({ waveform: { shape: 'sine' } }).success, 'unknown waveform key');
  t.notOk(simConfigSchema.safeParse({ rateHz: 10001 }).success, 'rate above 10 kHz');
  t.notOk(simConfigSchema.safeParse({ rateHz: 0 }).success, 'rate zero');
  t.notOk(simConfigSchema.safeParse({ waveform: { kind: 'triangle' } }).success, 'unknown kind');
  t.notOk(simConfigSchema.safeParse({ link: '/tmp/a,b' }).success, 'link with socat syntax');
  t.notOk(simConfigSchema.safeParse({ key: 't=1' }).success, 'key with =');
  t.ok(simConfigSchema.safeParse({ rateHz: 10000, durationMs: 500 }).success);
});
