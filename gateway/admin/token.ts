/** The admin endpoint's bearer token: read once at start, compared in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

/** Tokens shorter than this are refused at start: guessable. */
export const adminTokenCharsMin = 16;

/** The token in `text` (a file's content; one trailing newline dropped). */
export function parseAdminToken(text: string, file: string): string {
  const token = text.replace(/\r?\n$/, '');
  if (token.length < adminTokenCharsMin || /\s/.test(token)) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `admin.tokenFile ${file}: the token must be one line of at least ${adminTokenCharsMin} characters without spaces`);
  }
  return token;
}

/** Whether an `Authorization` header carries `Bearer TOKEN`; the compare takes the same time whatever matches. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  // Hashing first gives equal lengths, so timingSafeEqual reveals neither the content nor the length.
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(token)) && m !== null;
}
