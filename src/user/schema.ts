// The UserObject's SQLite schema: an append-only list of migrations. Never edit
// an entry once it has shipped; add a new one.
import { OUTBOX_SCHEMA } from "../outbox";

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
];
