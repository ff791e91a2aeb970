// Helpers for a Durable Object's SQLite storage. Schema migrations: each object
// class keeps its migrations as an append-only list at the top of its schema
// module; the constructor applies the ones not yet applied. Never edit a
// shipped entry. earliest(): several deadline queries in one statement.

/**
 * The smallest value of several one-row queries (`SELECT MIN(x) AS t ...`),
 * NULLs ignored, in one statement: each exec costs a crossing into the
 * runtime, and the alarm's deadlines are asked several times per message.
 */
export function earliest(sql: SqlStorage, queries: readonly string[]): number | null {
  return sql.exec<{ t: number | null }>(`SELECT MIN(t) AS t FROM (${queries.join(" UNION ALL ")})`).one().t;
}

export function migrate(sql: SqlStorage, migrations: readonly string[]): void {
  // Read first: SQLite counts CREATE TABLE IF NOT EXISTS as a write even when
  // the table exists (sqlite3_stmt_readonly is false), and a write makes the
  // object commit, so every wake of every object cost a commit. An object
  // already up to date now wakes without writing.
  const known = sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_schema'").toArray().length > 0;
  if (!known) sql.exec("CREATE TABLE _schema (version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema").toArray()[0];
  const current = row?.version ?? 0;
  if (current >= migrations.length) return;
  for (let v = current; v < migrations.length; v++) sql.exec(migrations[v]!);
  if (row) sql.exec("UPDATE _schema SET version = ?", migrations.length);
  else sql.exec("INSERT INTO _schema (version) VALUES (?)", migrations.length);
}
