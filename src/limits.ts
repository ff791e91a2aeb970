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

/** Devices one user may have connected at the same time (close 4009 past it). */
export const MAX_DEVICES_PER_USER = 5;

/** Undelivered inbox entries, idempotency records and receipt state live this long. */
export const RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
/** A device not seen for this long stops holding inbox entries back. */
export const DEVICE_STALE_MS = RETENTION_MS;
/** How often the housekeeping alarm purges expired state. */
export const HOUSEKEEPING_INTERVAL_MS = 6 * 60 * 60 * 1000;

/** Outbox retry backoff: first retry after this, doubling, capped below. */
export const OUTBOX_RETRY_BASE_MS = 1_000;
export const OUTBOX_RETRY_MAX_MS = 5 * 60 * 1000;
/** Entries handed to one callee in one RPC call. */
export const OUTBOX_BATCH_SIZE = 100;
/** Replay after connect is sent in chunks of this many entries. */
export const REPLAY_CHUNK = 200;

/** Dev tokens: default and longest lifetime (seconds). */
export const DEV_TOKEN_TTL_SECONDS = 24 * 60 * 60;
export const DEV_TOKEN_MAX_TTL_SECONDS = 30 * 24 * 60 * 60;
/** Display names (characters). */
export const MAX_DISPLAY_NAME_CHARS = 100;

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
