/**
 * The limits of the HTTP long-poll carrier, in one place: what one body may hold (checked by the
 * decoder before any work), what one bundle is built up to (the BundleChannel), and what each side
 * keeps in memory (its outgoing queue and its reorder window). Units are last in every name.
 */
import { frameBytesMaxDefault } from '../codec.js';
import { ErrorCode, FerryError } from '../errors.js';

/** What a received body may be; refused (LONGPOLL_BODY_TOO_LARGE) past any of these. */
export interface BodyLimits {
  /** bytes of one HTTP body, at most: checked before the CBOR is decoded */
  bodyBytesMax: number;
  /** messages in one body, at most */
  bundleMessagesMax: number;
  /** bytes of one message (one encoded frame body), at most */
  messageBytesMax: number;
}

/** What one outgoing bundle is built up to (BundleChannel.nextBundle). */
export interface BundleLimits {
  /** messages in one bundle, at most */
  bundleMessagesMax: number;
  /** message bytes in one bundle (the sum of their lengths), at most; at least messageBytesMax so any message fits */
  bundleBytesMax: number;
}

/** What a BundleChannel keeps in memory. */
export interface ChannelLimits extends BundleLimits {
  /** bytes of one message, at most (send refuses a longer one) */
  messageBytesMax: number;
  /** messages queued and not yet acknowledged by the peer, at most: send refuses past it (back-pressure) */
  queueMessagesMax: number;
  /** bytes of those messages, at most */
  queueBytesMax: number;
  /** messages received out of order and held until the gap before them fills, at most */
  reorderMessagesMax: number;
  /** bytes of those messages, at most */
  reorderBytesMax: number;
}

/** The carrier's own version, in every body (`v`); independent of the frame protocol's version. */
export const longpollVersion = 1;

/** A session ID: 1 to 64 characters of [A-Za-z0-9_-] (the gateway draws it; URL- and header-safe). */
export const sessionIdCharsMax = 64;
/** Selective ranges in one body's acknowledgement, at most (a side reports the lowest ones first). */
export const ackRangesMax = 64;
/** A termination's code (an ErrorCode) and reason, at most, in characters. */
export const endCodeCharsMax = 64;
export const endReasonCharsMax = 256;

/**
 * Bytes a body needs besides its messages' bytes: the map with every field at its largest
 * (session ID, numbers of 9 bytes, ackRangesMax ranges, a termination), rounded up.
 */
export const bodyOverheadBytes = 2048;
/** Bytes one message needs in a body besides its own: the pair's array header, its number, the byte string's header. */
export const messageOverheadBytes = 16;

export const channelLimitsDefault: ChannelLimits = {
  messageBytesMax: frameBytesMaxDefault,
  bundleMessagesMax: 256,
  bundleBytesMax: 2 * frameBytesMaxDefault,
  queueMessagesMax: 4096,
  queueBytesMax: 16 * frameBytesMaxDefault,
  reorderMessagesMax: 1024,
  reorderBytesMax: 4 * frameBytesMaxDefault,
};

/** The body a bundle built within `l` can need, at most: what the peer's decoder must accept. */
export function bodyBytesFor(l: BundleLimits): number {
  return bodyOverheadBytes + l.bundleBytesMax + l.bundleMessagesMax * messageOverheadBytes;
}

/** The body limits a receiver uses for a peer whose bundles are built within `l`. */
export function bodyLimitsFor(l: BundleLimits & { messageBytesMax: number }): BodyLimits {
  return { bodyBytesMax: bodyBytesFor(l), bundleMessagesMax: l.bundleMessagesMax, messageBytesMax: l.messageBytesMax };
}

export const bodyLimitsDefault: BodyLimits = bodyLimitsFor(channelLimitsDefault);

/** Throws CONFIG_INVALID unless every limit is a positive integer and a bundle can hold any one message. */
export function checkChannelLimits(l: ChannelLimits): void {
  for (const [key, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new FerryError(ErrorCode.CONFIG_INVALID, `long-poll limit ${key} must be a positive integer, got ${String(v)}`);
  }
  // A message longer than a bundle could never be sent; one longer than the queue could never be queued.
  if (l.bundleBytesMax < l.messageBytesMax) throw new FerryError(ErrorCode.CONFIG_INVALID, `long-poll bundleBytesMax (${l.bundleBytesMax}) must be at least messageBytesMax (${l.messageBytesMax})`);
  if (l.queueBytesMax < l.messageBytesMax) throw new FerryError(ErrorCode.CONFIG_INVALID, `long-poll queueBytesMax (${l.queueBytesMax}) must be at least messageBytesMax (${l.messageBytesMax})`);
}
