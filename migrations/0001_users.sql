-- The user directory: who exists and what they are called. Everything else a
-- user owns lives in that user's Durable Object.
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
