// The durable outbox: every hand-off from one object to another is a row here,
// written in the same transaction as the state change that caused it, and
// deleted only after the callee returned. Callees are idempotent, so
// at-least-once delivery plus dedup gives exactly-once effects.
//
// Rows to one target are handed over in id order, in batches, one batch in
// flight per target: a target that fails holds back its later rows (order per
// chat is part of the contract) without holding back other targets. Retries
// back off exponentially; the owning object's alarm wakes the drain.
import { OUTBOX_BATCH_SIZE, OUTBOX_RETRY_BASE_MS, OUTBOX_RETRY_MAX_MS } from "./limits";

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

export class Outbox {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly sql: SqlStorage,
    private readonly handoff: Handoff,
    private readonly refused: Refused,
  ) {}

  /** Call inside the caller's write transaction. */
  enqueue(target: string, op: string, payload: unknown, now = Date.now()): void {
    this.sql.exec(
      "INSERT INTO outbox (target, op, payload, next_at, created_at) VALUES (?, ?, ?, ?, ?)",
      target,
      op,
      JSON.stringify(payload),
      now,
      now,
    );
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

  pending(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n;
  }

  /** Rows waiting, counted only up to `cap`: cheap enough to ask on every frame. */
  backlog(cap: number): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM (SELECT 1 FROM outbox LIMIT ?)", cap).one().n;
  }

  /** Drains everything due. Concurrent calls coalesce into one more pass. */
  drain(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async pass(): Promise<void> {
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
    await Promise.all(Array.from({ length: Math.min(DRAIN_CONCURRENCY, targets.length) }, worker));
  }

  private async drainTarget(target: string): Promise<void> {
    for (;;) {
      const rows = this.sql
        .exec<{ id: number; op: string; payload: string; attempts: number }>(
          "SELECT id, op, payload, attempts FROM outbox WHERE target = ? ORDER BY id LIMIT ?",
          target,
          OUTBOX_BATCH_SIZE,
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
        this.sql.exec("UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE id = ?", Date.now() + delay + jitter, head.id);
        console.warn("outbox hand-off failed", target, head.attempts + 1, String(err));
        return;
      }
      this.sql.exec(`DELETE FROM outbox WHERE target = ? AND id <= ?`, target, rows[rows.length - 1]!.id);
      results.forEach((r, i) => {
        if (!r.ok) this.refused(target, items[i]!, r);
      });
      if (rows.length < OUTBOX_BATCH_SIZE) return;
    }
  }
}
