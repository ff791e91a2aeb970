// The key directory of one user (end-to-end encryption): the public keys each
// of the user's devices published, and their one-time prekeys. Lives in the
// user's object, so claims are serialized: a claim reads and deletes a
// one-time prekey in one synchronous step (no await), and no prekey is ever
// handed out twice, even to concurrent callers. Called by the UserObject's
// key RPCs (src/routes/keys.ts) and by the send check of src/user/e2ee.ts.
// Signatures are verified in the Worker before publish() is called.
import { AppError, fail, type Result } from "../errors";
import { MAX_KEY_DEVICES_PER_USER, MAX_ONE_TIME_PREKEYS, RETENTION_MS } from "../limits";
import type { KeyBundle, PublishKeysBody } from "../protocol";

type DeviceRow = {
  device: string;
  identity_key: string;
  signing_key: string;
  spk_id: number;
  spk: string;
  spk_signature: string;
};

export class KeyDirectory {
  constructor(
    private readonly sql: SqlStorage,
    private readonly transaction: <T>(fn: () => T) => T,
  ) {}

  /**
   * Publishes a device's keys. The same identity and signing keys again = a
   * refill (the signed prekey is replaced, one-time prekeys are added); other
   * keys = a reinstalled device (its old one-time prekeys are dropped).
   *
   * A refill never brings back what the device's keys already were: a one-time
   * prekey handed out before is skipped (two callers would share it), and a
   * signed prekey the device has replaced is ignored (a stale upload, say an
   * HTTP retry, would roll the rotation back).
   */
  publish(device: string, body: PublishKeysBody, now: number): Result<{ device: string; count: number }> {
    return this.transaction(() => {
      const existing = this.row(device);
      const same = existing !== null && existing.identity_key === body.identityKey && existing.signing_key === body.signingKey;
      if (existing === null && this.current().length >= MAX_KEY_DEVICES_PER_USER) {
        return fail("forbidden", `at most ${MAX_KEY_DEVICES_PER_USER} devices with keys; remove one first (DELETE /v1/keys/:device)`);
      }
      const held = same ? this.count(device) : 0;
      const known = (table: "one_time_prekeys" | "claimed_prekeys", id: number) =>
        this.sql.exec(`SELECT 1 FROM ${table} WHERE device = ? AND key_id = ?`, device, id).toArray().length > 0;
      const added = body.oneTimePrekeys.filter((k) => !same || (!known("one_time_prekeys", k.id) && !known("claimed_prekeys", k.id)));
      if (held + added.length > MAX_ONE_TIME_PREKEYS) {
        return fail("bad_frame", `oneTimePrekeys: the server holds at most ${MAX_ONE_TIME_PREKEYS} per device (${held} held, ${added.length} new)`);
      }
      let spk = body.signedPrekey;
      if (same && existing.spk_id !== spk.id) {
        const retired = this.sql.exec("SELECT 1 FROM retired_spks WHERE device = ? AND spk_id = ?", device, spk.id).toArray().length > 0;
        if (retired) spk = { id: existing.spk_id, publicKey: existing.spk, signature: existing.spk_signature };
        else this.sql.exec("INSERT OR IGNORE INTO retired_spks (device, spk_id) VALUES (?, ?)", device, existing.spk_id);
      }
      // Checks above, writes below: a refusal leaves the directory as it was.
      if (!same) this.forget(device);
      // Handed out over 30 days ago: no retry of an upload comes that late.
      this.sql.exec("DELETE FROM claimed_prekeys WHERE device = ? AND claimed_at < ?", device, now - RETENTION_MS);
      this.sql.exec(
        `INSERT INTO key_devices (device, identity_key, signing_key, spk_id, spk, spk_signature, published_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(device) DO UPDATE SET identity_key = excluded.identity_key, signing_key = excluded.signing_key,
           spk_id = excluded.spk_id, spk = excluded.spk, spk_signature = excluded.spk_signature,
           published_at = CASE WHEN key_devices.identity_key = excluded.identity_key THEN key_devices.published_at ELSE excluded.published_at END,
           updated_at = excluded.updated_at`,
        device,
        body.identityKey,
        body.signingKey,
        spk.id,
        spk.publicKey,
        spk.signature,
        now,
        now,
      );
      for (const k of added) {
        this.sql.exec("INSERT OR REPLACE INTO one_time_prekeys (device, key_id, public_key) VALUES (?, ?, ?)", device, k.id, k.publicKey);
      }
      return { ok: true as const, value: { device, count: this.count(device) } };
    });
  }

  /**
   * One bundle per current device (or only `devices`), each with one one-time
   * prekey that is deleted as it is handed out; none when the device ran out.
   * Synchronous on purpose: nothing else runs between the read and the delete.
   */
  claim(devices?: string[]): KeyBundle[] {
    const wanted = devices ? new Set(devices) : null;
    const rows = this.sql.exec<DeviceRow>("SELECT * FROM key_devices ORDER BY device").toArray().filter((r) => !wanted || wanted.has(r.device));
    return this.transaction(() =>
      rows.map((r) => {
        const bundle: KeyBundle = {
          device: r.device,
          identityKey: r.identity_key,
          signingKey: r.signing_key,
          signedPrekey: { id: r.spk_id, publicKey: r.spk, signature: r.spk_signature },
        };
        const otk = this.sql
          .exec<{ key_id: number; public_key: string }>("SELECT key_id, public_key FROM one_time_prekeys WHERE device = ? ORDER BY key_id LIMIT 1", r.device)
          .toArray()[0];
        if (otk) {
          this.sql.exec("DELETE FROM one_time_prekeys WHERE device = ? AND key_id = ?", r.device, otk.key_id);
          this.sql.exec("INSERT OR REPLACE INTO claimed_prekeys (device, key_id, claimed_at) VALUES (?, ?, ?)", r.device, otk.key_id, Date.now());
          bundle.oneTimePrekey = { id: otk.key_id, publicKey: otk.public_key };
        }
        return bundle;
      }),
    );
  }

  /** The devices and their identity keys, claiming nothing (device lists, safety numbers). */
  identities(): Array<{ device: string; identityKey: string; signingKey: string }> {
    return this.sql
      .exec<DeviceRow>("SELECT device, identity_key, signing_key FROM key_devices ORDER BY device")
      .toArray()
      .map((r) => ({ device: r.device, identityKey: r.identity_key, signingKey: r.signing_key }));
  }

  /** One-time prekeys the server still holds for a device; null for a device without keys. */
  prekeyCount(device: string): number | null {
    return this.row(device) === null ? null : this.count(device);
  }

  /** Removes a device's keys: it stops being a current device. True if it had keys. */
  remove(device: string): boolean {
    return this.transaction(() => {
      const had = this.row(device) !== null;
      this.forget(device);
      this.sql.exec("DELETE FROM key_devices WHERE device = ?", device);
      return had;
    });
  }

  /** A device's one-time prekeys and its record of past keys (new identity keys, or removed). */
  private forget(device: string): void {
    this.sql.exec("DELETE FROM one_time_prekeys WHERE device = ?", device);
    this.sql.exec("DELETE FROM claimed_prekeys WHERE device = ?", device);
    this.sql.exec("DELETE FROM retired_spks WHERE device = ?", device);
  }

  /** The current devices: published keys, not removed. */
  current(): string[] {
    return this.sql.exec<{ device: string }>("SELECT device FROM key_devices ORDER BY device").toArray().map((r) => r.device);
  }

  private row(device: string): DeviceRow | null {
    return this.sql.exec<DeviceRow>("SELECT * FROM key_devices WHERE device = ?", device).toArray()[0] ?? null;
  }

  private count(device: string): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM one_time_prekeys WHERE device = ?", device).one().n;
  }
}

/** Throws the refusal of a Result as the project's error (the Worker's side of an RPC). */
export function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new AppError(r.code, r.message);
  return r.value;
}
