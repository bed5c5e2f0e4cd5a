import type { z } from 'zod';
import { ErrorCode } from '../protocol/errors.js';
import { loadYamlFile, parseYaml, type Override } from '../hw/yaml-file.js';

/** Loads `--config FILE` (or nothing) with flag overrides applied on top, validated before anything starts. */
export function loadConfig<S extends z.ZodType>(file: string | undefined, schema: S, overrides: Override[]): z.output<S> {
  const present = overrides.filter((o) => o.value !== undefined);
  if (file === undefined) return parseYaml('{}', '(flags)', schema, ErrorCode.CONFIG_INVALID, present);
  return loadYamlFile(file, schema, ErrorCode.CONFIG_INVALID, present);
}
