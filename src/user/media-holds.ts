// Who still holds a copy of a temporary chat's media message, across objects.
//
// Media of a temporary chat may go only once NO retained copy of its message is
// left anywhere: the sender's own inbox entry (for its other devices), the
// peer's inbox entry (until every device of the peer acked it, or the 30-day
// purge), and in a group every member's inbox entry. Those copies live in other
// objects and vanish on their own schedules (acks, the 30-day purge,
// disappearing, delete for everyone), so the uploader keeps a set of holders per
// message and each holder tells it, through its durable outbox, when its last
// copy is gone (`media_release`). A set, not a counter: a retried hand-off
// removes a holder that is already gone, which changes nothing.
//
// - Uploader side (`media_holders`): at send, the holders of a one-to-one
//   message are `user:<self>` and `user:<peer>`; of a group message the group
//   (`group:<id>`), which keeps its own per-member set (src/group/media.ts) and
//   releases once for all of them. When the set is empty the message's media
//   references end a grace period later (MEDIA_RELEASED_GRACE_MS, see
//   limits.ts), and the ledger's alarm deletes what no other message refers to.
// - Holder side (`media_held`): an inbox entry of a temporary message with
//   media records where its release goes. After any removal from the inbox,
//   sweepHolds() finds the records whose entry is gone and queues the releases
//   in the same transaction as the removal.
//
// Permanent messages are not counted: their history keeps them (1:1: forever
// unless they disappear or are deleted for everyone; groups: the group holds
// them as `history`).
import { MEDIA_RELEASED_GRACE_MS } from "../limits";
import type { Outbox } from "../outbox";

/** The hand-off op: `{msgs, expiresAt?}` — the sender no longer holds these messages. */
export const MEDIA_RELEASE = "media_release";

export interface MediaReleasePayload {
  msgs: string[];
  /** From a group: the messages' disappearing time, when they have one (their media goes then, no grace). */
  expiresAt?: number;
}

export const MEDIA_HOLDS_SCHEMA = `
  -- Uploader side: objects that still hold a copy of a temporary message of
  -- this user that carries media (user:<id> or group:<id>).
  CREATE TABLE media_holders (msg TEXT NOT NULL, holder TEXT NOT NULL, PRIMARY KEY (msg, holder));
  -- Holder side: inbox entries of temporary messages with media, and the
  -- object to tell (the sender's user key, or the group's key) once the entry is gone.
  CREATE TABLE media_held (msg TEXT PRIMARY KEY, target TEXT NOT NULL);
`;

/** Uploader side, inside the send transaction: these objects will hold a copy of `msg`. */
export function expectHolders(sql: SqlStorage, msg: string, holders: readonly string[]): void {
  for (const h of holders) sql.exec("INSERT OR IGNORE INTO media_holders (msg, holder) VALUES (?, ?)", msg, h);
}

/**
 * Uploader side: `holder` holds no copy of these messages any more. Idempotent:
 * a holder already gone is ignored. When a message's last holder goes, its
 * media references end MEDIA_RELEASED_GRACE_MS from now (or at `expiresAt` if
 * earlier: a disappeared message's media goes with it). Returns whether a
 * reference got an end (the alarm must look at it).
 */
export function holderReleased(sql: SqlStorage, holder: string, msgs: readonly string[], now: number, expiresAt?: number): boolean {
  let ended = false;
  for (const msg of msgs) {
    const had = sql.exec("SELECT 1 FROM media_holders WHERE msg = ? AND holder = ?", msg, holder).toArray().length > 0;
    if (!had) continue;
    sql.exec("DELETE FROM media_holders WHERE msg = ? AND holder = ?", msg, holder);
    if (sql.exec("SELECT 1 FROM media_holders WHERE msg = ? LIMIT 1", msg).toArray().length > 0) continue;
    const end = Math.min(now + MEDIA_RELEASED_GRACE_MS, expiresAt ?? Infinity);
    sql.exec("UPDATE media_refs SET expires_at = MIN(COALESCE(expires_at, ?1), ?1) WHERE msg = ?2", end, msg);
    ended = true;
  }
  return ended;
}

/** Uploader side: the message is gone for good (deleted for everyone): nobody's release matters any more. */
export function forgetHolders(sql: SqlStorage, msg: string): void {
  sql.exec("DELETE FROM media_holders WHERE msg = ?", msg);
}

/** Holder side, with the inbox append: this object now holds `msg`; its release goes to `target`. */
export function holdMedia(sql: SqlStorage, msg: string, target: string): void {
  sql.exec("INSERT OR IGNORE INTO media_held (msg, target) VALUES (?, ?)", msg, target);
}

/**
 * Holder side, after anything left the inbox (inside that transaction): every
 * held message whose entry is gone is released, to this user's own ledger at
 * once or through the outbox to the sender's object or the group. Returns
 * whether anything was released (the caller drains the outbox and reschedules
 * the alarm).
 */
export function sweepHolds(sql: SqlStorage, outbox: Outbox, self: string, now: number): boolean {
  const gone = sql
    .exec<{ msg: string; target: string }>(
      `SELECT msg, target FROM media_held h
       WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.msg = h.msg AND i.kind = 'message')`,
    )
    .toArray();
  if (gone.length === 0) return false;
  const byTarget = new Map<string, string[]>();
  for (const g of gone) {
    sql.exec("DELETE FROM media_held WHERE msg = ?", g.msg);
    byTarget.set(g.target, [...(byTarget.get(g.target) ?? []), g.msg]);
  }
  const own = `user:${self}`;
  for (const [target, msgs] of byTarget) {
    if (target === own) holderReleased(sql, own, msgs, now);
    else outbox.enqueue(target, MEDIA_RELEASE, { msgs } satisfies MediaReleasePayload, now);
  }
  return true;
}
