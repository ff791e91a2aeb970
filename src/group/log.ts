// The group log: one sequence (gseq) for the group's messages and events, and
// the fan-out of each entry to the members' objects through the group's outbox.
// Outbox rows carry only {gseq}; the entry is read from the log when it is
// handed over, so a 200-member fan-out writes the content once, not 200 times.
// Used by the GroupObject inside its write transactions (all synchronous).
import type { Outbox, OutboxItem } from "../outbox";
import { GROUP_OPS, type GroupEventItem, type GroupMessageItem } from "./handoff";
import type { GroupEvent } from "../protocol";

/** When the log's next disappearing message is due, for earliest() in src/sqlite.ts. */
export const LOG_EXPIRY_QUERY =
  "SELECT MIN(json_extract(body, '$.message.expiresAt')) AS t FROM log WHERE kind = 'message' AND json_extract(body, '$.message.deleted') IS NULL";

/** What is left of a deleted or disappeared message: enough to keep the order, no content. */
function tombstone(m: GroupMessageItem["message"]): GroupMessageItem["message"] {
  return { msg: m.msg, id: m.id, from: m.from, ts: m.ts, device: m.device, deleted: true };
}

export type LogBody = { kind: "message"; message: GroupMessageItem["message"] } | { kind: "event"; event: GroupEvent };

/** Most entries kept read (a fan-out reads one per post in flight). */
const ENTRIES_KEPT = 64;

export class GroupLog {
  /**
   * Entries already read, by gseq: each member's hand-off of a post reads the
   * same entry, 200 times for a full group. Every write to the log clears it.
   */
  private readonly entries = new Map<number, { body: LogBody; ts: number }>();

  constructor(
    private readonly sql: SqlStorage,
    private readonly outbox: Outbox,
  ) {}

  meta(key: string): string | null {
    return this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }

  get head(): number {
    return Number(this.meta("head") ?? "0");
  }

  /**
   * Appends an entry and queues it to every recipient. Call inside a
   * transaction: the entry, its gseq and its hand-offs are durable together,
   * and since each target's outbox rows drain in order, every member gets the
   * group's entries in gseq order.
   */
  append(body: LogBody, recipients: readonly string[], now: number): number {
    const seq = this.head + 1;
    this.entries.clear();
    this.sql.exec("INSERT INTO log (seq, kind, body, ts) VALUES (?, ?, ?, ?)", seq, body.kind, JSON.stringify(body), now);
    this.setMeta("head", String(seq));
    const op = body.kind === "message" ? GROUP_OPS.message : GROUP_OPS.event;
    this.outbox.enqueueAll(recipients.map((user) => `user:${user}`), op, { gseq: seq }, now);
    return seq;
  }

  /** Turns outbox items that refer to the log ({gseq}) into what the member's object receives. */
  resolve(group: string, items: OutboxItem[]): OutboxItem[] {
    return items.map((item) => {
      if (item.op !== GROUP_OPS.message && item.op !== GROUP_OPS.event) return item;
      const gseq = (item.payload as { gseq: number }).gseq;
      const { body, ts } = this.entry(gseq);
      const payload: GroupMessageItem | GroupEventItem =
        body.kind === "message" ? { group, gseq, ts, message: body.message } : { group, gseq, ts, event: body.event };
      return { op: item.op, payload };
    });
  }

  /** One log entry, parsed (shared by the hand-offs that carry it: never changed in place). */
  private entry(gseq: number): { body: LogBody; ts: number } {
    const known = this.entries.get(gseq);
    if (known) return known;
    const row = this.sql.exec<{ body: string; ts: number }>("SELECT body, ts FROM log WHERE seq = ?", gseq).toArray()[0];
    // purgeDelivered never drops an entry an outbox row still refers to.
    if (!row) throw new Error(`group log entry ${gseq} is missing`);
    const read = { body: JSON.parse(row.body) as LogBody, ts: row.ts };
    if (this.entries.size >= ENTRIES_KEPT) this.entries.clear();
    this.entries.set(gseq, read);
    return read;
  }

  /**
   * Rewrites a message still in the log (being fanned out); `change` returning
   * null removes its content, leaving a tombstone that members skip.
   */
  rewriteMessage(msg: string, change: (m: GroupMessageItem["message"]) => GroupMessageItem["message"] | null): void {
    this.entries.clear();
    const rows = this.sql
      .exec<{ seq: number; body: string }>("SELECT seq, body FROM log WHERE kind = 'message' AND json_extract(body, '$.message.msg') = ?", msg)
      .toArray();
    for (const row of rows) {
      const body = JSON.parse(row.body) as Extract<LogBody, { kind: "message" }>;
      const next = change(body.message) ?? tombstone(body.message);
      this.sql.exec("UPDATE log SET body = ? WHERE seq = ?", JSON.stringify({ kind: "message", message: next }), row.seq);
    }
  }

  /**
   * Edit events of `msg` still in the log (being fanned out) lose their text:
   * the message was deleted, and members skip an edit that carries nothing.
   */
  scrubEdits(msg: string): void {
    this.entries.clear();
    this.sql.exec(
      `UPDATE log SET body = json_remove(body, '$.event.text', '$.event.e2ee')
       WHERE kind = 'event' AND json_extract(body, '$.event.kind') = 'edited' AND json_extract(body, '$.event.msg') = ?`,
      msg,
    );
  }

  /** Disappearing messages whose time has come lose their content in the log too. */
  dropExpired(now: number): void {
    const rows = this.sql
      .exec<{ msg: string }>(
        "SELECT json_extract(body, '$.message.msg') AS msg FROM log WHERE kind = 'message' AND json_extract(body, '$.message.expiresAt') <= ?",
        now,
      )
      .toArray();
    for (const r of rows) this.rewriteMessage(r.msg, () => null);
  }

  /** Drops log entries every member's object already has (no outbox row refers to them). */
  purgeDelivered(): void {
    this.entries.clear();
    this.sql.exec(
      `DELETE FROM log WHERE seq < COALESCE(
         (SELECT MIN(CAST(json_extract(payload, '$.gseq') AS INTEGER)) FROM outbox WHERE op IN (?, ?)),
         (SELECT MAX(seq) + 1 FROM log))`,
      GROUP_OPS.message,
      GROUP_OPS.event,
    );
  }
}
