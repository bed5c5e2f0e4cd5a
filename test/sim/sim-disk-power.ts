/**
 * What SimDisk's syncs make durable, and what a file holds after a power cut (the model is
 * described in test/sim/sim-disk.ts).
 */
import { resized, type FileNode } from './sim-disk-tree.js';

/** fdatasync: the file's content and size as they are now. */
export function syncData(node: FileNode): void {
  node.durable = node.current.slice();
}

/**
 * An O_DSYNC write of `count` bytes at `at`: those bytes and the file's size become durable, not
 * other unsynced writes (a gap the size now covers reads as zeros after a power cut, unless the
 * cut keeps what was written there).
 */
export function syncRange(node: FileNode, at: number, count: number): void {
  const durable = resized(node.durable, node.current.length);
  durable.set(node.current.subarray(at, at + count), at);
  node.durable = durable;
}

/**
 * The file's bytes after a power cut, between `durable` (what was synced) and `current` (what the
 * processes had written). Its size: an unsynced extension survives whole, not at all, or up to a
 * sector boundary (a third each); an unsynced shrink survives or not (a half each). Its content,
 * sector by sector where old and new differ: the whole file keeps the old sectors (a quarter of
 * power cuts), takes the new ones (a quarter), or each sector picks one at random (a half); the
 * last differing sector may instead be torn (new bytes up to a random byte, old ones after). Old
 * bytes past the durable size are zeros.
 */
export function afterPowerCut(durable: Uint8Array, current: Uint8Array, rng: () => number, sectorBytes: number): Uint8Array {
  const length = sizeAfterPowerCut(durable.length, current.length, rng, sectorBytes);
  const before = resized(durable, length);
  const after = resized(current, length);
  const dirty: number[] = [];
  for (let start = 0; start < length; start += sectorBytes) {
    const end = Math.min(start + sectorBytes, length);
    for (let i = start; i < end; i++) {
      if (before[i] !== after[i]) {
        dirty.push(start);
        break;
      }
    }
  }
  const mode = rng();
  const out = before;
  dirty.forEach((start, i) => {
    const end = Math.min(start + sectorBytes, length);
    const last = i === dirty.length - 1;
    const pick = mode < 0.25 ? 0 : mode < 0.5 ? 1 : rng();
    if (last && end - start > 1 && rng() < 1 / 3) {
      const cut = start + 1 + Math.floor(rng() * (end - start - 1));
      out.set(after.subarray(start, cut), start); // torn: new up to cut, old after
    } else if (pick >= 0.5) {
      out.set(after.subarray(start, end), start);
    }
  });
  return out;
}

function sizeAfterPowerCut(durableBytes: number, currentBytes: number, rng: () => number, sectorBytes: number): number {
  if (currentBytes === durableBytes) return currentBytes;
  if (currentBytes < durableBytes) return rng() < 0.5 ? currentBytes : durableBytes;
  const r = rng();
  if (r < 1 / 3) return durableBytes;
  if (r < 2 / 3) return currentBytes;
  const first = (Math.floor(durableBytes / sectorBytes) + 1) * sectorBytes;
  if (first >= currentBytes) return rng() < 0.5 ? durableBytes : currentBytes;
  const boundaries = Math.ceil((currentBytes - first) / sectorBytes);
  return first + Math.floor(rng() * boundaries) * sectorBytes;
}
