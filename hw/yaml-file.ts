import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Node as YamlNode } from 'yaml';
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
    const line = lineOf(doc.contents, issuePath, lines);
    const field = fieldPath.length ? fieldPath.join('.') : '(top level)';
    let message = issue.message.replace(/^Invalid input: /, '');
    if (issue.code === 'unrecognized_keys') message = 'unknown key (not part of this configuration)';
    if (issue.code === 'invalid_type' && / received undefined$/.test(message)) message = `missing; ${message.replace(/, received undefined$/, '')}`;
    return `${path}:${line}: ${field}: ${message}`;
  });
  throw new FerryError(code, messages.join('\n'));
}

/**
 * The line of the deepest part of `path` present in the file: the key's line for a map entry
 * (so an unknown key or a missing field's parent points at the key a user wrote), the item's line
 * for a list entry, line 1 if nothing matches.
 */
function lineOf(root: unknown, path: PropertyKey[], lines: LineCounter): number {
  let line = 1;
  let node: unknown = root;
  for (const step of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === step);
      if (!pair) break;
      const keyNode = pair.key as YamlNode | null;
      if (isNode(keyNode) && keyNode.range) line = lines.linePos(keyNode.range[0]).line;
      node = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step] as YamlNode | undefined;
      if (!isNode(item)) break;
      if (item.range) line = lines.linePos(item.range[0]).line;
      node = item;
    } else break;
  }
  return line;
}
