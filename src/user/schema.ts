// The UserObject's SQLite schema: an append-only list of migrations. Never edit
// an entry once it has shipped; add a new one.
import { OUTBOX_PLAIN_IDS, OUTBOX_SCHEMA } from "../outbox";
import { MEDIA_SCHEMA } from "./media";
import { MEDIA_HOLDS_SCHEMA } from "./media-holds";
import { PRESENCE_SCHEMA } from "./presence";

export const USER_MIGRATIONS: readonly string[] = [
  `
  -- Small facts about this user: its id, the inbox head, privacy, last seen.
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- The inbox: one sequence per user shared by all its devices. frame is the
  -- exact JSON sent to devices (seq included). origin is the device whose own
  -- send produced the entry: that device is not sent its own message.
  CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    chat TEXT NOT NULL,
    msg TEXT,
    origin TEXT,
    ts INTEGER NOT NULL,
    frame TEXT NOT NULL
  );
  CREATE INDEX inbox_ts ON inbox(ts);

  -- Every device ever connected, with how far it has acknowledged.
  CREATE TABLE devices (
    device TEXT PRIMARY KEY,
    acked INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
  );

  -- Idempotency of send: client id -> the message it made.
  CREATE TABLE sent_ids (id TEXT PRIMARY KEY, msg TEXT NOT NULL, ts INTEGER NOT NULL, digest TEXT NOT NULL);

  -- Messages this user sent, for receipt dedup (each status reported once).
  CREATE TABLE outgoing (
    msg TEXT PRIMARY KEY,
    chat TEXT NOT NULL,
    ts INTEGER NOT NULL,
    delivered_at INTEGER,
    read_at INTEGER
  );

  -- Messages this user received: dedup of deliveries (kept after the inbox
  -- entry is purged) and which receipts were already sent.
  CREATE TABLE received (
    msg TEXT PRIMARY KEY,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX received_chat ON received(chat, msg);
  CREATE INDEX received_seq ON received(seq);

  -- Inbox ranges purged by expiry before every device had them: sent as gap.
  CREATE TABLE gaps (from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL);
  ${OUTBOX_SCHEMA}
  `,
  `
  -- Retention: per-chat settings (this user's copy; a one-to-one chat's two
  -- copies converge on the newest change), the history of permanent chats,
  -- and expiry times of disappearing messages.
  CREATE TABLE chat_settings (
    chat TEXT PRIMARY KEY,
    retention TEXT NOT NULL,
    disappear_s INTEGER,
    changed_at INTEGER NOT NULL,
    changed_by TEXT NOT NULL
  );
  CREATE TABLE history (
    msg TEXT PRIMARY KEY,
    chat TEXT NOT NULL,
    frame TEXT NOT NULL,
    ts INTEGER NOT NULL,
    expires_at INTEGER
  );
  CREATE INDEX history_chat ON history(chat, msg);
  CREATE INDEX history_expires ON history(expires_at) WHERE expires_at IS NOT NULL;
  ALTER TABLE inbox ADD COLUMN expires_at INTEGER;
  CREATE INDEX inbox_expires ON inbox(expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX inbox_msg ON inbox(msg) WHERE msg IS NOT NULL;
  `,
  // 3: media uploads, their references and grants (src/user/media.ts).
  MEDIA_SCHEMA,
  // 4: a media reference ends when its message can no longer be retained.
  `ALTER TABLE media_refs ADD COLUMN expires_at INTEGER;
   CREATE INDEX media_refs_expires ON media_refs(expires_at) WHERE expires_at IS NOT NULL;`,
  // 5: groups.
  `
  -- Groups this user is or was in (src/user/groups.ts), kept up to date by the
  -- groups' events. role is NULL once the user is no longer a member.
  -- last_seq is the highest group seq applied: entries arrive in that order,
  -- so it dedups retried hand-offs.
  CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT,
    last_seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  // 6: when a message disappears, so do the edits of it (their events carry its text).
  `ALTER TABLE received ADD COLUMN expires_at INTEGER;
   ALTER TABLE outgoing ADD COLUMN expires_at INTEGER;`,
  // 7: presence watches (src/user/presence.ts).
  PRESENCE_SCHEMA,
  // 8: the e2ee key directory.
  `
  -- End-to-end encryption: the public keys of this user's devices (the key
  -- directory, src/user/keys.ts). A device with a row here is a "current
  -- device": e2ee messages must carry a ciphertext for it. Only public keys.
  CREATE TABLE key_devices (
    device TEXT PRIMARY KEY,
    identity_key TEXT NOT NULL,
    signing_key TEXT NOT NULL,
    spk_id INTEGER NOT NULL,
    spk TEXT NOT NULL,
    spk_signature TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  -- One-time prekeys: each handed out once, deleted in the same step.
  CREATE TABLE one_time_prekeys (
    device TEXT NOT NULL,
    key_id INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    PRIMARY KEY (device, key_id)
  );
  `,
  // 9: who still holds a copy of a temporary chat's media message (src/user/media-holds.ts).
  MEDIA_HOLDS_SCHEMA,
  // 10: edits and deletes applied to a message, on both sides (src/user/chat.ts):
  // amended_n is the sender's count of them (a hand-off carrying one already
  // applied is a retry, and is ignored); deleted: no edit or delete may follow.
  `ALTER TABLE outgoing ADD COLUMN amended_n INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE outgoing ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE received ADD COLUMN amended_n INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE received ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;`,
  // 11: the highest msg id each chat was read up to (src/user/chat.ts read()). In a
  // group, messages of different senders may arrive after a read that covers them.
  `CREATE TABLE read_marks (chat TEXT PRIMARY KEY, up_to TEXT NOT NULL);`,
  // 12: whether a message this user sent was end-to-end encrypted (NULL: sent before
  // this was recorded). Its edits must be too, and a plain message's must not be.
  `ALTER TABLE outgoing ADD COLUMN encrypted INTEGER;`,
  // 13: what a device's keys were (src/user/keys.ts): one-time prekeys already handed
  // out and signed prekeys already replaced, so a repeated or stale upload cannot bring
  // them back. Forgotten when the device gets new identity keys or is removed.
  `CREATE TABLE claimed_prekeys (device TEXT NOT NULL, key_id INTEGER NOT NULL, claimed_at INTEGER NOT NULL, PRIMARY KEY (device, key_id));
   CREATE TABLE retired_spks (device TEXT NOT NULL, spk_id INTEGER NOT NULL, PRIMARY KEY (device, spk_id));`,
  // 14: a message's media references are found by msg when its last holder lets go
  // (every temporary media message) and on delete for everyone: without this index
  // each of those read the whole table, which grows with every media message kept.
  `CREATE INDEX media_refs_msg ON media_refs(msg);`,
  // 15: the inbox's ts index served only the daily purge of entries over 30 days old,
  // which now reads them by seq (appended in time order), and it cost a page in every
  // commit that appends or purges: four per one-to-one message.
  `DROP INDEX inbox_ts;`,
  // 16: the outbox without AUTOINCREMENT (src/outbox.ts), and the two tables every send
  // writes keyed by their text primary key alone (WITHOUT ROWID): each had a rowid table
  // and an index on the key, two pages per insert where one does.
  `${OUTBOX_PLAIN_IDS}
   CREATE TABLE sent_ids_new (id TEXT PRIMARY KEY, msg TEXT NOT NULL, ts INTEGER NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID;
   INSERT INTO sent_ids_new (id, msg, ts, digest) SELECT id, msg, ts, digest FROM sent_ids;
   DROP TABLE sent_ids;
   ALTER TABLE sent_ids_new RENAME TO sent_ids;
   CREATE TABLE outgoing_new (
     msg TEXT PRIMARY KEY,
     chat TEXT NOT NULL,
     ts INTEGER NOT NULL,
     delivered_at INTEGER,
     read_at INTEGER,
     expires_at INTEGER,
     amended_n INTEGER NOT NULL DEFAULT 0,
     deleted INTEGER NOT NULL DEFAULT 0,
     encrypted INTEGER
   ) WITHOUT ROWID;
   INSERT INTO outgoing_new (msg, chat, ts, delivered_at, read_at, expires_at, amended_n, deleted, encrypted)
     SELECT msg, chat, ts, delivered_at, read_at, expires_at, amended_n, deleted, encrypted FROM outgoing;
   DROP TABLE outgoing;
   ALTER TABLE outgoing_new RENAME TO outgoing;`,
  // 17: `received` the same way: every delivery inserts a row, which wrote the rowid
  // table and the index on msg, one page more than the table keyed by msg alone.
  `CREATE TABLE received_new (
     msg TEXT PRIMARY KEY,
     chat TEXT NOT NULL,
     sender TEXT NOT NULL,
     seq INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     delivered INTEGER NOT NULL DEFAULT 0,
     read INTEGER NOT NULL DEFAULT 0,
     expires_at INTEGER,
     amended_n INTEGER NOT NULL DEFAULT 0,
     deleted INTEGER NOT NULL DEFAULT 0
   ) WITHOUT ROWID;
   INSERT INTO received_new (msg, chat, sender, seq, ts, delivered, read, expires_at, amended_n, deleted)
     SELECT msg, chat, sender, seq, ts, delivered, read, expires_at, amended_n, deleted FROM received;
   DROP TABLE received;
   ALTER TABLE received_new RENAME TO received;
   CREATE INDEX received_chat ON received(chat, msg);
   CREATE INDEX received_seq ON received(seq);`,
  // 18: an ack finds the messages it delivers through the inbox entries it covers (keyed
  // by seq, in the same transaction, before they are purged), not through an index on
  // received.seq: every delivery wrote a page of that index for one lookup per ack.
  `DROP INDEX received_seq;`,
];
