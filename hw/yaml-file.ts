import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode } from 'yaml';
import type { z } from 'zod';
import { ErrorCode, FerryError } from '../protocol/errors.js';

/**
 * Loads a YAML file and validates it against a zod schema, at load time, so that a wrong key,
 * type or missing field stops the program before anything starts. Every error names the file,
 * the line and the field, and says what was expected. Shared by config files and hw profiles.
 */
export function loadYamlFile<S extends z.ZodType>(path: string, schema: S, code: typeof ErrorCode.CONFIG_INVALID | typeof ErrorCode.PROFILE_INVALID = ErrorCode.CONFIG_INVALID, overrides: Override[] = []): z.output<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FerryError(code, `${path}: cannot read file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  return parseYaml(text, path, schema, code, overrides);
}

/** A value from a command-line flag that replaces (or adds) the field at `path`. */
export interface Override {
  path: string[];
  value: unknown;
}

export function parseYaml<S extends z.ZodType>(text: string, path: string, schema: S, code: typeof ErrorCode.CONFIG_INVALID | typeof ErrorCode.PROFILE_INVALID = ErrorCode.CONFIG_INVALID, overrides: Override[] = []): z.output<S> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line ?? 1;
    throw new FerryError(code, `${path}:${line}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  if (overrides.length > 0 && doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  for (const o of overrides) doc.setIn(o.path, o.value);
  const value: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const messages = result.error.issues.slice(0, 5).map((issue) => {
    const issuePath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    const fieldPath = issuePath.map(String);
    // Point at the deepest node that exists in the file (a missing field points at its parent).
    let line = 1;
    for (let depth = fieldPath.length; depth >= 0; depth--) {
      const node = doc.getIn(issuePath.slice(0, depth) as (string | number)[], true);
      if (isNode(node) && node.range) {
        line = lines.linePos(node.range[0]).line;
        break;
      }
    }
    const field = fieldPath.length ? fieldPath.join('.') : '(top level)';
    let message = issue.message.replace(/^Invalid input: /, '');
    if (issue.code === 'unrecognized_keys') message = 'unknown key (not part of this configuration)';
    if (issue.code === 'invalid_type' && / received undefined$/.test(message)) message = `missing; ${message.replace(/, received undefined$/, '')}`;
    return `${path}:${line}: ${field}: ${message}`;
  });
  throw new FerryError(code, messages.join('\n'));
}
