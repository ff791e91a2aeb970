// The GroupObject's SQLite schema: an append-only list of migrations. Never edit
// an entry once it has shipped; add a new one.
import { OUTBOX_PLAIN_IDS, OUTBOX_SCHEMA } from "../outbox";
import { GROUP_MEDIA_SCHEMA } from "./media";

export const GROUP_MIGRATIONS: readonly string[] = [
  `
  -- Small facts: id, name, created_at, retention, head (last group seq).
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- The roster. ord is the order of joining: the longest-standing member is
  -- the lowest ord (AUTOINCREMENT never reuses a value, so a member who
  -- leaves and comes back goes to the end).
  CREATE TABLE members (
    ord INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    joined_at INTEGER NOT NULL
  );

  -- The group log: messages and events in group order (seq). body is what
  -- members' objects receive. A row is kept while an outbox row still refers
  -- to it (the chat is temporary: once every member's object has it, the
  -- content is dropped; the inboxes hold it until the devices do).
  CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    ts INTEGER NOT NULL
  );

  -- Every message posted (metadata only): dedup of posts on msg, and whether
  -- the sender was told that every member has it / has read it.
  CREATE TABLE messages (
    msg TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    ts INTEGER NOT NULL,
    delivered_sent INTEGER NOT NULL DEFAULT 0,
    read_sent INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX messages_pending ON messages(read_sent, msg);

  -- Per-member receipt status: one row per member the message counts for (the
  -- members at post time but the sender; a member who leaves loses its rows).
  CREATE TABLE msg_status (
    msg TEXT NOT NULL,
    user TEXT NOT NULL,
    delivered_at INTEGER,
    read_at INTEGER,
    PRIMARY KEY (msg, user)
  );
  CREATE INDEX msg_status_user ON msg_status(user);
  ${OUTBOX_SCHEMA}
  `,
  `
  -- Retention (src/group/retention.ts): the history of messages posted while
  -- the group was permanent (frame as members receive it, without seq), and
  -- the disappearing time of log entries still being fanned out.
  CREATE TABLE history (
    msg TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    frame TEXT NOT NULL,
    ts INTEGER NOT NULL,
    expires_at INTEGER
  );
  CREATE INDEX history_expires ON history(expires_at) WHERE expires_at IS NOT NULL;
  `,
  // 3: who still holds a copy of each media message (src/group/media.ts).
  GROUP_MEDIA_SCHEMA,
  // 4: edits and deletes applied to a message (src/group/retention.ts): a retried
  // one (amended_n already reached) is ignored, and nothing follows a delete.
  `ALTER TABLE messages ADD COLUMN amended_n INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;`,
  // 5: members who left or were removed after a message reached them (their
  // msg_status rows go when they leave): a delete for everyone still reaches
  // their copy (src/group/receipts.ts forget, src/group/retention.ts amend).
  `CREATE TABLE departed (
    msg TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (msg, user)
  );`,
  // 6: the outbox without AUTOINCREMENT (src/outbox.ts): one page less in every
  // commit that queues hand-offs.
  OUTBOX_PLAIN_IDS,
];
