// Helpers for a Durable Object's SQLite storage. Schema migrations: each object
// class keeps its migrations as an append-only list at the top of its schema
// module; the constructor applies the ones not yet applied. Never edit a
// shipped entry; a fresh database gets the schema they lead to in one step.
// earliest(): several deadline queries in one statement.

/**
 * The smallest value of several one-row queries (`SELECT MIN(x) AS t ...`),
 * NULLs ignored, in one statement: each exec costs a crossing into the
 * runtime, and the alarm's deadlines are asked several times per message.
 */
export function earliest(sql: SqlStorage, queries: readonly string[]): number | null {
  return sql.exec<{ t: number | null }>(`SELECT MIN(t) AS t FROM (${queries.join(" UNION ALL ")})`).one().t;
}

/**
 * The schema a fresh database ends up with, per migration list, read back from
 * the first database this isolate migrated from nothing. Running the list costs
 * a new object about 5 ms of the thread here: every ALTER TABLE and RENAME makes
 * SQLite parse the whole schema again. Replaying the result is a few CREATEs.
 * It is read from sqlite_master, the text SQLite itself rebuilds the schema
 * from, so it cannot drift from the list it came from.
 */
const freshSchemas = new WeakMap<readonly string[], string>();

/** The CREATE statements of `sql`'s own tables and indexes (not SQLite's, workerd's or _schema), tables first. */
export function schemaOf(sql: SqlStorage): string {
  return sql
    .exec<{ sql: string }>(
      `SELECT sql FROM sqlite_master
       WHERE sql IS NOT NULL AND substr(name, 1, 7) <> 'sqlite_' AND substr(name, 1, 4) <> '_cf_' AND name <> '_schema'
       ORDER BY type <> 'table', rowid`,
    )
    .toArray()
    .map((r) => `${r.sql};`)
    .join("\n");
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
  const fresh = current === 0 ? freshSchemas.get(migrations) : undefined;
  if (fresh !== undefined) sql.exec(fresh);
  else {
    for (let v = current; v < migrations.length; v++) sql.exec(migrations[v]!);
    if (current === 0) freshSchemas.set(migrations, schemaOf(sql));
  }
  if (row) sql.exec("UPDATE _schema SET version = ?", migrations.length);
  else sql.exec("INSERT INTO _schema (version) VALUES (?)", migrations.length);
}
