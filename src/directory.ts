// The user directory in D1: profiles only. Called by the Worker's routes and,
// once per user, by the user's object when it first sees that user.

export interface Profile {
  id: string;
  displayName: string;
}

/** Creates the user's row if it does not exist yet; returns the profile. */
export async function ensureUser(db: D1Database, user: string): Promise<Profile> {
  const now = Date.now();
  const row = await db
    .prepare(
      `INSERT INTO users (id, display_name, created_at, updated_at) VALUES (?1, ?1, ?2, ?2)
       ON CONFLICT(id) DO UPDATE SET id = id RETURNING id, display_name`,
    )
    .bind(user, now)
    .first<{ id: string; display_name: string }>();
  return { id: user, displayName: row?.display_name ?? user };
}

export async function getUser(db: D1Database, user: string): Promise<Profile | null> {
  const row = await db.prepare("SELECT id, display_name FROM users WHERE id = ?1").bind(user).first<{ id: string; display_name: string }>();
  return row ? { id: row.id, displayName: row.display_name } : null;
}

export async function setDisplayName(db: D1Database, user: string, displayName: string): Promise<Profile> {
  const now = Date.now();
  await db
    .prepare(
      `INSERT INTO users (id, display_name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
       ON CONFLICT(id) DO UPDATE SET display_name = ?2, updated_at = ?3`,
    )
    .bind(user, displayName, now)
    .run();
  return { id: user, displayName };
}

/** The subset of `users` (at most 100: D1 binds at most 100 parameters) that exist. */
export async function knownUsers(db: D1Database, users: string[]): Promise<Set<string>> {
  if (users.length === 0) return new Set();
  const placeholders = users.map((_, i) => `?${i + 1}`).join(", ");
  const rows = await db.prepare(`SELECT id FROM users WHERE id IN (${placeholders})`).bind(...users).all<{ id: string }>();
  return new Set(rows.results.map((r) => r.id));
}
