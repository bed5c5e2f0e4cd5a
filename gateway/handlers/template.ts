/**
 * A route's `{agent}` and `{target}` placeholders filled in one pass. A replacer function, not a
 * replacement string: a target holding `$&`, `$'` or `$$` would otherwise be read as a
 * replacement pattern (the id fuzzer found `$&` publishing to the literal topic
 * `ferry/pi-1/{target}`), and a target holding `{agent}` would be filled a second time.
 */
export function fillTemplate(template: string, agent: string, target: string): string {
  return template.replace(/\{(agent|target)\}/g, (_match, key: string) => (key === 'agent' ? agent : target));
}
