// One logical connection to /v1/connect that stays up: opens a socket through a
// pluggable factory, parses every frame with the protocol schema, detects dead
// sockets with `ping`, and reconnects with capped exponential backoff and
// jitter. It knows nothing about chats; ChatClient (client.ts) drives it.
import { ServerFrame } from "../protocol";
import { Pacer } from "./pacer";

/** The part of a WebSocket the client uses; browser, Node 22 and workerd sockets all fit. */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  readonly readyState: number;
  addEventListener(type: "message", fn: (ev: { data: unknown }) => void): void;
  addEventListener(type: "close", fn: (ev: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", fn: (ev: unknown) => void): void;
  addEventListener(type: "open", fn: (ev: unknown) => void): void;
  /** Present on workerd's WebSocketPair ends: called after listeners are attached. */
  accept?: () => void;
}

/**
 * Opens a socket to `url` (ws: or wss:). It may return before the socket is
 * open; the connection treats the server's `hello` as "connected". Tests in
 * workerd plug in one that upgrades through `exports.default.fetch`.
 */
export type SocketFactory = (url: string) => SocketLike | Promise<SocketLike>;

export const defaultSocketFactory: SocketFactory = (url) => new WebSocket(url) as unknown as SocketLike;

export interface BackoffOptions {
  /** First retry delay (ms); doubles per failed attempt. */
  baseMs: number;
  /** Cap on the delay (ms). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/** "Equal jitter": half the exponential delay fixed, half random, so a crowd spreads out. */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** Close codes after which reconnecting would only fight another connection. */
const CLOSE_REPLACED = 4000;
const OPEN = 1;
const CLOSE_TOKEN_EXPIRED = 4001;
const CLOSE_TOO_MANY_DEVICES = 4009;

export interface ConnectionHooks {
  /** The socket's URL; `conn` is this attempt's connection number (docs/PROTOCOL.md, "Additions"). */
  url(conn: number): Promise<string>;
  factory: SocketFactory;
  backoff: BackoffOptions;
  /** Every parsed frame of the current socket, in order. */
  onFrame(frame: ServerFrame, generation: number): void;
  /** The socket closed (or failed to open); `willRetryInMs` null when not reconnecting. */
  onDown(info: { code?: number; attempt: number; willRetryInMs: number | null; replaced: boolean }): void;
  onConnecting(attempt: number): void;
  /** A frame the server sent that is outside the protocol (logged, dropped). */
  onBadFrame(raw: string, why: string): void;
  /** Frames this side queued that the socket went down before writing (serialized). */
  onDropped?(frames: string[]): void;
  /** A frame this side queued is on the socket now (serialized). */
  onWritten?(data: string): void;
  /** How long to wait for `hello` after opening, and between keepalive pings (ms). */
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
}

export class Connection {
  private socket: SocketLike | null = null;
  /**
   * The generation of the socket being opened (url and factory not yet done), or
   * null. One attempt at a time: two sockets of one device id replace each other
   * on the server, and the loser would take the 4000 for another tab and stop.
   */
  private opening: number | null = null;
  /** Increments per socket; frames and closes of an old socket are ignored. */
  generation = 0;
  private attempt = 0;
  private stopped = true;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private helloTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private helloSeen = false;
  /**
   * The connection number of the last attempt, sent as `conn`: the server keeps a
   * device's socket with the highest, so an attempt this client gave up (closed
   * before its hello, or superseded as it opened) whose upgrade reaches the server
   * after the next one's is refused there instead of replacing it. Milliseconds,
   * so another tab of the same device, which opens later, wins; never lower than
   * the last one plus 1, whatever the clock does.
   */
  private lastConn = 0;
  /** Keeps what this device writes under the server's rate limits (pacer.ts). */
  private readonly pacer = new Pacer(
    (data) => this.write(data),
    Date.now,
    (frames) => this.h.onDropped?.(frames),
  );

  constructor(private readonly h: ConnectionHooks) {}

  get isOpen(): boolean {
    return this.socket !== null && this.helloSeen;
  }

  /** Connects (and keeps reconnecting); `lastConn`: the highest connection number this device sent before (a stored one). */
  start(lastConn = 0): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lastConn = Math.max(this.lastConn, lastConn);
    void this.open();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const s = this.socket;
    this.socket = null;
    this.generation++;
    this.opening = null; // an attempt still under way sees the new generation and closes its socket
    this.pacer.clear();
    if (s) safeClose(s, 1000, "client stopped");
  }

  /** Skips the backoff wait (the browser came back online, the user pressed retry). */
  reconnectNow(): void {
    if (this.stopped) return;
    if (this.socket || this.opening !== null) return; // an attempt is under way: it is the reconnect
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    void this.open();
  }

  /** Drops the current socket as if the network failed (then reconnects). */
  drop(): void {
    if (this.socket) this.down(this.generation, undefined);
  }

  /**
   * Sends a frame on an open socket, paced: it may wait (in order, behind the
   * earlier frames of its rate-limit class) for a token. False when there is no
   * open socket (the caller queues); a frame that was waiting when the socket
   * went down is dropped, like one lost in flight, and the caller's
   * resend-after-reconnect covers it.
   */
  send(frame: object): boolean {
    if (!this.socket || !this.helloSeen) return false;
    const gen = this.generation;
    this.pacer.push(frame);
    return gen === this.generation;
  }

  /** The server answered `rate_limited` to this frame: it goes out again first, after a pause. False when the socket is gone. */
  sendAgain(frame: object): boolean {
    if (!this.socket || !this.helloSeen) return false;
    const gen = this.generation;
    this.pacer.putBack(frame);
    return gen === this.generation;
  }

  /** A `rate_limited` answer naming no frame: that class of frames pauses a while. */
  slowDown(type: string): void {
    this.pacer.slowDown(type);
  }

  /** Frames waiting for the pacer. */
  get queued(): number {
    return this.pacer.queued;
  }

  private write(data: string): boolean {
    if (!this.socket || !this.helloSeen) return false;
    // A socket closing without a close event yet (the close handshake can take
    // seconds, or never come) is down now: browsers would silently drop the frame.
    if (this.socket.readyState !== OPEN) {
      this.down(this.generation, undefined);
      return false;
    }
    try {
      this.socket.send(data);
      this.h.onWritten?.(data);
      return true;
    } catch {
      this.down(this.generation, undefined);
      return false;
    }
  }

  private async open(): Promise<void> {
    if (this.stopped || this.socket || this.opening !== null) return;
    const gen = ++this.generation;
    this.opening = gen;
    this.helloSeen = false;
    this.h.onConnecting(this.attempt);
    // Bounded like the wait for hello: a token fetch or a socket that never settles
    // must not hold every later reconnect back (reconnectNow waits for this attempt).
    const stuck = setTimeout(() => {
      if (this.opening !== gen || gen !== this.generation) return;
      this.opening = null;
      this.down(gen, undefined); // a socket that still comes is closed as superseded
    }, this.h.helloTimeoutMs ?? 15_000);
    let socket: SocketLike;
    try {
      this.lastConn = Math.max(Date.now(), this.lastConn + 1);
      socket = await this.h.factory(await this.h.url(this.lastConn));
    } catch {
      clearTimeout(stuck);
      if (this.opening === gen) this.opening = null;
      if (gen === this.generation) this.down(gen, undefined);
      return;
    }
    clearTimeout(stuck);
    if (this.opening === gen) this.opening = null;
    if (gen !== this.generation || this.stopped) {
      safeClose(socket, 1000, "superseded");
      return;
    }
    this.socket = socket;
    socket.addEventListener("message", (ev) => {
      if (gen !== this.generation) return;
      this.lastFrameAt = Date.now();
      const data = typeof ev.data === "string" ? ev.data : "";
      if (data === "pong") return;
      let parsed: ReturnType<typeof ServerFrame.safeParse>;
      try {
        parsed = ServerFrame.safeParse(JSON.parse(data));
      } catch {
        this.h.onBadFrame(data, "not JSON");
        return;
      }
      if (!parsed.success) {
        this.h.onBadFrame(data, parsed.error.message);
        return;
      }
      if (parsed.data.type === "hello") {
        this.helloSeen = true;
        if (this.helloTimer) clearTimeout(this.helloTimer);
        this.helloTimer = null;
      }
      // The backoff starts again only once a connection fully worked: a server that
      // says hello and then fails (1011 in the replay) would otherwise be retried
      // every few hundred ms by every client at once.
      if (parsed.data.type === "synced") this.attempt = 0;
      this.h.onFrame(parsed.data, gen);
    });
    socket.addEventListener("close", (ev) => this.down(gen, ev.code));
    socket.addEventListener("error", () => this.down(gen, undefined));
    socket.accept?.();
    this.lastFrameAt = Date.now();
    this.helloTimer = setTimeout(() => this.down(gen, undefined), this.h.helloTimeoutMs ?? 15_000);
    this.startKeepalive(gen);
  }

  /** Pings when quiet; a socket silent past the pong timeout is dead (half-open TCP). */
  private startKeepalive(gen: number): void {
    const interval = this.h.pingIntervalMs ?? 25_000;
    const timeout = this.h.pongTimeoutMs ?? 10_000;
    let pingedAt = 0;
    this.pingTimer = setInterval(() => {
      if (gen !== this.generation || !this.socket) return;
      if (this.helloSeen && this.socket.readyState !== OPEN) return this.down(gen, undefined);
      const now = Date.now();
      if (pingedAt > this.lastFrameAt && now - pingedAt > timeout) return this.down(gen, undefined);
      if (now - this.lastFrameAt >= interval && pingedAt <= this.lastFrameAt) {
        pingedAt = now;
        try {
          this.socket.send("ping");
        } catch {
          this.down(gen, undefined);
        }
      }
    }, Math.min(interval, timeout) / 2);
  }

  private down(gen: number, code: number | undefined): void {
    if (gen !== this.generation) return;
    const s = this.socket;
    this.socket = null;
    this.helloSeen = false;
    this.generation++;
    this.pacer.clear();
    this.clearTimers();
    if (s) safeClose(s, 1000, "reconnecting");
    if (this.stopped) return;
    if (code === CLOSE_REPLACED) {
      // Another connection with this device id took over (a second tab): yield to it.
      this.stopped = true;
      this.h.onDown({ code, attempt: this.attempt, willRetryInMs: null, replaced: true });
      return;
    }
    // An expired token reconnects at once (url() fetches a fresh one); too many
    // devices waits longer; everything else backs off from the base.
    const attempt = code === CLOSE_TOO_MANY_DEVICES ? Math.max(this.attempt, 5) : this.attempt;
    const delay = code === CLOSE_TOKEN_EXPIRED && this.attempt === 0 ? 0 : backoffDelay(attempt, this.h.backoff);
    this.attempt = attempt + 1;
    this.h.onDown({ code, attempt: this.attempt, willRetryInMs: delay, replaced: false });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.open();
    }, delay);
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.retryTimer = this.helloTimer = this.pingTimer = null;
  }
}

function safeClose(s: SocketLike, code: number, reason: string): void {
  try {
    s.close(code, reason);
  } catch {
    // already closed
  }
}
