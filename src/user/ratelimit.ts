// Per-device rate limits: one token bucket per frame class per device, and a
// strike count that closes a device which keeps flooding after `rate_limited`.
// Called by the UserObject for every text frame before it is processed.
//
// State lives in memory on purpose: losing it (hibernation, eviction) refills
// the buckets, which only ever lets a well-behaved burst through. It is keyed
// by device, not by socket, so reconnecting does not refill a flooder's buckets
// while the object stays awake.
import { FLOOD_STRIKES, FLOOD_WINDOW_MS, RATE_LIMITS } from "../limits";

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

export class RateLimiter {
  private readonly devices = new Map<string, DeviceState>();

  take(device: string, type: unknown, now: number): Verdict {
    const state = this.stateOf(device, now);
    const cls = limitClassOf(type);
    const { perSecond, burst } = RATE_LIMITS[cls];
    const bucket = (state.buckets[cls] ??= { tokens: burst, at: now });
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * perSecond) / 1000);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return "ok";
    }
    if (now - state.strikesSince > FLOOD_WINDOW_MS) {
      state.strikes = 0;
      state.strikesSince = now;
    }
    state.strikes += 1;
    return state.strikes >= FLOOD_STRIKES ? "close" : "limited";
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

  /** Forgets devices idle long enough that their buckets are full and their strikes expired. */
  private prune(now: number): void {
    for (const [device, s] of this.devices) {
      if (now - s.touchedAt > FLOOD_WINDOW_MS) this.devices.delete(device);
    }
  }
}
