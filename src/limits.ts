// Every limit the server enforces, in one place, used by code, tests and docs.
// Units are in the names.

/** Largest text frame a socket accepts (UTF-8 bytes). */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Largest `text` of a message (UTF-16 code units, as JS counts `length`). */
export const MAX_TEXT_CHARS = 16_384;
/** Largest JSON body accepted by the HTTP API (bytes). */
export const MAX_JSON_BODY_BYTES = 64 * 1024;
/** Ids: users, devices, groups, client message ids. */
export const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const ID_RULE = "must be 1-64 characters of A-Z a-z 0-9 _ . -";
/**
 * Ids that go into URL paths: user ids, and device ids in /v1/keys/:device. "." and
 * ".." are refused there: a path cannot carry them (dot-segments, even percent-encoded).
 */
export const PATH_ID_PATTERN = /^(?!\.\.?$)[A-Za-z0-9_.-]{1,64}$/;
export const PATH_ID_RULE = 'must be 1-64 characters of A-Z a-z 0-9 _ . - (not "." or "..")';

/** Devices one user may have connected at the same time (close 4009 past it). */
export const MAX_DEVICES_PER_USER = 5;

// ---- presence, typing, rate limits (src/user/presence.ts, src/user/ratelimit.ts) ----

/** A connected user is online while their last user-driven frame is younger than this (clients send `active` every ~5 s). */
export const ONLINE_WINDOW_MS = 20_000;
/** Last seen is written to SQLite at most this often while the user is active, and always when they go offline. */
export const LAST_SEEN_WRITE_INTERVAL_MS = 5_000;
/** A `watch` lasts this long unless the device sends it again. */
export const WATCH_TTL_MS = 60_000;
/** Users one `watch` frame may name (it replaces the device's previous list). */
export const MAX_WATCHED_USERS = 100;
/** Presence changes of one user reach its watchers at most once per this interval (ms). */
export const PRESENCE_COALESCE_MS = 1_000;
/** A typing `on` the client did not turn off expires by itself on the receiving side (documented, client-enforced). */
export const TYPING_TIMEOUT_MS = 10_000;
/** Presence RPCs (watch registrations, pushes to watchers) one object runs at once, and how many may wait. */
export const PRESENCE_RPC_CONCURRENCY = 6;
export const PRESENCE_RPC_QUEUE = 1_000;
/** Typing relays one object runs at once; past that they are dropped (a stale typing is worthless). */
export const TYPING_RPC_CONCURRENCY = 4;
/**
 * Load shedding: an object is busy, and relays no typing and defers presence,
 * while any of these holds: this many frames are being handled at once, this
 * many outbox rows wait (messages and receipts are backing up), or this many
 * presence RPCs wait for a slot.
 */
export const SHED_FRAMES_IN_FLIGHT = 16;
export const SHED_OUTBOX_BACKLOG = 200;
export const SHED_RPC_BACKLOG = 200;

/** Per-device token buckets (frames per second, burst). Kept in memory per object: hibernation refills them. */
export const RATE_LIMITS = {
  /** send, edit, delete */
  send: { perSecond: 30, burst: 60 },
  /** typing, active */
  signal: { perSecond: 5, burst: 10 },
  /** watch: each one may fan out to 100 objects */
  watch: { perSecond: 1, burst: 5 },
  /**
   * ack: cumulative and cheap, and a dropped ack stalls the sender's delivered
   * tick, so a client acking every message of a busy chat stays well inside.
   */
  ack: { perSecond: 200, burst: 400 },
  /** read and anything else */
  other: { perSecond: 50, burst: 100 },
} as const;
/**
 * All of a user's devices together get this many times one device's rate and
 * burst, and share one strike count: a new device id brings no fresh burst and
 * no fresh strikes.
 */
export const USER_RATE_SHARE = 2;
/**
 * HTTP calls, per user, in the user's object (memory, like the socket's): writes
 * (settings, groups, profile, privacy, keys; not media uploads), and claims of
 * one user's key bundles by one caller (each takes a one-time prekey per device).
 */
export const HTTP_RATE_LIMITS = {
  write: { perSecond: 10, burst: 100 },
  claim: { perSecond: 1 / 6, burst: 10 },
} as const;
/** A device answered `rate_limited` this many times within the window is closed with 4008. */
export const FLOOD_STRIKES = 50;
export const FLOOD_WINDOW_MS = 10_000;

/** Undelivered inbox entries, idempotency records and receipt state live this long. */
export const RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
/** A device not seen for this long stops holding inbox entries back. */
export const DEVICE_STALE_MS = RETENTION_MS;
/** How often the housekeeping alarm purges expired state. */
export const HOUSEKEEPING_INTERVAL_MS = 6 * 60 * 60 * 1000;

/** Outbox retry backoff: first retry after this, doubling, capped below. */
export const OUTBOX_RETRY_BASE_MS = 1_000;
/**
 * Rows queued now are drained at once; the alarm is only the backstop for an
 * object evicted in the middle of that drain, so it can wait a while. Every
 * alarm that fires for nothing is a write (and locally a disk sync): at 1 s a
 * busy object paid one per second.
 */
export const OUTBOX_BACKSTOP_MS = 5_000;
export const OUTBOX_RETRY_MAX_MS = 5 * 60 * 1000;
/** Entries handed to one callee in one RPC call. */
export const OUTBOX_BATCH_SIZE = 100;

/** Dev tokens: default and longest lifetime (seconds). */
export const DEV_TOKEN_TTL_SECONDS = 24 * 60 * 60;
export const DEV_TOKEN_MAX_TTL_SECONDS = 30 * 24 * 60 * 60;
/** Display names (characters). */
export const MAX_DISPLAY_NAME_CHARS = 100;

/** The longest disappearing-message timer a chat may choose (seconds): a year. Any whole number from 1 up is allowed. */
export const MAX_DISAPPEAR_AFTER_SECONDS = 365 * 86_400;
/** The sender may edit a message this long after sending it. */
export const EDIT_WINDOW_MS = 15 * 60 * 1000;
/** The sender may delete a message for everyone this long after sending it. */
export const DELETE_WINDOW_MS = 48 * 60 * 60 * 1000;
/** History paging: default and largest page. */
export const HISTORY_PAGE_DEFAULT = 50;
export const HISTORY_PAGE_MAX = 100;
// ---- media (src/routes/media.ts, src/media/*) --------------------------------

const MiB = 1024 * 1024;
/** Largest image in one POST /v1/media request (and in a multipart upload). */
export const MAX_IMAGE_BYTES = 16 * MiB;
/** Largest video or audio in one POST /v1/media request. */
export const MAX_AV_BYTES = 64 * MiB;
/** Largest video through the multipart upload (Worker bodies stop at 100 MB, so big files go in parts). */
export const MAX_MULTIPART_VIDEO_BYTES = 1024 * MiB;

export type MediaKind = "image" | "video" | "audio" | "encrypted";
/**
 * End-to-end encrypted attachments are uploaded as this type: AES-256-GCM
 * ciphertext (nonce 12 + tag 16 bytes around the file), which no magic number
 * can check. Allowed only in e2ee messages (`e2ee.attachments`), never as a
 * plaintext message's `media`.
 */
export const E2EE_MEDIA_TYPE = "application/octet-stream";
/** What AES-256-GCM adds to an encrypted file (bytes): nonce 12 + tag 16. */
export const E2EE_MEDIA_OVERHEAD_BYTES = 28;
/**
 * The media types the server stores, with their largest size in one request
 * (`maxBytes`) and through a multipart upload (`maxMultipartBytes`). Anything
 * else is refused with bad_media (415).
 */
export const MEDIA_TYPES: Readonly<Record<string, { kind: MediaKind; maxBytes: number; maxMultipartBytes: number }>> = {
  "image/jpeg": { kind: "image", maxBytes: MAX_IMAGE_BYTES, maxMultipartBytes: MAX_IMAGE_BYTES },
  "image/png": { kind: "image", maxBytes: MAX_IMAGE_BYTES, maxMultipartBytes: MAX_IMAGE_BYTES },
  "image/webp": { kind: "image", maxBytes: MAX_IMAGE_BYTES, maxMultipartBytes: MAX_IMAGE_BYTES },
  "image/gif": { kind: "image", maxBytes: MAX_IMAGE_BYTES, maxMultipartBytes: MAX_IMAGE_BYTES },
  "video/mp4": { kind: "video", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_MULTIPART_VIDEO_BYTES },
  "video/webm": { kind: "video", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_MULTIPART_VIDEO_BYTES },
  "video/quicktime": { kind: "video", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_MULTIPART_VIDEO_BYTES },
  "audio/ogg": { kind: "audio", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_AV_BYTES },
  "audio/mpeg": { kind: "audio", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_AV_BYTES },
  "audio/mp4": { kind: "audio", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_AV_BYTES },
  "audio/aac": { kind: "audio", maxBytes: MAX_AV_BYTES, maxMultipartBytes: MAX_AV_BYTES },
  // The ciphertext of any file above: the largest plaintext limits plus the GCM overhead.
  [E2EE_MEDIA_TYPE]: {
    kind: "encrypted",
    maxBytes: MAX_AV_BYTES + E2EE_MEDIA_OVERHEAD_BYTES,
    maxMultipartBytes: MAX_MULTIPART_VIDEO_BYTES + E2EE_MEDIA_OVERHEAD_BYTES,
  },
};

/** Multipart parts: R2 wants every part but the last to be at least 5 MiB and all the same size. */
export const MIN_MEDIA_PART_BYTES = 5 * MiB;
/** Default part size; a client may ask for any size between the minimum and the maximum. */
export const DEFAULT_MEDIA_PART_BYTES = 8 * MiB;
/** Largest part: one part is one Worker request body (100 MB cap on common plans). */
export const MAX_MEDIA_PART_BYTES = 64 * MiB;

/** A signed media URL is valid for at most this long (ms) ... */
export const MEDIA_URL_TTL_MS = 24 * 60 * 60 * 1000;
/** ... and its expiry is rounded down to a multiple of this (ms), so URLs signed
 * within the same hour are identical and a browser cache keeps hitting. */
export const MEDIA_URL_GRANULARITY_MS = 60 * 60 * 1000;
/** Media uploaded but never sent in a message is deleted this long (ms) after the upload finished. */
export const MEDIA_ORPHAN_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * Media of a temporary chat is deleted this long (ms) after the LAST retained
 * copy of its message is gone (every device of every recipient acked it, or it
 * was purged): a device acknowledges a message before it fetches the bytes, and
 * the URL it was given (signed when the copy was pushed or replayed, so before
 * that moment) stays valid for up to MEDIA_URL_TTL_MS. Waiting as long means no
 * URL handed out for a retained copy ever points at deleted bytes.
 */
export const MEDIA_RELEASED_GRACE_MS = MEDIA_URL_TTL_MS;
/** A multipart upload not completed this long (ms) after it was created is aborted. */
export const MEDIA_UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;
/** A message's media thumbnail (client-made, base64 in the message): decoded bytes. */
export const MAX_THUMB_BYTES = 8 * 1024;
/** Members of one group, the creator included (`group_full` past it). */
export const MAX_GROUP_MEMBERS = 200;
/** Group names (characters). */
export const MAX_GROUP_NAME_CHARS = 100;
/** Users named in one create or add-members request (more is bad_frame; past the cap is group_full). */
export const MAX_GROUP_BATCH_USERS = 1_000;
/** End-to-end encryption: devices with published keys one user may have. */
export const MAX_KEY_DEVICES_PER_USER = 16;
/** One-time prekeys one upload carries, and one device holds on the server. */
export const MAX_ONE_TIME_PREKEYS = 100;
/**
 * Largest base64 ciphertext in an `e2ee` field (characters). The whole frame is
 * still at most MAX_FRAME_BYTES, so a map for many devices leaves less per device.
 */
export const MAX_E2EE_CIPHERTEXT_CHARS = MAX_FRAME_BYTES;
/** Entries in an `e2ee.recipients` map: every key device of the peer and of the sender. */
export const MAX_E2EE_RECIPIENTS = 2 * MAX_KEY_DEVICES_PER_USER;
/** Encrypted uploads one e2ee message may name in `e2ee.attachments`. */
export const MAX_E2EE_ATTACHMENTS = 10;
