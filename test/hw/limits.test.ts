import t from 'tap';
import { agentLimits, capacityEstimate } from '../../hw/limits.js';
import { listProfiles, loadProfile, type Profile } from '../../hw/profile.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const SECONDS_PER_YEAR = 365.25 * 24 * 3600;

/** A profile built in the test, so expected figures can be worked out by hand. */
function board(over: { memoryMiB?: number; sizeGB?: number; eraseBlockBytes?: number; kind?: Profile['storage']['kind']; syncLatencyMs?: number } = {}): Profile {
  return {
    name: 'test-board',
    kind: 'client',
    processor: { arch: 'arm64', cores: 4, clockMHz: 1500, model: 'Test SoC' },
    memoryMiB: over.memoryMiB ?? 1024,
    storage: {
      kind: over.kind ?? 'sd',
      sizeGB: over.sizeGB ?? 32,
      eraseBlockBytes: over.eraseBlockBytes ?? 4 * MiB,
      enduranceWriteCycles: 1000,
      syncLatencyMs: over.syncLatencyMs ?? 10,
    },
    network: { kind: 'ethernet' },
  };
}

t.test('limits - segments are whole erase blocks and the store whole segments, for every profile', async (t) => {
  for (const name of listProfiles()) {
    const p = loadProfile(name);
    const l = agentLimits(p);
    t.ok(l.segmentBytes >= p.storage.eraseBlockBytes, `${name}: segment holds an erase block`);
    t.equal(l.segmentBytes % p.storage.eraseBlockBytes, 0, `${name}: segment is a multiple of the erase block`);
    t.equal(l.storeBytesMax % l.segmentBytes, 0, `${name}: store is a multiple of the segment`);
    t.ok(l.storeBytesMax / l.segmentBytes >= 8, `${name}: at least 8 segments`);
    t.ok(l.storeBytesMax <= p.storage.sizeGB * 1e9 * 0.05, `${name}: store within 5% of storage`);
  }
});

t.test('limits - Pi Zero 2 W gets a smaller window and budget than Pi 4', async (t) => {
  const zero = agentLimits(loadProfile('pi-zero-2w'));
  const four = agentLimits(loadProfile('pi-4b'));
  t.equal(zero.inflightPacketsMax, 256);
  t.equal(four.inflightPacketsMax, 1024);
  t.ok(zero.memoryBudgetBytes < four.memoryBudgetBytes);
  t.ok(zero.memoryBudgetBytes < 512 * MiB / 4, 'leaves most of 512 MiB to the OS');
});

t.test('limits - window and memory budget never shrink as memory grows', async (t) => {
  const sizes = [256, 512, 1024, 2048, 4096, 8192, 16384];
  const limits = sizes.map((memoryMiB) => agentLimits(board({ memoryMiB })));
  t.same(limits.map((l) => l.inflightPacketsMax), [256, 256, 1024, 1024, 1024, 1024, 1024]);
  t.same(limits.map((l) => l.memoryBudgetBytes / MiB), [32, 64, 128, 256, 256, 256, 256]);
});

t.test('limits - store is 5% of storage, capped at 1 GiB on SD and 8 GiB on SSD', async (t) => {
  t.equal(agentLimits(board({ sizeGB: 32 })).storeBytesMax, 1 * GiB);
  t.equal(agentLimits(board({ sizeGB: 256, kind: 'ssd' })).storeBytesMax, 8 * GiB);
  const small = agentLimits(board({ sizeGB: 8 }));
  t.ok(small.storeBytesMax <= 8e9 * 0.05 && small.storeBytesMax > 8e9 * 0.05 - small.segmentBytes, 'whole segments just under 5%');
});

t.test('limits - segment size is 16 erase blocks, clamped to 32 MiB and one block', async (t) => {
  t.equal(agentLimits(board({ eraseBlockBytes: 128 * 1024 })).segmentBytes, 2 * MiB);
  t.equal(agentLimits(board({ eraseBlockBytes: 512 * 1024 })).segmentBytes, 8 * MiB);
  t.equal(agentLimits(board({ eraseBlockBytes: 4 * MiB })).segmentBytes, 32 * MiB);
  t.equal(agentLimits(board({ eraseBlockBytes: 12 * MiB })).segmentBytes, 24 * MiB, 'non-power-of-two blocks stay whole');
  t.equal(agentLimits(board({ eraseBlockBytes: 64 * MiB })).segmentBytes, 64 * MiB, 'never less than one block');
});

t.test('limits - group commit window follows sync latency, clamped', async (t) => {
  t.equal(agentLimits(board({ syncLatencyMs: 15 })).groupCommitWindowMs, 15);
  t.equal(agentLimits(board({ syncLatencyMs: 0.2 })).groupCommitWindowMs, 1);
  t.equal(agentLimits(board({ syncLatencyMs: 400 })).groupCommitWindowMs, 50);
});

t.test('limits - capacity estimate gives backlog hours and flash life', async (t) => {
  const p = board({ sizeGB: 32 }); // store 1 GiB, 32e9 bytes × 1000 cycles
  const e = capacityEstimate(p, { eventsPerSecond: 10, packetBytes: 1000 });
  t.equal(e.writeBytesPerSecond, 10_000);
  t.ok(Math.abs(e.backlogHours - GiB / 10_000 / 3600) < 1e-9, `backlog ${e.backlogHours} h`);
  t.ok(Math.abs(e.flashLifeYears - 32e12 / (10_000 * 1.2) / SECONDS_PER_YEAR) < 1e-9, `life ${e.flashLifeYears} y`);
  const twice = capacityEstimate(p, { eventsPerSecond: 20, packetBytes: 1000 });
  t.ok(Math.abs(twice.backlogHours * 2 - e.backlogHours) < 1e-9, 'double the rate, half the backlog');
  t.ok(Math.abs(twice.flashLifeYears * 2 - e.flashLifeYears) < 1e-9, 'double the rate, half the life');
});

t.test('limits - write amplification defaults to 1.2 and shortens flash life', async (t) => {
  const p = board();
  const w = { eventsPerSecond: 50, packetBytes: 200 };
  t.equal(capacityEstimate(p, w).flashLifeYears, capacityEstimate(p, { ...w, writeAmplification: 1.2 }).flashLifeYears);
  const worse = capacityEstimate(p, { ...w, writeAmplification: 2.4 }).flashLifeYears;
  t.ok(Math.abs(worse * 2 - capacityEstimate(p, w).flashLifeYears) < 1e-9);
});

t.test('limits - capacity estimate at zero rate is unbounded, bad input is refused', async (t) => {
  const idle = capacityEstimate(board(), { eventsPerSecond: 0, packetBytes: 100 });
  t.equal(idle.backlogHours, Infinity);
  t.equal(idle.flashLifeYears, Infinity);
  t.throws(() => capacityEstimate(board(), { eventsPerSecond: -1, packetBytes: 100 }), RangeError);
  t.throws(() => capacityEstimate(board(), { eventsPerSecond: 1, packetBytes: 0 }), RangeError);
  t.throws(() => capacityEstimate(board(), { eventsPerSecond: 1, packetBytes: 100, writeAmplification: 0.5 }), RangeError);
  t.throws(() => capacityEstimate(board(), { eventsPerSecond: NaN, packetBytes: 100 }), RangeError);
});
