// Paces what the client writes to its socket so it stays inside the server's
// per-device rate limits (RATE_LIMITS in src/limits.ts, enforced per frame class
// by src/user/ratelimit.ts, whose limitClassOf is reused so both sides agree on
// the classes). One token bucket per class, a little under the server's; a frame
// without a token waits in its class's queue, in order, and goes out when one
// refills. Classes drain independently: an ack never waits behind 150 sends,
// and sends (with edits and deletes, one class) never overtake each other.
//
// The buckets outlive a socket (the server keys its buckets by device, not by
// socket, so a reconnect refills neither); the queues do not: frames queued for
// a socket that went down are dropped, and the sync engine re-sends what
// matters on the next socket (unconfirmed sends by id, the ack at `synced`).
import { RATE_LIMITS } from "../limits";
import { limitClassOf, type LimitClass } from "../user/ratelimit";

/**
 * Share of the server's rate and burst the client uses: the server counts
 * arrivals, and network jitter can bunch frames that left evenly spaced.
 */
export const PACE_RATE_SHARE = 0.9;
export const PACE_BURST_SHARE = 0.8;
/** After a `rate_limited` answer the class is held this long, doubling when the class is refused again within HOLD_RESET_MS of the last hold, up to the cap. */
export const HOLD_BASE_MS = 200;
export const HOLD_MAX_MS = 5_000;
const HOLD_RESET_MS = 10_000;

interface Lane {
  perMs: number;
  burst: number;
  tokens: number;
  at: number;
  queue: string[];
  /** Frames put back at the head (rate_limited) and not written yet: later put-backs go behind them. */
  putBack: number;
  holds: number;
  heldUntil: number;
}

export class Pacer {
  private readonly lanes = new Map<LimitClass, Lane>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  /**
   * `write` puts one serialized frame on the socket; false when the socket is
   * gone (the queues are then dropped). `dropped` hears of every frame dropped
   * unwritten, so that its sender can send it again on the next socket.
   */
  constructor(
    private readonly write: (data: string) => boolean,
    private readonly now: () => number = Date.now,
    private readonly dropped: (data: string[]) => void = () => {},
  ) {}

  /** Sends the frame now if its class has a token, else queues it behind the class's earlier frames. */
  push(frame: object): void {
    this.lane(limitClassOf((frame as { type?: unknown }).type)).queue.push(JSON.stringify(frame));
    this.drain();
  }

  /**
   * The server answered `rate_limited` to this frame (it was not processed):
   * it goes out again before anything else of its class, and the class waits a
   * while first (its bucket is empty on the server too).
   */
  putBack(frame: object): void {
    const lane = this.lane(limitClassOf((frame as { type?: unknown }).type));
    lane.queue.splice(lane.putBack++, 0, JSON.stringify(frame));
    this.hold(lane);
    this.drain();
  }

  /** A `rate_limited` answer that names no frame (an ack, a read): the class still waits. */
  slowDown(type: unknown): void {
    this.hold(this.lane(limitClassOf(type)));
    this.drain();
  }

  /** Frames waiting, all classes. */
  get queued(): number {
    let n = 0;
    for (const l of this.lanes.values()) n += l.queue.length;
    return n;
  }

  /** The socket went down: what waits is dropped (the buckets stay). */
  clear(unwritten: string[] = []): void {
    const lost = [...unwritten];
    for (const l of this.lanes.values()) {
      lost.push(...l.queue);
      l.queue = [];
      l.putBack = 0;
    }
    if (lost.length > 0) this.dropped(lost);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private lane(cls: LimitClass): Lane {
    let lane = this.lanes.get(cls);
    if (!lane) {
      const { perSecond, burst } = RATE_LIMITS[cls];
      const b = Math.max(1, Math.floor(burst * PACE_BURST_SHARE));
      lane = { perMs: (perSecond * PACE_RATE_SHARE) / 1000, burst: b, tokens: b, at: this.now(), queue: [], putBack: 0, holds: 0, heldUntil: 0 };
      this.lanes.set(cls, lane);
    }
    return lane;
  }

  private refill(l: Lane, now: number): void {
    l.tokens = Math.min(l.burst, l.tokens + (now - l.at) * l.perMs);
    l.at = now;
  }

  /**
   * Empties the bucket and more: no token until the hold has passed. Answers to
   * frames that were in flight together are one event: only a refusal after a
   * hold has passed makes the next one longer.
   */
  private hold(l: Lane): void {
    const now = this.now();
    if (now < l.heldUntil) return;
    this.refill(l, now);
    l.holds = now - l.heldUntil > HOLD_RESET_MS ? 0 : l.holds + 1;
    const ms = Math.min(HOLD_MAX_MS, HOLD_BASE_MS * 2 ** l.holds);
    l.heldUntil = now + ms;
    l.tokens = Math.min(l.tokens, 1 - ms * l.perMs);
  }

  private drain(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const now = this.now();
    let wait = Infinity;
    for (const l of this.lanes.values()) {
      this.refill(l, now);
      while (l.queue.length > 0 && l.tokens >= 1) {
        const data = l.queue.shift()!;
        if (l.putBack > 0) l.putBack--;
        l.tokens -= 1;
        if (!this.write(data)) return this.clear([data]);
      }
      if (l.queue.length > 0) wait = Math.min(wait, (1 - l.tokens) / l.perMs);
    }
    if (wait !== Infinity) this.timer = setTimeout(() => this.drain(), Math.max(1, Math.ceil(wait)));
  }
}
