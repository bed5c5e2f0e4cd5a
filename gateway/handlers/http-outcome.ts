/**
 * The pure parts of the webhook handler: the URL and headers of a request, and what an HTTP
 * answer means for the packet. No IO here, so every rule is tested without a server.
 */
import { redactUrl } from '../../common/redact.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { HandlerResult } from './handler.js';
import { fillTemplate } from './template.js';

/** `url` with `{agent}` and `{target}` replaced, URL-encoded (a target's `/` becomes `%2F`, so it stays one path segment). */
export function renderUrl(template: string, agent: string, target: string): string {
  return fillTemplate(template, encodeURIComponent(agent), encodeURIComponent(target));
}

/**
 * Why `template` cannot be a webhook URL, or undefined. Placeholders are checked as if replaced.
 * The reason shows no more of the URL than redactUrl does: its path may be a secret.
 */
export function urlProblem(template: string): string | undefined {
  let url: URL;
  try {
    url = new URL(renderUrl(template, 'agent', 'target'));
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${redactUrl(url)} is not an http:// or https:// URL`;
  if (url.username !== '' || url.password !== '') return 'credentials in the URL are not supported: put an Authorization header in `headers`';
  return undefined;
}

/** Headers the handler sets itself; a configured header may not replace them. */
const reserved = new Set(['host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'idempotency-key']);
const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// eslint-disable-next-line no-control-regex
const badValue = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Why a configured header cannot be sent, or undefined. */
export function headerProblem(name: string, value: string): string | undefined {
  if (!token.test(name)) return `header name "${name}" is not an HTTP token`;
  const lower = name.toLowerCase();
  if (reserved.has(lower) || lower.startsWith('ferry-')) return `header "${name}" is set by the handler itself`;
  if (badValue.test(value)) return `header "${name}" has a control character in its value`;
  return undefined;
}

export interface RetryPolicy {
  /** when the server gives no usable Retry-After */
  retryAfterMs: number;
  retryAfterMsMin: number;
  retryAfterMsMax: number;
}

/**
 * Milliseconds a `Retry-After` value asks for: delay-seconds or an HTTP date (relative to `now`),
 * clamped to [min, max]; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, now: number, policy: RetryPolicy): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(policy.retryAfterMsMax, Math.max(policy.retryAfterMsMin, ms));
}

/** Statuses that say "not now" rather than "never": 408 Request Timeout, 425 Too Early, 429 Too Many Requests, every 5xx. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599);
}

/**
 * What an answer means: 2xx delivered; 408, 425, 429, 5xx retryable HANDLER_FAILED after
 * Retry-After (or the default); anything else, 3xx included (redirects are not followed: the
 * packet would be sent somewhere the route does not name), permanent HANDLER_REJECTED.
 */
export function outcomeOf(status: number, retryAfter: string | undefined, bodyStart: string, now: number, policy: RetryPolicy, what: string): HandlerResult {
  if (status >= 200 && status <= 299) return { ok: true };
  const said = bodyStart.length > 0 ? `: ${bodyStart}` : '';
  if (retryableStatus(status)) {
    const retryAfterMs = parseRetryAfter(retryAfter, now, policy) ?? policy.retryAfterMs;
    return { ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: `${what} answered ${status}${said}`, retryAfterMs };
  }
  const why = status >= 300 && status <= 399 ? ' (redirects are not followed)' : '';
  return { ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `${what} answered ${status}${why}${said}` };
}
