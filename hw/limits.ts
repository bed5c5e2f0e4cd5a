import { memoryBytes, storageBytes, type Profile } from './profile.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const SECONDS_PER_YEAR = 365.25 * 24 * 3600;

/** What follows from a hardware profile for the agent. */
export interface AgentLimits {
  /** Disk the store may use, a whole number of segments. */
  storeBytesMax: number;
  /** Size of one store segment, a whole number of erase blocks. */
  segmentBytes: number;
  /** Credit window: packets sent and not yet acked. */
  inflightPacketsMax: number;
  /** Heap the agent may use for buffers, queues and the in-flight window. */
  memoryBudgetBytes: number;
  /** How long appends wait to share one fsync. */
  groupCommitWindowMs: number;
}

// The store takes a small share of the device: the card also holds the OS and its logs, and a
// smaller store wears the flash no faster (writes are what wear it, not capacity). SD cards and
// eMMC are small and slow to wear-level, so they are capped lower than SSDs.
const STORE_SHARE = 0.05;
const STORE_BYTES_CAP: Record<Profile['storage']['kind'], number> = { sd: 1 * GiB, emmc: 1 * GiB, nvme: 8 * GiB, ssd: 8 * GiB };

// A segment spans whole erase blocks, so deleting an acked segment frees whole blocks and the
// flash translation layer need not copy live data out of them (less write amplification).
// 16 blocks amortise the per-segment overhead; the cap keeps recovery scans short and the
// store at least SEGMENTS_MIN segments, so space is reclaimed in small steps.
const SEGMENT_ERASE_BLOCKS = 16;
const SEGMENT_BYTES_CAP = 32 * MiB;
const SEGMENTS_MIN = 8;

// Small boards (Pi Zero 2 W: 512 MiB shared with the OS and the GPU) get a smaller window and
// budget: in-flight packets are held in memory until acked. The budget is 1/8 of RAM, clamped.
const SMALL_MEMORY_BYTES = 512 * MiB;
const MEMORY_SHARE = 1 / 8;
const MEMORY_BUDGET_MIN_BYTES = 32 * MiB;
const MEMORY_BUDGET_MAX_BYTES = 256 * MiB;

// Group commit waits about one sync time: appends arriving while a sync runs share the next one,
// so latency at most doubles while syncs per second (and the pages each one wears) drop.
const GROUP_COMMIT_MS_MIN = 1;
const GROUP_COMMIT_MS_MAX = 50;

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

export function agentLimits(profile: Profile): AgentLimits {
  const eraseBlockBytes = profile.storage.eraseBlockBytes;
  const storeTarget = Math.min(storageBytes(profile) * STORE_SHARE, STORE_BYTES_CAP[profile.storage.kind]);
  const segmentTarget = Math.min(SEGMENT_ERASE_BLOCKS * eraseBlockBytes, SEGMENT_BYTES_CAP, storeTarget / SEGMENTS_MIN);
  const segmentBytes = Math.max(1, Math.floor(segmentTarget / eraseBlockBytes)) * eraseBlockBytes;
  const storeBytesMax = Math.max(1, Math.floor(storeTarget / segmentBytes)) * segmentBytes;
  const ram = memoryBytes(profile);
  return {
    storeBytesMax,
    segmentBytes,
    inflightPacketsMax: ram <= SMALL_MEMORY_BYTES ? 256 : 1024,
    memoryBudgetBytes: clamp(Math.floor(ram * MEMORY_SHARE), MEMORY_BUDGET_MIN_BYTES, MEMORY_BUDGET_MAX_BYTES),
    groupCommitWindowMs: clamp(Math.ceil(profile.storage.syncLatencyMs), GROUP_COMMIT_MS_MIN, GROUP_COMMIT_MS_MAX),
  };
}

export interface Workload {
  eventsPerSecond: number;
  /** Bytes written to the store per event (packet and record header). */
  packetBytes: number;
  /** Bytes the flash writes per byte the store writes; partial-page syncs and FTL copying. */
  writeAmplification?: number;
}

export interface CapacityEstimate {
  writeBytesPerSecond: number;
  /** Hours of offline backlog that fit in storeBytesMax. */
  backlogHours: number;
  /** Years until the agent's writes alone use up the device's rated endurance. */
  flashLifeYears: number;
}

/**
 * Every event is written to the store once whether or not the link is up (persist before
 * transmit; acked segments are deleted, not rewritten), so the write rate is events × bytes.
 * Flash life assumes wear levelling over the whole device: size × cycles ÷ (rate × amplification).
 * Other writers on the device (the OS, logs) shorten it further.
 */
export function capacityEstimate(profile: Profile, workload: Workload): CapacityEstimate {
  const { eventsPerSecond, packetBytes, writeAmplification = 1.2 } = workload;
  if (!(Number.isFinite(eventsPerSecond) && eventsPerSecond >= 0)) throw new RangeError(`eventsPerSecond must be >= 0, got ${eventsPerSecond}`);
  if (!(Number.isFinite(packetBytes) && packetBytes > 0)) throw new RangeError(`packetBytes must be > 0, got ${packetBytes}`);
  if (!(Number.isFinite(writeAmplification) && writeAmplification >= 1)) throw new RangeError(`writeAmplification must be >= 1, got ${writeAmplification}`);
  const writeBytesPerSecond = eventsPerSecond * packetBytes;
  const enduranceBytes = storageBytes(profile) * profile.storage.enduranceWriteCycles;
  return {
    writeBytesPerSecond,
    backlogHours: agentLimits(profile).storeBytesMax / writeBytesPerSecond / 3600,
    flashLifeYears: enduranceBytes / (writeBytesPerSecond * writeAmplification) / SECONDS_PER_YEAR,
  };
}
