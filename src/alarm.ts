// The one alarm a Durable Object has, shared by everything that needs a wake-up
// (outbox retries, token expiry, housekeeping, disappearing messages, presence).
// Each object gathers its candidate times and asks for the earliest; the alarm
// is only moved earlier, never later: an early alarm finds nothing due and
// reschedules, which is cheaper than reading the stored alarm on every call.

export class AlarmClock {
  /** The alarm time as last set; null when none is set. */
  private at: number | null = null;

  constructor(private readonly storage: DurableObjectStorage) {}

  /** When the alarm is set for, or null: a candidate at or after it cannot change anything. */
  get setFor(): number | null {
    return this.at;
  }

  /** Call from the constructor inside blockConcurrencyWhile. */
  async load(): Promise<void> {
    this.at = await this.storage.getAlarm();
  }

  /** Call first thing in alarm(): the alarm that fired is gone. */
  fired(): void {
    this.at = null;
  }

  /** Sets the alarm to the earliest candidate if that is earlier than the one set. */
  request(candidates: number[]): void {
    if (candidates.length === 0) return;
    const next = Math.min(...candidates);
    if (this.at === null || next < this.at) {
      this.at = next;
      this.storage.setAlarm(next).catch((err: unknown) => {
        // Not set after all: forget it, so the next request sets one again.
        if (this.at === next) this.at = null;
        console.warn("setAlarm failed", String(err));
      });
    }
  }
}
