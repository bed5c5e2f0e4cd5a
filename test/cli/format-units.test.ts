import t from 'tap';
import { formatAge, formatBytes, formatRate } from '../../cli/format-units.js';

t.test('format-units - sizes in binary units', async (t) => {
  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1023), '1023 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(256 * 2 ** 20), '256 MiB');
  t.equal(formatBytes(3.25 * 2 ** 30), '3.3 GiB');
});

t.test('format-units - ages with the two largest units', async (t) => {
  t.equal(formatAge(850), '850ms');
  t.equal(formatAge(42_000), '42s');
  t.equal(formatAge(192_000), '3m12s');
  t.equal(formatAge(2 * 3600_000 + 5 * 60_000 + 7000), '2h05m');
  t.equal(formatAge(3 * 86_400_000 + 4 * 3600_000), '3d04h');
});

t.test('format-units - rates', async (t) => {
  t.equal(formatRate(0), '0/s');
  t.equal(formatRate(2.54), '2.5/s');
  t.equal(formatRate(1234.4), '1234/s');
});
