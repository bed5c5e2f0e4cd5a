/**
 * Peers that are not dependencies of ferry: installed on demand into bench/.peers (git-ignored),
 * never into package.json, so CI never compiles them. better-sqlite3 ships prebuilt binaries on
 * GitHub only; where GitHub is unreachable its install script falls back to node-gyp (python3,
 * make and a C++ compiler), about a minute on a 2-vCPU machine.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** 12.x is the last line whose engines include Node 20 (13.x needs Node 22). */
export const betterSqlite3Version = '12.11.1';

/** bench/.peers in the source tree (this file runs as dist/bench/lib/peers.js). */
export const peersDir = fileURLToPath(new URL('../../../bench/.peers/', import.meta.url));

const moduleDir = join(peersDir, 'node_modules', 'better-sqlite3');
const addon = join(moduleDir, 'build', 'Release', 'better_sqlite3.node');

async function installedVersion(): Promise<string | null> {
  const pkg = await readFile(join(moduleDir, 'package.json'), 'utf8').catch(() => null);
  return pkg === null ? null : (JSON.parse(pkg) as { version?: string }).version ?? null;
}

/**
 * Installs better-sqlite3 into bench/.peers unless that exact version is there with its native
 * addon built. npm 11 runs a dependency's install script only if `allowScripts` in the project's
 * package.json lists it (and refuses `--allow-scripts` for project installs), so bench/.peers
 * gets a package.json of its own that allows exactly this one.
 */
export async function ensureBetterSqlite3(say: (line: string) => void): Promise<void> {
  if (existsSync(addon) && (await installedVersion()) === betterSqlite3Version) return;
  await mkdir(peersDir, { recursive: true });
  await writeFile(join(peersDir, 'package.json'), `${JSON.stringify({
    name: 'ferry-bench-peers', private: true, description: 'installed by bench/lib/peers.ts; not part of ferry',
    allowScripts: { 'better-sqlite3': true },
  }, null, 2)}\n`);
  say(`bench: installing better-sqlite3@${betterSqlite3Version} into ${peersDir} (its install script compiles it with node-gyp when no prebuilt binary can be downloaded: about a minute)`);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    execFile('npm', ['install', '--prefix', peersDir, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `better-sqlite3@${betterSqlite3Version}`],
      { maxBuffer: 64 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`npm install better-sqlite3 failed: ${err.message}\n${stdout}${stderr}`.slice(-4000))) : resolve()));
  });
  if (!existsSync(addon)) {
    throw new Error(`better-sqlite3 was installed but ${addon} was not built: did npm skip its install script? (see allowScripts in ${join(peersDir, 'package.json')})`);
  }
  say(`bench: better-sqlite3 built in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** Loads better-sqlite3 from bench/.peers (call ensureBetterSqlite3 first, in the harness). */
export function requireBetterSqlite3(): unknown {
  return createRequire(join(peersDir, 'package.json'))('better-sqlite3');
}
