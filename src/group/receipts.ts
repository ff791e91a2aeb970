// Group receipts: per-member delivered/read status of each message, and the
// sender's aggregated receipt. A message counts for the members at post time
// but the sender (rows in msg_status); members who join later never count and
// members who leave stop counting. The sender gets ONE `delivered` when every
// counted member has it on a device and ONE `read` when every one has read it
// (a `read` that completes together with `delivered` is sent alone: read
// implies delivered, as in one-to-one chats). Called by the GroupObject inside
// its write transactions.
import type { Outbox } from "../outbox";
import { GROUP_OPS, type GroupReceiptItem } from "./handoff";
import { RETENTION_MS } from "../limits";

export interface MemberStatus {
  user: string;
  deliveredAt?: number;
  readAt?: number;
}

/** Most msgs in one receipt hand-off (as src/user/chat.ts). */
const RECEIPT_CHUNK = 500;

type Pending = {
  msg: string;
  sender: string;
  delivered_sent: number;
  read_sent: number;
  counted: number;
  undelivered: number;
  unread: number;
  delivered_ts: number | null;
  read_ts: number | null;
};

export class GroupReceipts {
  constructor(
    private readonly sql: SqlStorage,
    private readonly outbox: Outbox,
    private readonly group: () => string,
  ) {}

  isPosted(msg: string): boolean {
    return this.sql.exec("SELECT 1 FROM messages WHERE msg = ?", msg).toArray().length > 0;
  }

  /** A message entered the group log: it counts for these members. */
  posted(msg: string, seq: number, sender: string, ts: number, counted: readonly string[]): void {
    this.sql.exec("INSERT INTO messages (msg, seq, sender, ts) VALUES (?, ?, ?, ?)", msg, seq, sender, ts);
    // One statement for all members (up to 199 rows).
    this.sql.exec("INSERT INTO msg_status (msg, user) SELECT ?, value FROM json_each(?)", msg, JSON.stringify(counted));
  }

  /**
   * A member's delivered/read hand-off. Messages it does not count for are
   * ignored: only the rows of members counted at post time exist, and leaving
   * deletes them. Whether any status changed; call settle() for the messages of
   * those that did, once per transaction, before it ends.
   */
  record(user: string, msgs: readonly string[], status: "delivered" | "read", ts: number): boolean {
    const list = JSON.stringify(msgs);
    const changed =
      status === "read"
        ? this.sql.exec(
            `UPDATE msg_status SET read_at = ?, delivered_at = COALESCE(delivered_at, ?)
             WHERE user = ? AND read_at IS NULL AND msg IN (SELECT value FROM json_each(?))`,
            ts,
            ts,
            user,
            list,
          )
        : this.sql.exec(
            "UPDATE msg_status SET delivered_at = ? WHERE user = ? AND delivered_at IS NULL AND msg IN (SELECT value FROM json_each(?))",
            ts,
            user,
            list,
          );
    return changed.rowsWritten > 0;
  }

  /** Queues the receipts that records of these messages completed. */
  settle(msgs: ReadonlySet<string>, now: number): void {
    if (msgs.size > 0) this.settleWhere(JSON.stringify([...msgs]), now);
  }

  /** A member left or was removed: it no longer counts, which may complete messages. */
  forget(user: string, now: number): void {
    // It keeps its copies of what it was counted for: a later delete for everyone must reach them.
    this.sql.exec("INSERT INTO departed (msg, user) SELECT msg, user FROM msg_status WHERE user = ? ON CONFLICT DO NOTHING", user);
    this.sql.exec("DELETE FROM msg_status WHERE user = ?", user);
    this.settleWhere(null, now);
  }

  /** Per-member detail of one message, for its sender. Null if the group has no such message. */
  detail(msg: string): { sender: string; members: MemberStatus[] } | null {
    const row = this.sql.exec<{ sender: string }>("SELECT sender FROM messages WHERE msg = ?", msg).toArray()[0];
    if (!row) return null;
    const members = this.sql
      .exec<{ user: string; delivered_at: number | null; read_at: number | null }>(
        "SELECT user, delivered_at, read_at FROM msg_status WHERE msg = ? ORDER BY user",
        msg,
      )
      .toArray()
      .map((r) => {
        const m: MemberStatus = { user: r.user };
        if (r.delivered_at !== null) m.deliveredAt = r.delivered_at;
        if (r.read_at !== null) m.readAt = r.read_at;
        return m;
      });
    return { sender: row.sender, members };
  }

  purgeExpired(now: number): void {
    const cutoff = now - RETENTION_MS;
    this.sql.exec("DELETE FROM msg_status WHERE msg IN (SELECT msg FROM messages WHERE ts < ?)", cutoff);
    this.sql.exec("DELETE FROM departed WHERE msg IN (SELECT msg FROM messages WHERE ts < ?)", cutoff);
    this.sql.exec("DELETE FROM messages WHERE ts < ?", cutoff);
  }

  hasState(): boolean {
    return this.sql.exec("SELECT 1 FROM messages LIMIT 1").toArray().length > 0;
  }

  /**
   * Finds messages (those in `list`, a JSON array, or all not yet fully read)
   * that every counted member has now reached, and queues the sender's receipts.
   * A message nobody counts for any more (they all left) gets none.
   */
  private settleWhere(list: string | null, now: number): void {
    const rows = this.sql
      .exec<Pending>(
        `SELECT m.msg, m.sender, m.delivered_sent, m.read_sent,
                COUNT(s.user) AS counted,
                COALESCE(SUM(s.user IS NOT NULL AND s.delivered_at IS NULL), 0) AS undelivered,
                COALESCE(SUM(s.user IS NOT NULL AND s.read_at IS NULL), 0) AS unread,
                MAX(s.delivered_at) AS delivered_ts, MAX(s.read_at) AS read_ts
         FROM messages m LEFT JOIN msg_status s ON s.msg = m.msg
         WHERE m.read_sent = 0 ${list === null ? "" : "AND m.msg IN (SELECT value FROM json_each(?))"}
         GROUP BY m.msg ORDER BY m.seq`,
        ...(list === null ? [] : [list]),
      )
      .toArray();
    // sender -> status -> msgs, so one receipt frame covers a batch; ts is when the last member got there.
    const out = new Map<string, Record<"delivered" | "read", { msgs: string[]; ts: number }>>();
    for (const r of rows) {
      if (r.counted === 0) continue;
      const read = r.unread === 0;
      const delivered = !read && r.delivered_sent === 0 && r.undelivered === 0;
      if (!read && !delivered) continue;
      const entry = out.get(r.sender) ?? { delivered: { msgs: [], ts: 0 }, read: { msgs: [], ts: 0 } };
      const status = read ? "read" : "delivered";
      entry[status].msgs.push(r.msg);
      entry[status].ts = Math.max(entry[status].ts, (read ? r.read_ts : r.delivered_ts) ?? now);
      this.sql.exec(`UPDATE messages SET delivered_sent = 1${read ? ", read_sent = 1" : ""} WHERE msg = ?`, r.msg);
      out.set(r.sender, entry);
    }
    for (const [sender, e] of out) {
      for (const status of ["delivered", "read"] as const) {
        const { msgs, ts } = e[status];
        for (let i = 0; i < msgs.length; i += RECEIPT_CHUNK) {
          const payload: GroupReceiptItem = { group: this.group(), msgs: msgs.slice(i, i + RECEIPT_CHUNK), status, ts };
          this.outbox.enqueue(`user:${sender}`, GROUP_OPS.receipt, payload, now);
        }
      }
    }
  }
}
