// Test helpers: tokens, HTTP calls and a socket client that parses every frame
// with the protocol schema (so drift between server and schema fails loudly).
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { ServerFrame } from "../src/protocol";

export const BASE = "https://relay.test";

export function uid(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 12)}`;
}

export async function call(path: string, init: RequestInit & { token?: string; json?: unknown } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(init.json);
  }
  return exports.default.fetch(new Request(BASE + path, { ...init, headers, body }));
}

export async function token(user: string, ttlSeconds?: number): Promise<string> {
  const res = await call("/v1/dev/token", { method: "POST", json: ttlSeconds ? { user, ttlSeconds } : { user } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

type Frame = ServerFrame;
type FrameOf<T extends Frame["type"]> = Extract<Frame, { type: T }>;

export class TestSocket {
  readonly frames: Frame[] = [];
  private cursor = 0;
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | null = null;
  raw: string[] = [];

  constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (ev) => {
      const data = ev.data as string;
      this.raw.push(data);
      if (data === "pong") return;
      const parsed = ServerFrame.safeParse(JSON.parse(data));
      if (!parsed.success) throw new Error(`server sent a frame outside the protocol: ${data} (${parsed.error.message})`);
      this.frames.push(parsed.data);
      this.wakeAll();
    });
    ws.addEventListener("close", (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      this.wakeAll();
    });
  }

  private wakeAll() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Waits for the next frame of this type (after those already consumed) matching pred. */
  async next<T extends Frame["type"]>(type: T, pred: (f: FrameOf<T>) => boolean = () => true, timeoutMs = 5000): Promise<FrameOf<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = this.cursor; i < this.frames.length; i++) {
        const f = this.frames[i]!;
        if (f.type === type && pred(f as FrameOf<T>)) {
          this.frames.splice(i, 1);
          return f as FrameOf<T>;
        }
      }
      if (this.closed) throw new Error(`socket closed (${this.closed.code}) while waiting for ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${type}; have ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** All frames of a type received so far (not consumed). */
  all<T extends Frame["type"]>(type: T): FrameOf<T>[] {
    return this.frames.filter((f) => f.type === type) as FrameOf<T>[];
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("socket did not close");
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.closed;
  }

  /** Acks everything received so far (the highest seq). */
  ackAll(): number {
    const seqs = this.frames.flatMap((f) => ("seq" in f && typeof f.seq === "number" ? [f.seq] : []));
    const max = Math.max(0, ...seqs);
    if (max > 0) this.send({ type: "ack", seq: max });
    return max;
  }

  close(): void {
    try {
      this.ws.close(1000, "bye");
    } catch {
      // already closed
    }
  }
}

export async function open(user: string, device: string, tok?: string, extra: Record<string, string> = {}, query: Record<string, string> = {}): Promise<TestSocket> {
  const t = tok ?? (await token(user));
  const params = new URLSearchParams({ device, ...query });
  const res = await exports.default.fetch(
    new Request(`${BASE}/v1/connect?${params}`, {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${t}`, ...extra },
    }),
  );
  if (res.status !== 101 || !res.webSocket) throw new Error(`connect failed: ${res.status} ${await res.text()}`);
  const ws = res.webSocket;
  const sock = new TestSocket(ws);
  ws.accept();
  return sock;
}

/** Connects and waits for hello and synced. */
export async function connect(user: string, device = "phone", tok?: string): Promise<TestSocket> {
  const s = await open(user, device, tok);
  await s.next("hello");
  await s.next("synced");
  return s;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Rows waiting in an object's outbox (a user's or a group's). */
export function outboxRows(stub: DurableObjectStub): Promise<number> {
  return runInDurableObject(stub, (_o, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n);
}

/** How long waitOutboxesEmpty lets rows go by themselves before it runs their owners' alarms. */
const ALARM_AFTER_MS = 300;

/**
 * Waits until every one of these objects' outboxes is empty; throws after timeoutMs.
 * A row handed over is deleted with its owner's next write or by the backstop
 * alarm (OUTBOX_BACKSTOP_MS, 5 s), and a failed one waits for its retry alarm:
 * rows still there after ALARM_AFTER_MS have their owner's alarm run now
 * (runDurableObjectAlarm), instead of the test sleeping until it fires. That
 * needs the alarm to be set: an owner holding rows with none set would keep
 * them for good, and the error says so.
 */
export async function waitOutboxesEmpty(stubs: DurableObjectStub[], timeoutMs = 8000): Promise<void> {
  const start = Date.now();
  let alarmsAt = start + ALARM_AFTER_MS;
  const unset = new Set<number>();
  for (;;) {
    const counts = await Promise.all(stubs.map(outboxRows));
    const rows = counts.reduce((a, b) => a + b, 0);
    if (rows === 0) return;
    if (Date.now() > start + timeoutMs) {
      const none = unset.size > 0 ? ` (no alarm set on ${unset.size} of the objects holding them)` : "";
      throw new Error(`${rows} outbox rows still waiting after ${timeoutMs} ms${none}`);
    }
    if (Date.now() >= alarmsAt) {
      // Not too often: a retry that is not due yet is rescheduled by each run.
      alarmsAt = Date.now() + 250;
      unset.clear();
      for (const [i, n] of counts.entries()) {
        // false: no alarm scheduled (or it is running right now, and reschedules itself).
        if (n > 0 && !(await runDurableObjectAlarm(stubs[i]!))) unset.add(i);
      }
    }
    await sleep(50);
  }
}
