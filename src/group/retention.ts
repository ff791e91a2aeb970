// A group's retention: its settings (admins change them), the history of
// messages posted while it was permanent, disappearing messages, and edit and
// delete for everyone. Used by the GroupObject inside its transactions.
//
// The group decides the retention of every message posted to it: the post gets
// `permanent` / `expiresAt` here, whatever the sender's object assumed. Edits
// and deletions go out as group events through the log, so every member's
// object applies them in order with the messages.
import { msgIdFloor } from "../ids";
import { HISTORY_PAGE_DEFAULT } from "../limits";
import type { ChatSettings, ChatSettingsBody, Retention as RetentionKind } from "../protocol";
import { recordAmendment, type Amendment, type HistoryPage } from "../user/retention";
import { messageFrame, type Envelope } from "../user/chat";
import { earliest } from "../sqlite";
import { LOG_EXPIRY_QUERY, type GroupLog } from "./log";
import type { Roster } from "./roster";

/** When the next disappearing message is due, in the history or the log. */
const EXPIRY_QUERIES = ["SELECT MIN(expires_at) AS t FROM history WHERE expires_at IS NOT NULL", LOG_EXPIRY_QUERY] as const;

export class GroupRetention {
  constructor(
    private readonly sql: SqlStorage,
    private readonly log: GroupLog,
    private readonly roster: Roster,
    /** Messages left the history (disappeared or deleted): it no longer holds their media. */
    private readonly historyRemoved: (msgs: string[], now: number) => void = () => {},
  ) {}

  settings(group: string): ChatSettings {
    const changedAt = this.log.meta("settings_changed_at");
    const disappear = this.log.meta("disappear_s");
    return {
      chat: `group:${group}`,
      retention: (this.log.meta("retention") === "permanent" ? "permanent" : "temporary") as RetentionKind,
      disappearAfterSeconds: disappear === null || disappear === "" ? null : Number(disappear),
      changedAt: changedAt === null ? null : Number(changedAt),
      changedBy: this.log.meta("settings_changed_by"),
    };
  }

  /** An admin changes the settings: recorded and told to every member as an event. */
  change(group: string, caller: string, body: ChatSettingsBody, now: number): ChatSettings {
    this.roster.requireAdmin(caller);
    const current = this.settings(group);
    const retention = body.retention ?? current.retention;
    const disappearAfterSeconds = body.disappearAfterSeconds !== undefined ? body.disappearAfterSeconds : current.disappearAfterSeconds;
    // Nothing changes: no event to 200 members (a repeated PUT would fill their inboxes).
    if (retention === current.retention && disappearAfterSeconds === current.disappearAfterSeconds) return current;
    this.log.setMeta("retention", retention);
    this.log.setMeta("disappear_s", disappearAfterSeconds === null ? "" : String(disappearAfterSeconds));
    this.log.setMeta("settings_changed_at", String(now));
    this.log.setMeta("settings_changed_by", caller);
    this.log.append({ kind: "event", event: { kind: "retention_changed", by: caller, retention, disappearAfterSeconds } }, this.roster.users(), now);
    return this.settings(group);
  }

  /** Stamps a post with the group's retention and keeps it in history when permanent. */
  stamp(group: string, message: Envelope): void {
    const s = this.settings(group);
    delete message.permanent;
    delete message.expiresAt;
    if (s.retention === "permanent") message.permanent = true;
    if (s.disappearAfterSeconds) message.expiresAt = message.ts + s.disappearAfterSeconds * 1000;
    if (!message.permanent) return;
    this.sql.exec(
      "INSERT INTO history (msg, sender, frame, ts, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(msg) DO NOTHING",
      message.msg,
      message.from,
      JSON.stringify(messageFrame(message, { group })),
      message.ts,
      message.expiresAt ?? null,
    );
  }

  /**
   * History for a member, newest first. A member reads what was posted since it
   * joined (as in WhatsApp, joining does not open the group's past).
   */
  history(caller: string, before: string | undefined, limit: number | undefined): HistoryPage {
    this.roster.requireMember(caller);
    const joined = this.sql.exec<{ joined_at: number }>("SELECT joined_at FROM members WHERE user = ?", caller).one().joined_at;
    const n = limit ?? HISTORY_PAGE_DEFAULT;
    // A message's ts is the time its id was made (src/user/chat.ts send), so `msg >= floor`
    // keeps the same rows as `ts >= joined` and makes the read a range of the key: a member
    // who joined late no longer walks the group's whole history when its page is short.
    const from = msgIdFloor(joined);
    const rows = (
      before
        ? this.sql.exec<{ msg: string; frame: string }>(
            "SELECT msg, frame FROM history WHERE msg >= ? AND msg < ? AND ts >= ? ORDER BY msg DESC LIMIT ?",
            from,
            before,
            joined,
            n,
          )
        : this.sql.exec<{ msg: string; frame: string }>("SELECT msg, frame FROM history WHERE msg >= ? AND ts >= ? ORDER BY msg DESC LIMIT ?", from, joined, n)
    ).toArray();
    const last = rows[rows.length - 1];
    return { frames: rows.map((r) => r.frame), nextBefore: rows.length === n && last ? last.msg : null };
  }

  /**
   * The sender edits or deletes its message (its own object checked the time
   * window). Applied to the history and to log entries still being fanned out,
   * then told as an event to the members who got the message (and to the
   * sender). Unknown or foreign messages are ignored.
   */
  amend(group: string, user: string, a: Amendment, now: number): void {
    const row = this.sql.exec<{ sender: string; amended_n: number; deleted: number }>("SELECT sender, amended_n, deleted FROM messages WHERE msg = ?", a.msg).toArray()[0];
    if (!row || row.sender !== user || a.by !== user || !recordAmendment(this.sql, "messages", row, a)) return;
    const h = this.sql.exec<{ frame: string }>("SELECT frame FROM history WHERE msg = ?", a.msg).toArray()[0];
    if (a.kind === "deleted") {
      this.sql.exec("DELETE FROM history WHERE msg = ?", a.msg);
      if (h) this.historyRemoved([a.msg], now);
      this.log.rewriteMessage(a.msg, () => null);
      // Edits still being fanned out lose their text too: the delete follows them.
      this.log.scrubEdits(a.msg);
    } else {
      // An encrypted edit leaves the message's ciphertext alone (it holds the media keys and
      // replyTo the edit's lacks): members reached later open it, then the edit event.
      const change = (m: Envelope) => {
        if (a.text !== undefined) m.text = a.text;
      };
      this.log.rewriteMessage(a.msg, (m) => (change(m), m));
      if (h) {
        const f = JSON.parse(h.frame) as Record<string, unknown>;
        if (a.text !== undefined) f.text = a.text;
        f.editedAt = a.ts;
        this.sql.exec("UPDATE history SET frame = ? WHERE msg = ?", JSON.stringify(f), a.msg);
      }
    }
    const event =
      a.kind === "deleted"
        ? ({ kind: "deleted", by: user, msg: a.msg } as const)
        : { kind: "edited" as const, by: user, msg: a.msg, ...(a.text !== undefined ? { text: a.text } : {}), ...(a.e2ee !== undefined ? { e2ee: a.e2ee } : {}) };
    // An edit, not to members who joined since: it would show them a message they
    // never had (msg_status holds the members counted at post time who stayed). A
    // delete to every member (one who left and came back may still hold a copy),
    // and to those who got the message and have left since (`departed`): "for
    // everyone" includes the copies the server still holds for them.
    const recipients =
      a.kind === "deleted"
        ? this.sql
            .exec<{ user: string }>("SELECT user FROM members UNION SELECT user FROM departed WHERE msg = ?", a.msg)
            .toArray()
            .map((r) => r.user)
        : this.sql
            .exec<{ user: string }>("SELECT user FROM members WHERE user = ? OR user IN (SELECT user FROM msg_status WHERE msg = ?) ORDER BY ord", user, a.msg)
            .toArray()
            .map((r) => r.user);
    this.log.append({ kind: "event", event }, recipients, now);
    if (a.kind === "deleted") this.sql.exec("DELETE FROM departed WHERE msg = ?", a.msg);
  }

  /** Deletes disappearing messages whose time has come from the history and the log. */
  purgeDisappeared(now: number): void {
    const gone = this.sql.exec<{ msg: string }>("SELECT msg FROM history WHERE expires_at IS NOT NULL AND expires_at <= ?", now).toArray();
    this.sql.exec("DELETE FROM history WHERE expires_at IS NOT NULL AND expires_at <= ?", now);
    if (gone.length > 0) this.historyRemoved(gone.map((r) => r.msg), now);
    this.log.dropExpired(now);
  }

  nextExpiry(): number | null {
    return earliest(this.sql, EXPIRY_QUERIES);
  }
}
