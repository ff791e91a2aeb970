// The user's privacy settings (last seen visibility, read receipts), stored in
// the meta table of the user's object and cached in memory. Read by presence
// (what others see, and the reciprocal rule) and by chat (read receipts).
import { PrivacySettings, type PrivacyBody } from "../protocol";

export const DEFAULT_PRIVACY: PrivacySettings = { lastSeen: "everyone", readReceipts: true };

export class PrivacyStore {
  private cached: PrivacySettings | null = null;

  constructor(private readonly sql: SqlStorage) {}

  get(): PrivacySettings {
    if (this.cached) return this.cached;
    const row = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'privacy'").toArray()[0];
    let settings = DEFAULT_PRIVACY;
    if (row) {
      // Read defensively: a value of an older shape falls back to the defaults field by field.
      const parsed = PrivacySettings.partial().safeParse(safeJson(row.value));
      if (parsed.success) settings = { ...DEFAULT_PRIVACY, ...parsed.data };
    }
    this.cached = settings;
    return settings;
  }

  /** Applies a change and stores it; the caller acknowledges only after this returns (output gate). */
  set(change: PrivacyBody): PrivacySettings {
    const next: PrivacySettings = { ...this.get() };
    if (change.lastSeen !== undefined) next.lastSeen = change.lastSeen;
    if (change.readReceipts !== undefined) next.readReceipts = change.readReceipts;
    this.sql.exec(
      "INSERT INTO meta (key, value) VALUES ('privacy', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      JSON.stringify(next),
    );
    this.cached = next;
    return next;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
