// Schema migrations for a Durable Object's SQLite storage. Each object class
// keeps its migrations as an append-only list at the top of its schema module;
// the constructor applies the ones not yet applied. Never edit a shipped entry.

export function migrate(sql: SqlStorage, migrations: readonly string[]): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _schema (version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema").toArray()[0];
  const current = row?.version ?? 0;
  if (current >= migrations.length) return;
  for (let v = current; v < migrations.length; v++) sql.exec(migrations[v]!);
  if (row) sql.exec("UPDATE _schema SET version = ?", migrations.length);
  else sql.exec("INSERT INTO _schema (version) VALUES (?)", migrations.length);
}
