import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { loadYamlFile } from './yaml-file.js';

const positiveInt = () => z.number().int().positive();

/**
 * A hardware profile: what a client device or a gateway host offers. Units are in the field
 * names; sizes use the units their makers publish (memory in MiB, storage in decimal GB as
 * labelled), erase blocks in bytes. Use `memoryBytes`/`storageBytes` to convert.
 */
export const ProfileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
  kind: z.enum(['client', 'server']),
  processor: z.strictObject({
    arch: z.enum(['arm', 'arm64', 'x64']),
    cores: positiveInt(),
    clockMHz: positiveInt(),
    model: z.string().min(1),
  }),
  memoryMiB: positiveInt(),
  storage: z.strictObject({
    kind: z.enum(['sd', 'emmc', 'nvme', 'ssd']),
    sizeGB: z.number().positive(),
    eraseBlockBytes: z.number().int().min(512),
    /** Full-device program/erase cycles (for SSDs: TBW ÷ size). */
    enduranceWriteCycles: positiveInt(),
    /** Typical time for fsync of a small write. */
    syncLatencyMs: z.number().positive(),
  }),
  network: z.strictObject({
    kind: z.enum(['ethernet', 'wifi', 'cellular']),
    /** Usable throughput where published, else the link rate. */
    bandwidthMbps: z.number().positive().optional(),
  }),
});
export type Profile = z.output<typeof ProfileSchema>;

export const memoryBytes = (p: Profile): number => p.memoryMiB * 2 ** 20;
export const storageBytes = (p: Profile): number => Math.round(p.storage.sizeGB * 1e9);

/**
 * Finds the bundled `hw/profiles` folder by walking up from `fromDir`. tsc does not copy the
 * YAML files into `dist/`, so from `dist/hw/profile.js` as from `hw/profile.ts` this finds the
 * source folder at the repository root.
 */
export function findProfilesDir(fromDir: string): string {
  for (let dir = resolve(fromDir); ; dir = dirname(dir)) {
    const candidate = join(dir, 'hw', 'profiles');
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate;
    if (dirname(dir) === dir) {
      throw new FerryError(ErrorCode.PROFILE_INVALID, `no hw/profiles folder found above ${fromDir}`);
    }
  }
}

const profilesDir = (): string => findProfilesDir(dirname(fileURLToPath(import.meta.url)));

/** Names of the bundled profiles, sorted. */
export function listProfiles(): string[] {
  return readdirSync(profilesDir())
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => basename(f, '.yaml'))
    .sort();
}

/**
 * Loads a profile: a bare name (`pi-zero-2w`) is one of the bundled profiles; anything with a
 * path separator or a `.yaml`/`.yml` ending is a file path. Fails with PROFILE_INVALID naming
 * the file, line and field, or listing the known names.
 */
export function loadProfile(nameOrPath: string): Profile {
  const isPath = /[\\/]/.test(nameOrPath) || /\.ya?ml$/i.test(nameOrPath);
  if (isPath) return loadYamlFile(nameOrPath, ProfileSchema, ErrorCode.PROFILE_INVALID);
  const known = listProfiles();
  if (!known.includes(nameOrPath)) {
    throw new FerryError(
      ErrorCode.PROFILE_INVALID,
      `unknown hardware profile "${nameOrPath}"; known profiles: ${known.join(', ')}`,
    );
  }
  return loadYamlFile(join(profilesDir(), `${nameOrPath}.yaml`), ProfileSchema, ErrorCode.PROFILE_INVALID);
}
