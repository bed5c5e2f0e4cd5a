import type { z } from 'zod';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { loadYamlFile, parseYaml, type Override } from '../hw/yaml-file.js';

/**
 * Loads `--config FILE` (or nothing) with flag overrides applied on top, validated before anything
 * starts. Without a file, flags alone may make a whole configuration; when they leave required
 * keys out, the error says a config file is needed (CONFIG_MISSING; `command`, e.g. agent, names
 * the command and its example file) instead of listing fields nobody meant to give as flags.
 */
export function loadConfig<S extends z.ZodType>(file: string | undefined, schema: S, overrides: Override[], command?: string): z.output<S> {
  const present = overrides.filter((o) => o.value !== undefined);
  if (file !== undefined) return loadYamlFile(file, schema, ErrorCode.CONFIG_INVALID, present);
  if (command !== undefined) {
    const missing = missingKeys(schema, present);
    if (missing.length > 0) {
      const given = present.length > 0 ? `; the flags given leave out ${missing.join(', ')}` : '';
      throw new FerryError(ErrorCode.CONFIG_MISSING, `${command}: a config file is needed: ferry ${command} --config FILE (see docs/config.md and examples/${command}.yaml)${given}`);
    }
  }
  return parseYaml('{}', '(flags)', schema, ErrorCode.CONFIG_INVALID, present);
}

/** The required keys (dotted) that the flags alone leave out; values given but wrong are not counted. */
function missingKeys(schema: z.ZodType, overrides: Override[]): string[] {
  const value: Record<string, unknown> = {};
  for (const o of overrides) setIn(value, o.path, o.value);
  const result = schema.safeParse(value);
  if (result.success) return [];
  const keys = result.error.issues.filter((i) => i.path.length > 0 && getIn(value, i.path) === undefined).map((i) => i.path.map(String).join('.'));
  return [...new Set(keys)];
}

function setIn(target: Record<string, unknown>, path: string[], v: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[path[path.length - 1]!] = v;
}

function getIn(source: unknown, path: readonly PropertyKey[]): unknown {
  let node = source;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}
