import t from 'tap';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { agentConfigSchema } from '../../agent/config.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { simConfigSchema } from '../../firmware-sim/config.js';

const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');

/** Every leaf key path of an object schema, through defaults, optionals, arrays and unions. */
function keyPaths(schema: z.ZodType, prefix: string): string[] {
  const def = (schema as unknown as { def: { type: string; innerType?: z.ZodType; element?: z.ZodType; options?: z.ZodType[]; shape?: Record<string, z.ZodType> } }).def;
  if (def.innerType) return keyPaths(def.innerType, prefix);
  if (def.type === 'array' && def.element) return keyPaths(def.element, `${prefix}[]`);
  if (def.type === 'union' && def.options) return def.options.flatMap((o) => keyPaths(o, prefix));
  if (def.type === 'object' && def.shape) {
    return Object.entries(def.shape).flatMap(([k, v]) => {
      const p = prefix ? `${prefix}.${k}` : k;
      const below = keyPaths(v, p);
      return below.length > 0 ? below : [p];
    });
  }
  return [];
}

for (const [name, schema] of [['agent', agentConfigSchema], ['gateway', gatewayConfigSchema], ['sim', simConfigSchema]] as const) {
  t.test(`config docs - every ${name} key is in docs/config.md`, async (t) => {
    const paths = [...new Set(keyPaths(schema, ''))];
    t.ok(paths.length > 5, `${paths.length} keys found in the ${name} schema`);
    // A nested key is documented either by its full path or, inside a list item, by its own name.
    const missing = paths.filter((p) => !doc.includes(`\`${p}`) && !doc.includes(`\`${p.split('.').pop()}\``));
    t.same(missing, [], 'no undocumented keys');
  });
}
