/**
 * Backend addresses in a safe form, for every place one can reach: logs, NACKs, dead letters,
 * status and error messages. A backend URL may carry a secret in its userinfo
 * (`mqtt://user:pw@host`), its query (`?token=…`) or its path (Slack and Teams style webhooks:
 * `/hooks/T000/B000/SECRET`), so only the scheme, host and port are kept: `scheme://host:port/…`.
 */
import type { Log, LogFields } from './log.js';

/** Ports a scheme implies when its URL names none (so a redacted URL always shows the port). */
const defaultPorts: Record<string, string> = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443', 'mqtt:': '1883', 'mqtts:': '8883', 'tcp:': '1883', 'ssl:': '8883' };

/**
 * `url` as `scheme://host:port`, plus `/…` when it had anything after the authority (a path,
 * query or fragment), whose content is dropped. Never throws: text that is not a URL becomes
 * `(not a URL)`, since it may still be a secret.
 */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return '(not a URL)';
  }
  const port = u.port !== '' ? u.port : defaultPorts[u.protocol.toLowerCase()];
  // Placeholders like {agent} are percent-encoded by URL: the host stays readable enough either way.
  const host = u.hostname + (port !== undefined ? `:${port}` : '');
  const rest = (u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '' ? '/…' : '';
  return `${u.protocol}//${host}${rest}`;
}

// scheme://… up to whitespace or a character that ends a quoted or bracketed URL.
const urlInText = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'`<>()[\]{}]*/gi;

/** `text` with every URL in it redacted (redactUrl); other text is left as it is. */
export function redactUrlsIn(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(urlInText, (m) => redactUrl(m));
}

/** Secrets shorter than this are not searched for in text: too likely to match innocent words. */
export const secretCharsMin = 4;

/**
 * A function that takes known secrets (passwords, header values, webhook paths) out of a text,
 * replacing each with `***`, then redacts URLs. Longer secrets go first, so one that contains
 * another is replaced whole.
 */
export function secretScrubber(secrets: Iterable<string>): (text: string) => string {
  const list = [...new Set([...secrets].filter((s) => s.length >= secretCharsMin))].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const s of list) if (out.includes(s)) out = out.replaceAll(s, '***');
    return redactUrlsIn(out);
  };
}

/** `value` with `scrub` applied to every string in it (objects and arrays copied; Errors become { message, code }). */
function scrubValue(value: unknown, scrub: (s: string) => string, depth: number): unknown {
  if (typeof value === 'string') return scrub(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { message: scrub(value.message), ...(code !== undefined ? { code } : {}) };
  }
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, scrub, depth + 1));
  if (value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubValue(v, scrub, depth + 1);
  return out;
}

/**
 * A Log that passes every message and every string in its fields through `scrub` first: the last
 * net under the handlers' own care, so that whatever a backend or a library says reaches the log
 * without the configured secrets or a full URL.
 */
export function scrubbingLog(log: Log, scrub: (text: string) => string): Log {
  const fields = (f: LogFields | undefined): LogFields | undefined => (f === undefined ? undefined : (scrubValue(f, scrub, 0) as LogFields));
  return {
    debug: (m, f) => log.debug(scrub(m), fields(f)),
    info: (m, f) => log.info(scrub(m), fields(f)),
    warn: (m, f) => log.warn(scrub(m), fields(f)),
    error: (m, f) => log.error(scrub(m), fields(f)),
    child: (f) => scrubbingLog(log.child(fields(f) ?? {}), scrub),
  };
}
