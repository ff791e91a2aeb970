// The user's inbox: one sequence shared by all the user's devices, the ack
// position of each device, replay on connect, and purging of what every device
// holds (or what has waited too long, which then reaches devices as `gap`).
// Called by the UserObject; all methods are synchronous SQLite work, so a
// caller can put them in one transaction with the change they record.
import { DEVICE_STALE_MS, RETENTION_MS } from "../limits";

export interface Appended {
  seq: number;
  json: string;
}

export type DeviceRow = {
  device: string;
  acked: number;
  last_seen: number;
};

export class Inbox {
  private headSeq: number;

  /** `removed` runs after entries left the inbox, inside the same transaction (media holds sweep there). */
  constructor(
    private readonly sql: SqlStorage,
    private readonly removed: () => void = () => {},
  ) {
    const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'head'").toArray()[0];
    this.headSeq = row ? Number(row.value) : 0;
  }

  get head(): number {
    return this.headSeq;
  }

  /** Appends one entry; the frame gets the next seq. Call inside a transaction. */
  append(
    kind: "message" | "receipt" | "event",
    chat: string,
    frame: Record<string, unknown>,
    opts: { msg?: string; origin?: string; ts: number; expiresAt?: number },
  ): Appended {
    const seq = this.headSeq + 1;
    // seq goes first so the frame reads naturally; JSON.stringify keeps insertion order.
    const json = JSON.stringify({ type: frame.type, seq, ...frame });
    this.sql.exec(
      "INSERT INTO inbox (seq, kind, chat, msg, origin, ts, frame, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      seq,
      kind,
      chat,
      opts.msg ?? null,
      opts.origin ?? null,
      opts.ts,
      json,
      opts.expiresAt ?? null,
    );
    this.sql.exec("INSERT INTO meta (key, value) VALUES ('head', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", String(seq));
    this.headSeq = seq;
    return { seq, json };
  }

  device(device: string): DeviceRow | null {
    return this.sql.exec<DeviceRow>("SELECT device, acked, last_seen FROM devices WHERE device = ?", device).toArray()[0] ?? null;
  }

  /**
   * Registers a connecting device and returns its row as it was. A new device
   * starts just before the oldest retained entry: it is owed what is still
   * here, and nothing purged before it existed counts as a gap.
   */
  connect(device: string, now: number): { row: DeviceRow; isNew: boolean } {
    const existing = this.device(device);
    if (existing) {
      this.sql.exec("UPDATE devices SET last_seen = ? WHERE device = ?", now, device);
      return { row: existing, isNew: false };
    }
    const oldest = this.sql.exec<{ seq: number | null }>("SELECT MIN(seq) AS seq FROM inbox").one().seq;
    const acked = oldest === null ? this.headSeq : oldest - 1;
    this.sql.exec("INSERT INTO devices (device, acked, first_seen, last_seen) VALUES (?, ?, ?, ?)", device, acked, now, now);
    return { row: { device, acked, last_seen: now }, isNew: true };
  }

  touch(device: string, now: number): void {
    this.sql.exec("UPDATE devices SET last_seen = ? WHERE device = ?", now, device);
  }

  /** Ranges this device lost to purging before it acknowledged them. */
  gapsFor(row: DeviceRow, now: number): Array<{ from: number; to: number }> {
    const gaps = this.sql
      .exec<{ from_seq: number; to_seq: number }>("SELECT from_seq, to_seq FROM gaps WHERE to_seq > ? ORDER BY from_seq", row.acked)
      .toArray()
      .map((g) => ({ from: Math.max(g.from_seq, row.acked + 1), to: g.to_seq }));
    if (row.last_seen < now - DEVICE_STALE_MS) {
      // A stale device stopped holding entries back: whatever was purged meanwhile is gone for it.
      const oldest = this.sql.exec<{ seq: number | null }>("SELECT MIN(seq) AS seq FROM inbox").one().seq ?? this.headSeq + 1;
      if (oldest - 1 > row.acked) gaps.push({ from: row.acked + 1, to: oldest - 1 });
    }
    return mergeRanges(gaps);
  }

  /** Entries after `acked` for this device, in seq order (its own sends excluded). */
  *replay(device: string, acked: number): Generator<string> {
    const cursor = this.sql.exec<{ frame: string }>(
      "SELECT frame FROM inbox WHERE seq > ? AND (origin IS NULL OR origin <> ?) ORDER BY seq",
      acked,
      device,
    );
    for (const row of cursor) yield row.frame;
  }

  /**
   * Moves a device's ack position. Returns the previous position, or null when
   * nothing moved (an old or repeated ack). The caller has checked seq <= head.
   */
  ack(device: string, seq: number, now: number): number | null {
    const row = this.device(device);
    if (!row || seq <= row.acked) return null;
    this.sql.exec("UPDATE devices SET acked = ?, last_seen = ? WHERE device = ?", seq, now, device);
    return row.acked;
  }

  /**
   * Whether an entry `origin` appends now would be kept: only while another
   * device seen in the last 30 days has yet to ack it (purgeAcknowledged).
   */
  heldForOthers(origin: string, now: number): boolean {
    return this.sql.exec("SELECT 1 FROM devices WHERE device <> ? AND last_seen >= ? LIMIT 1", origin, now - DEVICE_STALE_MS).toArray().length > 0;
  }

  /**
   * A device's own message, for the user's other devices: appended only when one
   * of them would keep it (heldForOthers), or null. Appending it for no one meant
   * an insert the same transaction's purge deleted again.
   */
  appendOwn(chat: string, frame: Record<string, unknown>, opts: { msg: string; origin: string; ts: number; expiresAt?: number }): Appended | null {
    return this.heldForOthers(opts.origin, opts.ts) ? this.append("message", chat, frame, opts) : null;
  }

  /** Deletes entries up to `upTo` that every device seen in the last 30 days holds. */
  purgeAcknowledged(upTo: number, now: number): void {
    const deleted = this.sql.exec(
      `DELETE FROM inbox WHERE seq <= ? AND NOT EXISTS (
         SELECT 1 FROM devices d
         WHERE d.last_seen >= ? AND d.acked < inbox.seq AND (inbox.origin IS NULL OR inbox.origin <> d.device)
       )`,
      upTo,
      now - DEVICE_STALE_MS,
    );
    // Runs on every ack and send: the hook (a query) only when something left.
    if (deleted.rowsWritten > 0) this.removed();
  }

  /** Deletes entries older than the retention period, recording them as a gap. */
  purgeExpired(now: number): void {
    const cutoff = now - RETENTION_MS;
    const lo = this.sql.exec<{ seq: number | null }>("SELECT MIN(seq) AS seq FROM inbox").one().seq;
    if (lo === null) return;
    // Entries are appended in time order, so the expired ones come first: read
    // from the oldest on (by seq, no index on ts) up to the first one still kept.
    // A ts index would cost every append and purge one more page in each commit.
    const kept = this.sql.exec<{ seq: number }>("SELECT seq FROM inbox WHERE ts >= ? ORDER BY seq LIMIT 1", cutoff).toArray()[0]?.seq;
    const hi = (kept ?? this.headSeq + 1) - 1;
    if (hi < lo) return;
    this.sql.exec("DELETE FROM inbox WHERE seq <= ?", hi);
    this.removed();
    this.sql.exec("INSERT INTO gaps (from_seq, to_seq) VALUES (?, ?)", lo, hi);
    this.sql.exec("DELETE FROM devices WHERE last_seen < ?", now - 2 * RETENTION_MS);
    const minAcked = this.sql.exec<{ m: number | null }>("SELECT MIN(acked) AS m FROM devices").one().m;
    if (minAcked !== null) this.sql.exec("DELETE FROM gaps WHERE to_seq <= ?", minAcked);
  }

  /** Rewrites the retained entries of a message (an edit replaces the stored text). */
  rewriteMessage(msg: string, change: (frame: Record<string, unknown>) => void): void {
    for (const row of this.sql.exec<{ seq: number; frame: string }>("SELECT seq, frame FROM inbox WHERE msg = ? AND kind = 'message'", msg).toArray()) {
      const frame = JSON.parse(row.frame) as Record<string, unknown>;
      change(frame);
      this.sql.exec("UPDATE inbox SET frame = ? WHERE seq = ?", JSON.stringify(frame), row.seq);
    }
  }

  /**
   * Removes a message's entries (delete for everyone): the message and the edit
   * events that carry its earlier content. Returns the message entries' frames.
   */
  removeMessage(msg: string): string[] {
    const rows = this.sql.exec<{ frame: string }>("SELECT frame FROM inbox WHERE msg = ? AND kind = 'message'", msg).toArray();
    this.sql.exec("DELETE FROM inbox WHERE msg = ? AND kind IN ('message', 'event')", msg);
    this.removed();
    return rows.map((r) => r.frame);
  }

  /** Deletes entries whose disappearing time has come; they reach lagging devices as gaps. */
  purgeDisappeared(now: number): string[] {
    const rows = this.sql
      .exec<{ seq: number; frame: string }>("SELECT seq, frame FROM inbox WHERE expires_at IS NOT NULL AND expires_at <= ?", now)
      .toArray();
    for (const r of rows) this.sql.exec("INSERT INTO gaps (from_seq, to_seq) VALUES (?, ?)", r.seq, r.seq);
    this.sql.exec("DELETE FROM inbox WHERE expires_at IS NOT NULL AND expires_at <= ?", now);
    this.removed();
    return rows.map((r) => r.frame);
  }

  isEmpty(): boolean {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM (SELECT 1 FROM inbox LIMIT 1)").one().n === 0;
  }
}

function mergeRanges(ranges: Array<{ from: number; to: number }>): Array<{ from: number; to: number }> {
  const sorted = ranges.filter((r) => r.from <= r.to).sort((a, b) => a.from - b.from);
  const out: Array<{ from: number; to: number }> = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}
