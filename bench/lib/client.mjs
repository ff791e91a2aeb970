// A small, honest protocol client for the benchmark and the fault tests (real
// WebSockets, Node 22's global WebSocket). It does what a careful app does:
//  - acks every inbox entry (cumulative, coalesced to one ack per I/O turn);
//  - drops a seq it already holds (replays are harmless), and counts as a
//    DUPLICATE a message that arrives again under a new seq;
//  - with { reconnect: true }, reconnects after any close it did not ask for
//    and resends every send that never got `sent`, with the same id, in order;
//  - paces its sends below the server's per-device limit (30/s, burst 60), so
//    a resend after a reconnect does not turn into a burst the server refuses.
// It records what it saw so callers can check "exactly once, in order".

/** Frames received by every client in this process (for CPU per frame). */
export const counters = { framesIn: 0, framesOut: 0 };

const tokens = new Map();

/** Client-side pacing of sends: under the server's 30/s (burst 60) per device. */
export const SEND_RATE = 25;
const SEND_BURST = 20;
/** At most one ack per this many ms (the server allows acks and other frames 50/s). */
const ACK_GAP_MS = 25;

/** A dev token for a user, cached per base URL and user. */
export async function tokenFor(base, user) {
  const key = `${base} ${user}`;
  let t = tokens.get(key);
  if (!t) {
    t = (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await fetch(`${base}/v1/dev/token`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ user }),
          });
          if (res.ok) return (await res.json()).token;
          if (attempt >= 5) throw new Error(`dev token for ${user}: HTTP ${res.status}`);
        } catch (err) {
          if (attempt >= 5) throw err;
        }
        await sleep(200 * (attempt + 1));
      }
    })();
    tokens.set(key, t);
    t.catch(() => tokens.delete(key));
  }
  return t;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sleeps out what is left of `gapMs` since `t0` (performance.now()): one step of a paced loop. */
export async function sleepRest(t0, gapMs) {
  const spent = performance.now() - t0;
  if (spent < gapMs) await sleep(gapMs - spent);
}

export class Client {
  /**
   * @param {{ base: string | (() => string), user: string, device?: string, reconnect?: boolean,
   *           resend?: boolean, tokenBase?: string, autoAck?: boolean,
   *           onFrame?: (frame: any, at: number, client: Client) => void }} opts
   *   resend: false = after a reconnect, do NOT resend sends that never got `sent` (an app that gave up);
   *   tokenBase: where to mint dev tokens (default: base).
   */
  constructor(opts) {
    this.opts = opts;
    this.user = opts.user;
    this.device = opts.device ?? "phone";
    this.ws = null;
    /** seq -> frame, every inbox entry held (deduplicated by seq). */
    this.held = new Map();
    this.maxSeq = 0;
    this.ackedSent = 0;
    /** Messages held, in arrival order: { frame, at }. */
    this.messages = [];
    /** "from|id" -> count of distinct seqs that carried it (>1 = duplicate). */
    this.seenIds = new Map();
    this.duplicates = 0;
    this.replayedSeqs = 0;
    /** Client id -> { msg, at } once `sent` arrived. */
    this.sent = new Map();
    /** Sends without `sent` yet, in send order: id -> frame. */
    this.pending = new Map();
    /** msg -> time a `delivered` receipt for it arrived. */
    this.delivered = new Map();
    this.read = new Map();
    this.errors = [];
    this.closes = [];
    this.connects = 0;
    this.synced = false;
    this.stopped = false;
    this.waiters = new Set();
    this.ackScheduled = false;
    /** Ids written on the current socket (a new socket starts empty: resend the rest). */
    this.onSocket = new Set();
    this.tokens = SEND_BURST;
    this.tokensAt = performance.now();
    this.pumpTimer = null;
  }

  get base() {
    return typeof this.opts.base === "function" ? this.opts.base() : this.opts.base;
  }

  /** Opens the socket and resolves at `synced` (rejects if it closes first or times out). */
  async connect(timeoutMs = 30_000) {
    const token = await tokenFor(this.opts.tokenBase ?? this.base, this.user);
    const url = `${this.base.replace(/^http/, "ws")}/v1/connect?device=${encodeURIComponent(this.device)}&access_token=${token}`;
    this.synced = false;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.ackedSent = 0;
    ws.onmessage = (ev) => this.onData(ws, ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev);
    ws.onerror = () => {}; // a close always follows
    const t0 = performance.now();
    await this.until(() => this.synced || this.ws !== ws || ws.readyState === WebSocket.CLOSED, timeoutMs, "synced");
    if (!this.synced || this.ws !== ws) throw new Error(`${this.user}/${this.device}: closed before synced`);
    this.connects++;
    return performance.now() - t0;
  }

  onData(ws, data) {
    if (ws !== this.ws) return;
    const at = performance.now();
    counters.framesIn++;
    if (data === "pong") return;
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      this.errors.push({ type: "client", code: "unparsable", message: String(data).slice(0, 200) });
      return;
    }
    switch (f.type) {
      case "hello":
        break;
      case "synced":
        this.synced = true;
        // Re-acknowledge what we hold (the new socket does not know) and resend
        // every send that never got `sent`, with the same id, in order.
        this.scheduleAck(true);
        if (this.opts.resend === false && this.connects > 0) this.pending.clear();
        this.onSocket.clear();
        this.pump();
        break;
      case "sent": {
        if (!this.sent.has(f.id)) this.sent.set(f.id, { msg: f.msg, at, ts: f.ts });
        this.pending.delete(f.id);
        break;
      }
      case "error":
        this.errors.push(f);
        if (f.code === "rate_limited" && typeof f.ref === "string" && this.pending.has(f.ref)) {
          // Not stored: send it again after a pause (order may suffer; the pacing avoids this).
          this.onSocket.delete(f.ref);
          clearTimeout(this.pumpTimer);
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = null;
            this.pump();
          }, 1000);
        }
        break;
      default:
        if (typeof f.seq === "number") {
          if (this.held.has(f.seq)) {
            this.replayedSeqs++;
            this.scheduleAck();
            break;
          }
          this.held.set(f.seq, f.type === "message" ? { type: f.type, id: f.id, from: f.from, msg: f.msg } : { type: f.type });
          if (f.seq > this.maxSeq) this.maxSeq = f.seq;
          if (f.type === "message") {
            const key = `${f.from}|${f.id}`;
            const n = (this.seenIds.get(key) ?? 0) + 1;
            this.seenIds.set(key, n);
            if (n > 1) this.duplicates++;
            this.messages.push({ frame: f, at });
          } else if (f.type === "receipt") {
            const into = f.status === "read" ? this.read : this.delivered;
            for (const m of f.msgs) if (!into.has(m)) into.set(m, at);
          }
          if (this.opts.autoAck !== false) this.scheduleAck();
        }
    }
    this.opts.onFrame?.(f, at, this);
    if (this.waiters.size > 0) for (const w of [...this.waiters]) w();
  }

  onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.closes.push({ code: ev.code, reason: ev.reason, at: performance.now() });
    this.synced = false;
    if (this.waiters.size > 0) for (const w of [...this.waiters]) w();
    if (this.opts.reconnect && !this.stopped) this.reconnectSoon();
  }

  async reconnectSoon() {
    for (let attempt = 0; !this.stopped; attempt++) {
      await sleep(Math.min(50 * 2 ** attempt, 1000) + Math.random() * 50);
      if (this.stopped) return;
      try {
        await this.connect(15_000);
        return;
      } catch {
        // server down or socket dropped again: try again
      }
    }
  }

  /**
   * One cumulative ack for everything held: right away (next I/O turn) if none
   * went out in the last ACK_GAP_MS, else at the end of that gap. Keeps acks
   * under the server's limit for acks and other frames (50/s) during a replay.
   */
  scheduleAck(force = false) {
    if (force) this.ackedSent = 0;
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    const wait = Math.max(0, (this.lastAckAt ?? -Infinity) + ACK_GAP_MS - performance.now());
    const fire = () => {
      this.ackScheduled = false;
      if (this.maxSeq > this.ackedSent && this.raw({ type: "ack", seq: this.maxSeq })) {
        this.ackedSent = this.maxSeq;
        this.lastAckAt = performance.now();
      }
    };
    if (wait === 0) setImmediate(fire);
    else setTimeout(fire, wait);
  }

  /** Sends a frame if the socket is open; false otherwise. */
  raw(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
      counters.framesOut++;
      return true;
    } catch {
      return false;
    }
  }

  /** Sends a message; kept until `sent` arrives and resent on reconnect. */
  send(to, id, text) {
    this.pending.set(id, { type: "send", id, to, text });
    this.pump();
  }

  /** Writes pending sends not yet written on this socket, in order, within the pacing. */
  pump() {
    if (!this.synced) return; // the reconnect pumps
    const now = performance.now();
    this.tokens = Math.min(SEND_BURST, this.tokens + ((now - this.tokensAt) * SEND_RATE) / 1000);
    this.tokensAt = now;
    for (const [id, frame] of this.pending) {
      if (this.onSocket.has(id)) continue;
      if (this.tokens < 1) {
        if (this.pumpTimer === null) {
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = null;
            this.pump();
          }, Math.ceil(((1 - this.tokens) * 1000) / SEND_RATE));
        }
        return;
      }
      if (!this.raw(frame)) return;
      this.onSocket.add(id);
      this.tokens -= 1;
    }
  }

  /** Resolves when pred() holds (checked after every frame and close), or rejects after timeoutMs. */
  until(pred, timeoutMs = 10_000, what = "condition") {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.user}/${this.device}: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** Closes for good (no reconnect). */
  close(code = 1000) {
    this.stopped = true;
    clearTimeout(this.pumpTimer);
    try {
      this.ws?.close(code, "bye");
    } catch {
      // already closed
    }
  }

  /** Closes this socket (the client will reconnect if it was built to). */
  drop(code = 1000) {
    try {
      this.ws?.close(code, "drop");
    } catch {
      // already closed
    }
  }
}

/** Connects many clients with bounded concurrency; returns per-connect times (ms). */
export async function connectAll(clients, concurrency = 32) {
  const times = new Array(clients.length);
  let next = 0;
  const worker = async () => {
    while (next < clients.length) {
      const i = next++;
      times[i] = await clients[i].connect();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker));
  return times;
}

/**
 * A bare socket to the floor object (bench worker only). With `greet`, the
 * floor sends one frame on connect and this resolves once it has arrived.
 * With `durable`, the socket is to the durable floor (bench/floor.ts: one
 * commit per object a frame passes through); `join` makes it a member of its
 * room's group there, for `{"to":"*"}`.
 */
export function floorSocket(base, room, peer, { replay = 0, greet = false, durable = false, join = false, onMessage } = {}) {
  const q = new URLSearchParams({ room, peer });
  if (replay) q.set("replay", String(replay));
  if (greet) q.set("greet", "1");
  if (join) q.set("join", "1");
  const path = durable ? "/bench/durable-floor/connect" : "/bench/floor/connect";
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}${path}?${q}`);
  let greeted;
  const greeting = new Promise((resolve) => (greeted = resolve));
  ws.onmessage = (ev) => {
    counters.framesIn++;
    greeted();
    // The durable floor's `sent` (bench/floor.ts writes it with JSON.stringify,
    // type first): no floor workload reads it, so no handler has to skip it.
    if (typeof ev.data === "string" && ev.data.startsWith('{"type":"sent"')) return;
    onMessage?.(ev.data, performance.now());
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => (greet ? greeting.then(() => resolve(ws)) : resolve(ws));
    ws.onerror = () => reject(new Error(`floor socket ${room}/${peer} failed`));
  });
}
