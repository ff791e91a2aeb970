// Per-device rate limits: one token bucket per frame class per device, and a
// strike count that closes a device which keeps flooding after `rate_limited`.
// The user's devices together also share a bucket per class (USER_RATE_SHARE
// times a device's) and a strike count, since the device id is the client's to
// choose: a flooder closed with 4008 gets no fresh burst under a new id.
// Called by the UserObject for every text frame before it is processed, and
// for the HTTP calls of HTTP_RATE_LIMITS (takeHttp).
//
// State lives in memory on purpose: losing it (hibernation, eviction) refills
// the buckets, which only ever lets a well-behaved burst through. It is keyed
// by device, not by socket, so reconnecting does not refill a flooder's buckets
// while the object stays awake.
import { FLOOD_STRIKES, FLOOD_WINDOW_MS, HTTP_RATE_LIMITS, RATE_LIMITS, USER_RATE_SHARE } from "../limits";

export type LimitClass = keyof typeof RATE_LIMITS;
/** ok: process the frame; limited: answer rate_limited; close: answer and close with 4008. */
export type Verdict = "ok" | "limited" | "close";

/** The bucket a frame type draws from (unknown types count as "other"; parsing rejects them next). */
export function limitClassOf(type: unknown): LimitClass {
  switch (type) {
    case "send":
    case "edit":
    case "delete":
      return "send";
    case "typing":
    case "active":
      return "signal";
    case "watch":
      return "watch";
    case "ack":
      return "ack";
    default:
      return "other";
  }
}

interface Bucket {
  tokens: number;
  at: number;
}

interface DeviceState {
  buckets: Partial<Record<LimitClass, Bucket>>;
  strikes: number;
  strikesSince: number;
  touchedAt: number;
}

/** Device entries kept before idle ones are pruned (a user has at most a handful of devices). */
const MAX_TRACKED_DEVICES = 32;
/** The entry of all the user's devices together (no device id has this form). */
const ALL_DEVICES = "\u0000all";
/** Callers whose key claims are counted; past this, the idle ones are forgotten. */
const MAX_TRACKED_CALLERS = 1_000;
/** Longest time any HTTP bucket takes to refill from empty (claim: 10 at one per 6 s). */
const HTTP_IDLE_MS = 60_000;

export class RateLimiter {
  private readonly devices = new Map<string, DeviceState>();
  /** HTTP calls: "write" per user, "claim:<caller>" per caller of this user's keys. */
  private readonly http = new Map<string, Bucket & { touchedAt: number }>();

  take(device: string, type: unknown, now: number): Verdict {
    const state = this.stateOf(device, now);
    const all = this.stateOf(ALL_DEVICES, now);
    const cls = limitClassOf(type);
    const { perSecond, burst } = RATE_LIMITS[cls];
    const mine = refill((state.buckets[cls] ??= { tokens: burst, at: now }), perSecond, burst, now);
    const ours = refill((all.buckets[cls] ??= { tokens: burst * USER_RATE_SHARE, at: now }), perSecond * USER_RATE_SHARE, burst * USER_RATE_SHARE, now);
    if (mine.tokens >= 1 && ours.tokens >= 1) {
      mine.tokens -= 1;
      ours.tokens -= 1;
      return "ok";
    }
    // A strike counts for the device and for the user: either reaching the limit closes.
    return [state, all].map((s) => strike(s, now)).some((n) => n >= FLOOD_STRIKES) ? "close" : "limited";
  }

  /** One HTTP call of this kind (a claim is counted per `caller`, who claims); false: answer rate_limited. */
  takeHttp(kind: keyof typeof HTTP_RATE_LIMITS, now: number, caller = ""): boolean {
    const key = kind === "claim" ? `claim:${caller}` : kind;
    const { perSecond, burst } = HTTP_RATE_LIMITS[kind];
    let bucket = this.http.get(key);
    if (!bucket) {
      if (this.http.size >= MAX_TRACKED_CALLERS) this.pruneHttp(now);
      bucket = { tokens: burst, at: now, touchedAt: now };
      this.http.set(key, bucket);
    }
    refill(bucket, perSecond, burst, now);
    bucket.touchedAt = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private stateOf(device: string, now: number): DeviceState {
    let state = this.devices.get(device);
    if (!state) {
      if (this.devices.size >= MAX_TRACKED_DEVICES) this.prune(now);
      state = { buckets: {}, strikes: 0, strikesSince: now, touchedAt: now };
      this.devices.set(device, state);
    }
    state.touchedAt = now;
    return state;
  }

  private pruneHttp(now: number): void {
    // Idle this long, every HTTP bucket has refilled: forgetting it changes nothing.
    for (const [k, b] of this.http) if (now - b.touchedAt > HTTP_IDLE_MS) this.http.delete(k);
    // Still full (a crowd of callers at once): the oldest go.
    for (const k of this.http.keys()) {
      if (this.http.size < MAX_TRACKED_CALLERS) break;
      this.http.delete(k);
    }
  }

  /** Forgets devices idle long enough that their buckets are full and their strikes expired (never the user's entry). */
  private prune(now: number): void {
    for (const [device, s] of this.devices) {
      if (device !== ALL_DEVICES && now - s.touchedAt > FLOOD_WINDOW_MS) this.devices.delete(device);
    }
  }
}

function refill<B extends Bucket>(b: B, perSecond: number, burst: number, now: number): B {
  b.tokens = Math.min(burst, b.tokens + ((now - b.at) * perSecond) / 1000);
  b.at = now;
  return b;
}

/** Counts a refusal in the flood window; returns the strikes in it. */
function strike(s: DeviceState, now: number): number {
  if (now - s.strikesSince > FLOOD_WINDOW_MS) {
    s.strikes = 0;
    s.strikesSince = now;
  }
  return ++s.strikes;
}
