/**
 * Target patterns, matched against a packet's or a downlink message's target (the gateway's
 * routes, the agent's downlink routes, `ferry listen --target`):
 * - exact: `telemetry/temp`
 * - prefix: ends in `*`, e.g. `telemetry/*` matches every target starting with `telemetry/`
 * - MQTT-style: `+` matches one whole level, `#` (last level only) matches the rest, also nothing
 *   (`a/#` matches `a`, `a/b`, `a/b/c`).
 * Routes are tried in configuration order; the first match wins.
 */
export type Matcher = (target: string) => boolean;

export function compilePattern(pattern: string): Matcher {
  if (pattern.length === 0) throw new Error('empty pattern');
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    if (prefix.includes('*')) throw new Error(`'*' is allowed only at the end of a pattern: ${pattern}`);
    if (/[+#]/.test(prefix)) throw new Error(`a prefix pattern cannot also use '+' or '#': ${pattern}`);
    return (t) => t.startsWith(prefix);
  }
  if (pattern.includes('*')) throw new Error(`'*' is allowed only at the end of a pattern: ${pattern}`);
  const levels = pattern.split('/');
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) throw new Error(`'#' must be a whole last level: ${pattern}`);
    if (level.includes('+') && level !== '+') throw new Error(`'+' must be a whole level: ${pattern}`);
  }
  if (!pattern.includes('+') && !pattern.includes('#')) return (t) => t === pattern;
  return (target) => {
    const parts = target.split('/');
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!;
      if (level === '#') return true;
      if (i >= parts.length) return false;
      if (level !== '+' && level !== parts[i]) return false;
    }
    return parts.length === levels.length;
  };
}

