// The durable outbox: every hand-off from one object to another is a row here,
// written in the same transaction as the state change that caused it, and
// deleted only after the callee returned. Callees are idempotent, so
// at-least-once delivery plus dedup gives exactly-once effects.
//
// Rows to one target are handed over in id order, in batches, one batch in
// flight per target: a target that fails holds back its later rows (order per
// chat is part of the contract) without holding back other targets. Retries
// back off exponentially; the owning object's alarm wakes the drain.
//
// A row handed over is not deleted at once: its delete waits in memory and
// rides along with the owner's next write transaction that queues rows
// (settle()), whose commit writes the outbox's pages anyway, or is written at
// the end of a drain that handed over many rows, or by the next pass (the
// backstop alarm set when the row was queued starts one). Every delete is its
// own disk commit otherwise: two more per one-to-one message, one per member of
// a group post; and riding along with a write that queues nothing (a delivery
// being accepted) added the outbox and its index to that commit, two WAL pages
// on the way to the recipient. Losing the pending deletes (eviction, crash)
// only means those rows are handed over again, which idempotent callees absorb.
import { OUTBOX_BACKSTOP_MS, OUTBOX_BATCH_SIZE, OUTBOX_RETRY_BASE_MS, OUTBOX_RETRY_MAX_MS } from "./limits";

export const OUTBOX_SCHEMA = `
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  target TEXT NOT NULL,
  op TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX outbox_target ON outbox(target, id);
`;

/**
 * A migration for both object classes: the outbox without AUTOINCREMENT, which
 * wrote sqlite_sequence (one more page) in every commit that queued a row.
 * A reused id is harmless: only settle() deletes rows, and only ids at or
 * below a row already handed over, so every row still in flight is in the
 * table and every new id is above it.
 */
export const OUTBOX_PLAIN_IDS = `
CREATE TABLE outbox_new (
  id INTEGER PRIMARY KEY,
  target TEXT NOT NULL,
  op TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
INSERT INTO outbox_new (id, target, op, payload, attempts, next_at, created_at)
  SELECT id, target, op, payload, attempts, next_at, created_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_target ON outbox(target, id);
`;

export interface OutboxItem {
  op: string;
  payload: unknown;
}
/** What a callee says about each item: done, or refused for good (never retried). */
export type HandoffResult = { ok: true } | { ok: false; code: string; message: string };
/** Hands items to a target; throws (or rejects) on a transient failure. */
export type Handoff = (target: string, items: OutboxItem[]) => Promise<HandoffResult[]>;
export type Refused = (target: string, item: OutboxItem, result: { code: string; message: string }) => void;

/** Most targets drained at the same time (production lets 6 subrequests wait at once). */
const DRAIN_CONCURRENCY = 6;
/** A drain that handed over at least this many rows writes their deletes at once. */
const SETTLE_AFTER_ROWS = 16;

export class Outbox {
  private running: Promise<boolean> | null = null;
  private again = false;
  /** The drain running now met a failed or refused hand-off. */
  private troubled = false;
  /** Rows were queued in the transaction running now: drain once it has committed. */
  private queued = false;
  /** Nesting of transaction(): rows are drained after the outermost one only. */
  private depth = 0;
  /** Handed over, not yet deleted: per target, the highest row id done (rows go in id order). */
  private readonly done = new Map<string, number>();
  private doneRows = 0;

  constructor(
    private readonly sql: SqlStorage,
    private readonly handoff: Handoff,
    private readonly refused: Refused,
  ) {}

  /**
   * The owner's one way to write: fn runs as one transaction of `storage`; when
   * it queued rows, the pending deletes commit with it and `wake` runs after it
   * has committed (a drain started inside it could hand over a row its rollback
   * then removes).
   */
  transaction<T>(storage: DurableObjectStorage, fn: () => T, wake: () => void): T {
    this.depth++;
    let result: T;
    try {
      result = storage.transactionSync(() => {
        const r = fn();
        if (this.queued) this.settle();
        return r;
      });
    } catch (err) {
      if (this.depth === 1) this.queued = false; // rolled back with the rows
      throw err;
    } finally {
      this.depth--;
    }
    if (this.depth === 0 && this.queued) {
      this.queued = false;
      wake();
    }
    return result;
  }

  /** Call inside transaction(): the row commits with the change that caused it. */
  enqueue(target: string, op: string, payload: unknown, now = Date.now()): void {
    this.willQueue(target);
    this.sql.exec(
      "INSERT INTO outbox (target, op, payload, next_at, created_at) VALUES (?, ?, ?, ?, ?)",
      target,
      op,
      JSON.stringify(payload),
      now,
      now,
    );
  }

  /**
   * enqueue() for many targets with one payload, one statement for all: a
   * group's fan-out queues a row for each of up to 200 members. Rows are
   * numbered in the order of `targets`.
   */
  enqueueAll(targets: readonly string[], op: string, payload: unknown, now = Date.now()): void {
    if (targets.length === 0) return;
    this.willQueue(`${targets[0]} and ${targets.length - 1} more`);
    this.sql.exec(
      "INSERT INTO outbox (target, op, payload, next_at, created_at) SELECT value, ?, ?, ?, ? FROM json_each(?) ORDER BY key",
      op,
      JSON.stringify(payload),
      now,
      now,
      JSON.stringify(targets),
    );
  }

  /** Both enqueues: rows only inside transaction(), which then settles and wakes. */
  private willQueue(targets: string): void {
    if (this.depth === 0) throw new Error(`outbox row for ${targets} queued outside a transaction`);
    this.queued = true;
  }

  /**
   * Writes the deletes of rows already handed over. Call inside the owner's
   * write transactions (they commit together), or alone to commit them now.
   */
  settle(): void {
    if (this.done.size > 1) {
      // One statement for all targets: a group's fan-out hands one row to each of 200 members.
      this.sql.exec(
        "DELETE FROM outbox WHERE id IN (SELECT o.id FROM json_each(?) j JOIN outbox o ON o.target = j.key AND o.id <= j.value)",
        JSON.stringify(Object.fromEntries(this.done)),
      );
    } else {
      for (const [target, upTo] of this.done) this.sql.exec("DELETE FROM outbox WHERE target = ? AND id <= ?", target, upTo);
    }
    this.done.clear();
    this.doneRows = 0;
  }

  /** Rows handed over whose deletes are not written yet. */
  unsettled(): number {
    return this.doneRows;
  }

  /**
   * When the owner's alarm must fire for the outbox, or null: a retry at its
   * time (never sooner than the first backoff step), rows due now (being
   * drained) after the backstop delay. Never earlier than now + OUTBOX_RETRY_BASE_MS.
   */
  alarmAt(now: number): number | null {
    const due = this.nextDueAt();
    if (due === null) return null;
    return due > now ? Math.max(due, now + OUTBOX_RETRY_BASE_MS) : now + OUTBOX_BACKSTOP_MS;
  }

  /** When the next retry is due, or null when the outbox is empty. */
  nextDueAt(): number | null {
    const row = this.sql
      .exec<{ next_at: number }>(
        `SELECT MIN(o.next_at) AS next_at FROM outbox o
         JOIN (SELECT MIN(id) AS id FROM outbox GROUP BY target) h ON o.id = h.id`,
      )
      .toArray()[0];
    return row?.next_at ?? null;
  }

  /** Rows waiting, counted only up to `cap`: cheap enough to ask on every frame. */
  backlog(cap: number): number {
    const rows = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM (SELECT 1 FROM outbox LIMIT (SELECT ?))", cap + this.doneRows).one().n;
    return Math.max(0, rows - this.doneRows);
  }

  /**
   * Drains everything due. Concurrent calls coalesce into one more pass.
   * Resolves to true when every hand-off went through: nothing failed (no
   * retry time was set) and nothing was refused (the refusal handler may have
   * changed deadlines), so the owner's alarm needs no new look.
   */
  drain(): Promise<boolean> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      this.troubled = false;
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again);
        if (this.doneRows >= SETTLE_AFTER_ROWS) this.settle();
        return !this.troubled;
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async pass(): Promise<void> {
    // The heads of the target query must be rows still to hand over.
    this.settle();
    const now = Date.now();
    const targets = this.sql
      .exec<{ target: string }>(
        `SELECT o.target FROM outbox o
         JOIN (SELECT MIN(id) AS id FROM outbox GROUP BY target) h ON o.id = h.id
         WHERE o.next_at <= ? ORDER BY o.id`,
        now,
      )
      .toArray()
      .map((r) => r.target);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) await this.drainTarget(targets[next++]!);
    };
    // Every worker runs to its end before the pass does, also when one throws: a
    // pass that ended early would let the next drain take rows still in flight.
    const ends = await Promise.allSettled(Array.from({ length: Math.min(DRAIN_CONCURRENCY, targets.length) }, worker));
    const failed = ends.find((e): e is PromiseRejectedResult => e.status === "rejected");
    if (failed) throw failed.reason;
  }

  private async drainTarget(target: string): Promise<void> {
    for (;;) {
      const rows = this.sql
        .exec<{ id: number; op: string; payload: string; attempts: number }>(
          `SELECT id, op, payload, attempts FROM outbox WHERE target = ? AND id > ? ORDER BY id LIMIT ${OUTBOX_BATCH_SIZE}`,
          target,
          this.done.get(target) ?? 0,
        )
        .toArray();
      if (rows.length === 0) return;
      const items = rows.map((r) => ({ op: r.op, payload: JSON.parse(r.payload) as unknown }));
      let results: HandoffResult[];
      try {
        results = await this.handoff(target, items);
      } catch (err) {
        const head = rows[0]!;
        const delay = Math.min(OUTBOX_RETRY_BASE_MS * 2 ** head.attempts, OUTBOX_RETRY_MAX_MS);
        // Jitter spreads the retries of many objects after a shared outage.
        const jitter = Math.floor(Math.random() * delay * 0.2);
        this.troubled = true;
        this.sql.exec("UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE id = ?", Date.now() + delay + jitter, head.id);
        console.warn("outbox hand-off failed", target, head.attempts + 1, String(err));
        return;
      }
      this.done.set(target, rows[rows.length - 1]!.id);
      this.doneRows += rows.length;
      results.forEach((r, i) => {
        if (r.ok) return;
        this.troubled = true;
        this.refused(target, items[i]!, r);
      });
      if (rows.length < OUTBOX_BATCH_SIZE) return;
    }
  }
}
