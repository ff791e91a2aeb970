// The one error type of the e2ee core. `code` says what the client should do:
// show "message could not be decrypted" (tampered, replayed, not_for_device),
// fetch keys (no_session), wait for a sender key (no_sender_key), or warn the
// user (untrusted_identity, bad_signature).

export type E2eeErrorCode =
  /** Bytes that do not parse as a message of this version. */
  | "malformed"
  /** Authentication failed: the ciphertext, its header or its associated data was changed. */
  | "tampered"
  /** A message whose key was already used (or discarded): a replay or a duplicate. */
  | "replayed"
  /** The message skips more than MAX_SKIP keys ahead. */
  | "too_far_ahead"
  /** No session with that device, and the message does not start one. */
  | "no_session"
  /** The message names prekeys this device does not hold (already used, or not its own). */
  | "unknown_prekey"
  /** The message is not addressed to this device. */
  | "not_for_device"
  /** A bundle's signed prekey signature does not verify. */
  | "bad_signature"
  /** A group message from a sender whose key this device has not received (yet). */
  | "no_sender_key"
  /** Decrypted media whose SHA-256 is not the one the message promised. */
  | "hash_mismatch"
  /** Something the caller passed is not usable (bad state, bad key sizes). */
  | "invalid";

export class E2eeError extends Error {
  constructor(
    readonly code: E2eeErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "E2eeError";
  }
}
