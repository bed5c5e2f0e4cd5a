import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../../protocol/errors.js';
import { findProfilesDir, listProfiles, loadProfile } from '../../hw/profile.js';
import { ferryErrorFrom, lineOf } from './fixtures/helpers.js';

const bundled = ['cm4', 'gateway-x86', 'pi-3bplus', 'pi-4b', 'pi-5', 'pi-zero-2w'];
const repoProfiles = fileURLToPath(new URL('../../hw/profiles', import.meta.url));

const good = `# a test profile
name: test-board
kind: client
processor:
  arch: arm64
  cores: 4
  clockMHz: 1800
  model: Test SoC
memoryMiB: 1024
storage:
  kind: sd
  sizeGB: 16
  eraseBlockBytes: 4194304
  enduranceWriteCycles: 1000
  syncLatencyMs: 12
network:
  kind: wifi
  bandwidthMbps: 40
`;

t.test('profile - listProfiles names every bundled profile', async (t) => {
  t.same(listProfiles(), bundled);
});

t.test('profile - every bundled profile loads and is named after its file', async (t) => {
  for (const name of bundled) {
    const p = loadProfile(name);
    t.equal(p.name, name);
    t.same(loadProfile(join(repoProfiles, `${name}.yaml`)), p, `${name} loads the same by path`);
  }
  const zero = loadProfile('pi-zero-2w');
  t.equal(zero.memoryMiB, 512);
  t.equal(zero.storage.kind, 'sd');
  t.equal(loadProfile('gateway-x86').kind, 'server');
  t.equal(loadProfile('gateway-x86').processor.arch, 'x64');
});

t.test('profile - a bare name resolves to the bundled file whatever the working directory', async (t) => {
  t.chdir(t.testdir({}));
  t.equal(loadProfile('pi-4b').processor.model, 'Broadcom BCM2711, quad-core Cortex-A72');
});

t.test('profile - unknown name lists the known profiles', async (t) => {
  const err = ferryErrorFrom(() => loadProfile('pi-9'));
  t.equal(err.code, ErrorCode.PROFILE_INVALID);
  t.match(err.message, 'unknown hardware profile "pi-9"');
  for (const name of bundled) t.match(err.message, name);
});

t.test('profile - a valid profile file loads by path', async (t) => {
  const dir = t.testdir({ 'board.yaml': good });
  const p = loadProfile(join(dir, 'board.yaml'));
  t.equal(p.name, 'test-board');
  t.equal(p.storage.syncLatencyMs, 12);
});

const bad: Array<[string, string, string, (text: string) => number]> = [
  ['wrong type', good.replace('cores: 4', 'cores: four'), 'processor.cores: expected number', (x) => lineOf(x, 'cores:')],
  ['fractional cores', good.replace('cores: 4', 'cores: 2.5'), 'processor.cores: expected int', (x) => lineOf(x, 'cores:')],
  ['unknown key', good.replace('  clockMHz: 1800', '  clockMHz: 1800\n  turbo: true'), 'processor.turbo: unknown key', (x) => lineOf(x, 'turbo:')],
  ['unknown top-level key', good.replace('memoryMiB: 1024', 'memoryMiB: 1024\ngpuMiB: 64'), 'gpuMiB: unknown key', (x) => lineOf(x, 'gpuMiB:')],
  ['bad storage kind', good.replace('kind: sd', 'kind: tape'), 'storage.kind: Invalid option', (x) => lineOf(x, 'kind: tape')],
  // A missing field points at its parent's key.
  ['missing field', good.replace('  eraseBlockBytes: 4194304\n', ''), 'storage.eraseBlockBytes: missing', (x) => lineOf(x, 'storage:')],
  ['invalid YAML', good.replace('memoryMiB: 1024', 'memoryMiB: 1024\nmemoryMiB: 2048'), 'not valid YAML', (x) => lineOf(x, 'memoryMiB: 2048')],
];

for (const [what, text, expected, line] of bad) {
  t.test(`profile - ${what} fails with the file, line and field`, async (t) => {
    const path = join(t.testdir({ 'board.yaml': text }), 'board.yaml');
    const err = ferryErrorFrom(() => loadProfile(path));
    t.equal(err.code, ErrorCode.PROFILE_INVALID);
    t.match(err.message, `${path}:${line(text)}: ${expected}`);
  });
}

t.test('profile - a missing file fails with its path', async (t) => {
  const path = join(t.testdir({}), 'absent.yaml');
  const err = ferryErrorFrom(() => loadProfile(path));
  t.equal(err.code, ErrorCode.PROFILE_INVALID);
  t.match(err.message, `${path}: cannot read file (ENOENT)`);
});

t.test('profile - the profiles folder is found from a compiled dist/hw module', async (t) => {
  const root = t.testdir({ hw: { profiles: { 'x.yaml': good } }, dist: { hw: {} } });
  t.equal(findProfilesDir(join(root, 'dist', 'hw')), join(root, 'hw', 'profiles'));
  t.equal(findProfilesDir(join(root, 'hw')), join(root, 'hw', 'profiles'));
});

t.test('profile - no profiles folder above the module is a PROFILE_INVALID error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-hw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const err = ferryErrorFrom(() => findProfilesDir(dir));
  t.equal(err.code, ErrorCode.PROFILE_INVALID);
  t.match(err.message, dir);
});
