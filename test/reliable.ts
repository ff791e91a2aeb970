// A device that behaves like a careful app, for fault tests inside workerd:
// it reconnects when its socket dies, resends every send that never got
// `sent` (same id, same order), drops seqs it already holds, and re-sends its
// ack position on every new socket. It counts what a user would notice:
// a message arriving twice under different seqs, a receipt reported twice.
import { exports } from "cloudflare:workers";
import { ServerFrame } from "../src/protocol";
import { BASE, sleep } from "./helpers";

type Frame = ServerFrame;

export class ReliableDevice {
  ws: WebSocket | null = null;
  synced = false;
  closed = true;
  stopped = false;
  /** seq -> frame: every inbox entry held. */
  readonly held = new Map<number, Frame>();
  maxSeq = 0;
  /** Highest seq the app decided to acknowledge (re-sent on every new socket). */
  ackedUpTo = 0;
  /** "from|id" -> number of distinct seqs that carried that message. */
  readonly seen = new Map<string, number>();
  /** msg -> number of distinct receipt entries that reported it delivered. */
  readonly delivered = new Map<string, number>();
  /** client id -> msg, from `sent`. */
  readonly sent = new Map<string, string>();
  /** client id -> frame, sends without `sent` yet, in order. */
  readonly pending = new Map<string, Record<string, unknown>>();
  readonly errors: Array<{ code: string; message: string; ref?: string }> = [];
  /** Frames that did not parse as the protocol says. */
  readonly violations: string[] = [];
  connects = 0;

  constructor(
    readonly user: string,
    readonly device: string,
    private readonly token: string,
    /** Ack every inbox entry as it arrives (otherwise the test calls ack()). */
    private readonly autoAck = true,
  ) {}

  async connect(): Promise<void> {
    const res = await exports.default.fetch(
      new Request(`${BASE}/v1/connect?device=${encodeURIComponent(this.device)}`, {
        headers: { Upgrade: "websocket", Authorization: `Bearer ${this.token}` },
      }),
    );
    if (res.status !== 101 || !res.webSocket) throw new Error(`connect failed: ${res.status}`);
    const ws = res.webSocket;
    this.ws = ws;
    this.synced = false;
    this.closed = false;
    ws.addEventListener("message", (ev) => this.onFrame(ws, ev.data as string));
    ws.addEventListener("close", () => {
      if (this.ws === ws) {
        this.closed = true;
        this.synced = false;
      }
    });
    ws.accept();
    // performance.now(), not Date.now(): tests may fake the clock.
    const deadline = performance.now() + 10_000;
    while (!this.synced) {
      if (this.closed) throw new Error(`${this.user}/${this.device} closed before synced`);
      if (performance.now() > deadline) throw new Error(`${this.user}/${this.device} not synced in time`);
      await sleep(5);
    }
    this.connects++;
  }

  /** Reconnects if the socket died (a hard reset closes every socket). */
  async heal(): Promise<void> {
    if (!this.closed || this.stopped) return;
    try {
      await this.connect();
    } catch {
      // the runtime is still resetting: the next wait round tries again
    }
  }

  private onFrame(ws: WebSocket, data: string): void {
    if (ws !== this.ws || data === "pong") return;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      this.violations.push(data.slice(0, 300));
      return;
    }
    const parsed = ServerFrame.safeParse(json);
    if (!parsed.success) {
      this.violations.push(data.slice(0, 300));
      return;
    }
    const f = parsed.data;
    switch (f.type) {
      case "synced":
        if (this.ackedUpTo > 0) this.write({ type: "ack", seq: this.ackedUpTo });
        for (const frame of this.pending.values()) this.write(frame);
        this.synced = true;
        return;
      case "sent":
        this.sent.set(f.id, f.msg);
        this.pending.delete(f.id);
        return;
      case "error":
        this.errors.push(f);
        return;
      case "message":
      case "receipt":
      case "event": {
        if (this.held.has(f.seq)) return; // a replay: harmless
        this.held.set(f.seq, f);
        this.maxSeq = Math.max(this.maxSeq, f.seq);
        if (f.type === "message") {
          const key = `${f.from}|${f.id}`;
          this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
        }
        if (f.type === "receipt" && f.status === "delivered") {
          for (const m of f.msgs) this.delivered.set(m, (this.delivered.get(m) ?? 0) + 1);
        }
        if (this.autoAck) this.ack();
        return;
      }
      default:
        return;
    }
  }

  /** Acknowledges everything held. */
  ack(): void {
    this.ackedUpTo = Math.max(this.ackedUpTo, this.maxSeq);
    if (this.ackedUpTo > 0) this.write({ type: "ack", seq: this.ackedUpTo });
  }

  send(to: { user: string } | { group: string }, id: string, text: string): void {
    const frame = { type: "send", id, to, text };
    this.pending.set(id, frame);
    if (this.synced) this.write(frame);
  }

  private write(frame: unknown): void {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      // closing: the reconnect resends
    }
  }

  close(): void {
    this.stopped = true;
    try {
      this.ws?.close(1000, "bye");
    } catch {
      // already closed
    }
  }
}

/** Waits until pred() holds, healing dead sockets of `devices` on the way. */
export async function until(devices: ReliableDevice[], pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    for (const d of devices) await d.heal();
    await sleep(10);
  }
}
