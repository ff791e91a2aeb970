// Temporary and permanent chats, disappearing messages, edit and delete for
// everyone, as a user's object keeps them. Called by ChatService (send,
// deliver, edit, delete and their hand-offs) and by the UserObject (settings
// and history over RPC, expiry from the alarm).
//
// A one-to-one chat's settings live in both users' objects. A change travels
// through the same ordered outbox as the messages, so the peer applies it before
// any message sent after it; concurrent changes converge on the newest
// (changedAt, then user id).
import { AppError } from "../errors";
import { DELETE_WINDOW_MS, EDIT_WINDOW_MS, HISTORY_PAGE_DEFAULT } from "../limits";
import type { Outbox } from "../outbox";
import { earliest } from "../sqlite";
import { chatFromKey, type ChatSettings, type ChatSettingsBody, type Retention as RetentionKind } from "../protocol";
import type { Inbox } from "./inbox";

/**
 * When the next disappearing message is due (history and inbox), for earliest()
 * in src/sqlite.ts: the partial indexes on expires_at need the IS NOT NULL.
 */
export const EXPIRY_QUERIES = [
  "SELECT MIN(expires_at) AS t FROM history WHERE expires_at IS NOT NULL",
  "SELECT MIN(expires_at) AS t FROM inbox WHERE expires_at IS NOT NULL",
] as const;

export interface RetentionDeps {
  sql: SqlStorage;
  inbox: Inbox;
  outbox: Outbox;
  self(): string;
}

/** What a message carries between objects about its retention. */
export interface RetentionFields {
  permanent?: boolean;
  expiresAt?: number;
}

export interface SettingsChange {
  retention: RetentionKind;
  disappearAfterSeconds: number | null;
  changedAt: number;
  changedBy: string;
}

/** A change of a message after it was sent. */
export interface Amendment {
  msg: string;
  kind: "edited" | "deleted";
  text?: string;
  /** Replaces the end-to-end encrypted content on edit (opaque to the server). */
  e2ee?: unknown;
  by: string;
  ts: number;
  /** The sender's count of this message's edits and deletes, this one included: a receiver ignores one it has applied. Absent in hand-offs queued before it existed. */
  n?: number;
}

/**
 * Receiver side of an edit or delete (a peer's `received` row, a group's
 * `messages` row): false for one already applied (a retried hand-off) or for
 * anything after a delete; else records it and returns true.
 */
export function recordAmendment(
  sql: SqlStorage,
  table: "received" | "messages",
  row: { amended_n: number; deleted: number },
  a: Amendment,
): boolean {
  if (row.deleted || (a.n !== undefined && a.n <= row.amended_n)) return false;
  sql.exec(`UPDATE ${table} SET amended_n = MAX(amended_n, ?), deleted = ? WHERE msg = ?`, a.n ?? 0, a.kind === "deleted" ? 1 : 0, a.msg);
  return true;
}

export interface HistoryPage {
  frames: string[];
  nextBefore: string | null;
}

const DEFAULT: Omit<ChatSettings, "chat"> = { retention: "temporary", disappearAfterSeconds: null, changedAt: null, changedBy: null };
/** Chats whose settings are kept in memory at most; past it the cache starts over. */
const SETTINGS_CACHED = 256;

export class Retention {
  /**
   * Settings as read, per chat: every send reads its chat's, and they seldom
   * change. apply() is the one writer and drops the chat's entry (dropping is
   * right also when its transaction then rolls back); a new object starts empty.
   */
  private readonly cached = new Map<string, Readonly<ChatSettings>>();

  constructor(private readonly d: RetentionDeps) {}

  settings(chat: string): ChatSettings {
    const known = this.cached.get(chat);
    if (known) return { ...known };
    const read = this.read(chat);
    if (this.cached.size >= SETTINGS_CACHED) this.cached.clear();
    this.cached.set(chat, Object.freeze({ ...read }));
    return read;
  }

  private read(chat: string): ChatSettings {
    const row = this.d.sql
      .exec<{ retention: string; disappear_s: number | null; changed_at: number; changed_by: string }>(
        "SELECT retention, disappear_s, changed_at, changed_by FROM chat_settings WHERE chat = ?",
        chat,
      )
      .toArray()[0];
    if (!row) return { chat, ...DEFAULT };
    return {
      chat,
      retention: row.retention === "permanent" ? "permanent" : "temporary",
      disappearAfterSeconds: row.disappear_s,
      changedAt: row.changed_at,
      changedBy: row.changed_by,
    };
  }

  /** The retention fields a new message in this chat gets. */
  forNewMessage(chat: string, ts: number): RetentionFields {
    const s = this.settings(chat);
    const f: RetentionFields = {};
    if (s.retention === "permanent") f.permanent = true;
    if (s.disappearAfterSeconds) f.expiresAt = ts + s.disappearAfterSeconds * 1000;
    return f;
  }

  /** Keeps a message in this user's history when it was sent while the chat was permanent. */
  keep(chat: string, msg: string, frame: Record<string, unknown>, ts: number, fields: RetentionFields): void {
    if (!fields.permanent) return;
    this.d.sql.exec(
      "INSERT INTO history (msg, chat, frame, ts, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(msg) DO NOTHING",
      msg,
      chat,
      JSON.stringify(frame),
      ts,
      fields.expiresAt ?? null,
    );
  }

  /**
   * Applies a settings change (made here or handed over by the peer). Returns
   * false when a newer change already won; call inside a transaction.
   */
  apply(chat: string, change: SettingsChange): boolean {
    const current = this.settings(chat);
    if (current.changedAt !== null) {
      const newer = change.changedAt > current.changedAt || (change.changedAt === current.changedAt && change.changedBy > (current.changedBy ?? ""));
      if (!newer) return false;
    }
    this.cached.delete(chat);
    this.d.sql.exec(
      `INSERT INTO chat_settings (chat, retention, disappear_s, changed_at, changed_by) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(chat) DO UPDATE SET retention = excluded.retention, disappear_s = excluded.disappear_s,
         changed_at = excluded.changed_at, changed_by = excluded.changed_by`,
      chat,
      change.retention,
      change.disappearAfterSeconds,
      change.changedAt,
      change.changedBy,
    );
    return true;
  }

  /** A change the user asked for: the new settings, merged over the current ones. */
  changeFor(chat: string, body: ChatSettingsBody, now: number): SettingsChange {
    const current = this.settings(chat);
    // Never at or before the current change, so a change made here always wins locally.
    const changedAt = Math.max(now, (current.changedAt ?? 0) + 1);
    return {
      retention: body.retention ?? current.retention,
      disappearAfterSeconds: body.disappearAfterSeconds !== undefined ? body.disappearAfterSeconds : current.disappearAfterSeconds,
      changedAt,
      changedBy: this.d.self(),
    };
  }

  /** A page of history, newest first, as stored frames (JSON), and where the next page starts. */
  history(chat: string, before: string | undefined, limit: number | undefined): HistoryPage {
    const n = limit ?? HISTORY_PAGE_DEFAULT;
    // msg ids sort by acceptance time: paging by msg is stable under inserts.
    const rows = (
      before
        ? this.d.sql.exec<{ msg: string; frame: string }>("SELECT msg, frame FROM history WHERE chat = ? AND msg < ? ORDER BY msg DESC LIMIT ?", chat, before, n)
        : this.d.sql.exec<{ msg: string; frame: string }>("SELECT msg, frame FROM history WHERE chat = ? ORDER BY msg DESC LIMIT ?", chat, n)
    ).toArray();
    const last = rows[rows.length - 1];
    return { frames: rows.map((r) => r.frame), nextBefore: rows.length === n && last ? last.msg : null };
  }

  /** The sender's own checks before an edit or delete; returns the message's chat. */
  checkOwn(msg: string, kind: "edited" | "deleted", now: number, encryptedEdit?: boolean): string {
    const row = this.d.sql
      .exec<{ chat: string; ts: number; deleted: number; encrypted: number | null }>("SELECT chat, ts, deleted, encrypted FROM outgoing WHERE msg = ?", msg)
      .toArray()[0];
    if (row?.deleted) throw new AppError("not_found", `message ${msg} was deleted for everyone`);
    if (!row) {
      const received = this.d.sql.exec("SELECT 1 FROM received WHERE msg = ?", msg).toArray().length > 0;
      if (received) throw new AppError("forbidden", "only the sender can change a message");
      throw new AppError("not_found", `no message ${msg} sent by you`);
    }
    // Left or removed (as the group's events told this object): the group would refuse
    // the change, after this side had already applied it.
    if (row.chat.startsWith("group:")) {
      const g = this.d.sql.exec<{ role: string | null }>("SELECT role FROM groups WHERE id = ?", row.chat.slice("group:".length)).toArray()[0];
      if (g && g.role === null) throw new AppError("not_member", "you are not a member of this group");
    }
    // An encrypted message is edited with ciphertext only: a plain `text` would put the
    // new words on the server in the clear. And a plain message gets no ciphertext edit.
    if (encryptedEdit !== undefined && row.encrypted !== null && encryptedEdit !== (row.encrypted === 1)) {
      throw new AppError(
        "bad_frame",
        row.encrypted ? "text: an end-to-end encrypted message is edited with e2ee, never in the clear" : "e2ee: this message was not encrypted; edit it with text",
      );
    }
    const window = kind === "edited" ? EDIT_WINDOW_MS : DELETE_WINDOW_MS;
    if (now - row.ts > window) {
      throw new AppError("forbidden", kind === "edited" ? "messages can be edited for 15 minutes" : "messages can be deleted for everyone for 48 hours");
    }
    return row.chat;
  }

  /**
   * Applies an edit or delete to what this object stores (history and retained
   * inbox entries) and returns the event frame to append. Deleting removes the
   * content entirely: pending entries then deliver only the deletion.
   */
  amend(chat: string, a: Amendment): { event: Record<string, unknown>; removed: string[]; expiresAt?: number } {
    const { sql, inbox } = this.d;
    // An edit event carries the message's text: it disappears when the message does.
    const expiry = sql
      .exec<{ t: number | null }>(
        "SELECT COALESCE((SELECT expires_at FROM received WHERE msg = ?1), (SELECT expires_at FROM outgoing WHERE msg = ?1)) AS t",
        a.msg,
      )
      .one().t;
    let removed: string[] = [];
    if (a.kind === "edited") {
      // An encrypted edit leaves the message's ciphertext as it is: it holds what the edit's
      // does not (media keys, replyTo). A device reached later opens the message, then the
      // edit, which follows it as an event.
      const change = (f: Record<string, unknown>) => {
        if (a.text !== undefined) f.text = a.text;
        f.editedAt = a.ts;
      };
      inbox.rewriteMessage(a.msg, change);
      const row = sql.exec<{ frame: string }>("SELECT frame FROM history WHERE msg = ?", a.msg).toArray()[0];
      if (row) {
        const f = JSON.parse(row.frame) as Record<string, unknown>;
        change(f);
        sql.exec("UPDATE history SET frame = ? WHERE msg = ?", JSON.stringify(f), a.msg);
      }
    } else {
      removed = inbox.removeMessage(a.msg);
      const row = sql.exec<{ frame: string }>("SELECT frame FROM history WHERE msg = ?", a.msg).toArray()[0];
      if (row) removed.push(row.frame);
      sql.exec("DELETE FROM history WHERE msg = ?", a.msg);
    }
    const event: Record<string, unknown> = { kind: a.kind, msg: a.msg, by: a.by };
    if (a.kind === "edited" && a.text !== undefined) event.text = a.text;
    if (a.kind === "edited" && a.e2ee !== undefined) event.e2ee = a.e2ee;
    return { event: { type: "event", chat: chatFromKey(chat), event, ts: a.ts }, removed, ...(expiry !== null ? { expiresAt: expiry } : {}) };
  }

  /** Deletes disappearing messages whose time has come; returns the removed frames. */
  purgeDisappeared(now: number): string[] {
    const removed = this.d.inbox.purgeDisappeared(now);
    const rows = this.d.sql.exec<{ frame: string }>("SELECT frame FROM history WHERE expires_at IS NOT NULL AND expires_at <= ?", now).toArray();
    this.d.sql.exec("DELETE FROM history WHERE expires_at IS NOT NULL AND expires_at <= ?", now);
    return removed.concat(rows.map((r) => r.frame));
  }

  nextExpiry(): number | null {
    return earliest(this.d.sql, EXPIRY_QUERIES);
  }
}
