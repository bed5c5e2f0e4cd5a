import { readFileSync } from 'node:fs';

/**
 * The version in package.json: two levels up from dist/cli/ (the installed package), one up from
 * cli/ (running from source). A small JSON read, so `ferry --version` loads nothing else.
 */
export function ferryVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'ferry' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the other layout
    }
  }
  return 'unknown';
}
