// The group's part in deleting a temporary group chat's media at the right
// time (the whole rule: src/user/media-holds.ts). The uploader's object counts
// the group as ONE holder of each media message it posts; the group keeps the
// real set: every member at post time (each member's object releases once its
// inbox copy is gone, the sender's own copy for its other devices included),
// or, for a message posted while the group was permanent, its history. When
// the set is empty the group releases the message to the uploader, with its
// disappearing time if it has one.
//
// The group log's own copy is not a holder: a member releases only after the
// hand-off that gave it the message succeeded, so once every member released,
// no outbox row will read that log entry again (purgeDelivered drops it).
// Members who leave still hold what they were sent before, and release it.
// Used by the GroupObject inside its write transactions.
import type { Outbox } from "../outbox";
import { mediaIdsOf } from "../user/media";
import { MEDIA_RELEASE, type MediaReleasePayload } from "../user/media-holds";
import type { Envelope } from "../user/chat";

export const GROUP_MEDIA_SCHEMA = `
  -- Media messages whose copies are still held somewhere, and by whom
  -- (user:<member>, or 'history' for a permanent message).
  CREATE TABLE media_msgs (msg TEXT PRIMARY KEY, sender TEXT NOT NULL, expires_at INTEGER);
  CREATE TABLE media_holders (msg TEXT NOT NULL, holder TEXT NOT NULL, PRIMARY KEY (msg, holder));
`;

/** The holder name of the group's permanent history. */
export const HISTORY_HOLDER = "history";

export class GroupMedia {
  constructor(
    private readonly sql: SqlStorage,
    private readonly outbox: Outbox,
  ) {}

  /** A post entered the log (stamped with the group's retention); `members` get a copy. */
  posted(message: Envelope, members: readonly string[]): void {
    if (mediaIdsOf(message).length === 0) return;
    this.sql.exec("INSERT OR IGNORE INTO media_msgs (msg, sender, expires_at) VALUES (?, ?, ?)", message.msg, message.from, message.expiresAt ?? null);
    const holders = message.permanent ? [HISTORY_HOLDER] : members.map((m) => `user:${m}`);
    this.sql.exec("INSERT OR IGNORE INTO media_holders (msg, holder) SELECT ?, value FROM json_each(?)", message.msg, JSON.stringify(holders));
  }

  /**
   * `holder` (a member's key, or HISTORY_HOLDER) holds no copy of these
   * messages any more. Idempotent: a holder already gone, or a message this
   * group does not track, changes nothing.
   */
  released(holder: string, msgs: readonly string[], now: number): void {
    for (const msg of msgs) {
      const had = this.sql.exec("SELECT 1 FROM media_holders WHERE msg = ? AND holder = ?", msg, holder).toArray().length > 0;
      if (!had) continue;
      this.sql.exec("DELETE FROM media_holders WHERE msg = ? AND holder = ?", msg, holder);
      if (this.sql.exec("SELECT 1 FROM media_holders WHERE msg = ? LIMIT 1", msg).toArray().length > 0) continue;
      const row = this.sql.exec<{ sender: string; expires_at: number | null }>("SELECT sender, expires_at FROM media_msgs WHERE msg = ?", msg).toArray()[0];
      this.sql.exec("DELETE FROM media_msgs WHERE msg = ?", msg);
      if (!row) continue;
      const payload: MediaReleasePayload = { msgs: [msg] };
      if (row.expires_at !== null) payload.expiresAt = row.expires_at;
      this.outbox.enqueue(`user:${row.sender}`, MEDIA_RELEASE, payload, now);
    }
  }
}
