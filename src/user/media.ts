// Media in a user's object. Two things live here:
// - the ledger of media this user uploaded: upload state and multipart parts,
//   which of the user's messages refer to each upload, and when the alarm
//   deletes it (unsent uploads after 24 h, released media at once; when a
//   temporary chat's message releases its media: src/user/media-holds.ts). The
//   UserObject exposes it over RPC to the Worker's media routes
//   (src/routes/media.ts) and runs collect() from its alarm;
// - the grants: media this user may fetch because a message carrying it was
//   delivered to this user.
// chat.ts calls the free functions below inside its send and deliver
// transactions; a group delivery calls grantMedia the same way.
import { AppError } from "../errors";
import { E2EE_MEDIA_TYPE, MEDIA_ORPHAN_TTL_MS, MEDIA_UPLOAD_TTL_MS } from "../limits";
import { forgetHolders } from "./media-holds";
import type { MediaRef } from "../protocol";

export const MEDIA_SCHEMA = `
  -- Media this user uploaded, from before the first byte reaches R2 until the
  -- bytes are deleted. state: 'uploading', 'stored', 'deleting' (the alarm is
  -- removing it; a send refuses it). expires_at: when the alarm deletes it;
  -- NULL while a message refers to it. r2_upload_id/part_size: multipart only.
  CREATE TABLE media (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    r2_upload_id TEXT,
    part_size INTEGER
  );
  CREATE INDEX media_expires ON media(expires_at) WHERE expires_at IS NOT NULL;
  -- Parts of a multipart upload received so far (a retried part replaces its row).
  CREATE TABLE media_parts (media TEXT NOT NULL, n INTEGER NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (media, n));
  -- The messages of this user that carry one of its uploads: the reference count.
  CREATE TABLE media_refs (media TEXT NOT NULL, msg TEXT NOT NULL, chat TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (media, msg));
  -- Media of other users this user may fetch (it received a message carrying it).
  CREATE TABLE media_grants (media TEXT PRIMARY KEY, ts INTEGER NOT NULL);
`;

export type MediaState = "uploading" | "stored" | "deleting";

export interface MediaRecord {
  id: string;
  type: string;
  size: number;
  sha256: string | null;
  state: MediaState;
  createdAt: number;
  expiresAt: number | null;
  r2UploadId: string | null;
  partSize: number | null;
  parts: Array<{ n: number; etag: string; size: number }>;
}

export interface MediaBegin {
  id: string;
  type: string;
  size: number;
  r2UploadId?: string;
  partSize?: number;
}

type Row = {
  id: string;
  type: string;
  size: number;
  sha256: string | null;
  state: MediaState;
  created_at: number;
  expires_at: number | null;
  r2_upload_id: string | null;
  part_size: number | null;
};

/**
 * When the alarm has media (or references) to expire, for earliest() in
 * src/sqlite.ts; asked on every message. The WHERE repeats the partial
 * indexes' own: without it SQLite reads the whole table for the MIN.
 */
export const MEDIA_DUE_QUERIES = [
  "SELECT MIN(expires_at) AS t FROM media WHERE expires_at IS NOT NULL",
  "SELECT MIN(expires_at) AS t FROM media_refs WHERE expires_at IS NOT NULL",
] as const;

/** Media rows the alarm deletes per run; more left over means another run right away. */
const COLLECT_BATCH = 100;
/** After R2 failed to delete, try again this much later (ms). */
const COLLECT_RETRY_MS = 60_000;

// ---- called inside chat.ts transactions --------------------------------------

/**
 * A send may carry media only if this user uploaded it, it is complete, and the
 * message describes it truly. Returns the media with its SHA-256 filled in, so
 * every recipient can check what it downloads.
 */
export function checkSendable(sql: SqlStorage, media: MediaRef): MediaRef {
  const row = sql.exec<Row>("SELECT * FROM media WHERE id = ?", media.id).toArray()[0];
  if (!row || row.state !== "stored") throw new AppError("bad_media", `media ${media.id} is not an upload of yours`);
  if (row.type === E2EE_MEDIA_TYPE) throw new AppError("bad_media", `media ${media.id} is encrypted: it travels in e2ee.attachments only`);
  if (media.type !== row.type || media.size !== row.size) {
    throw new AppError("bad_media", `media ${media.id} is ${row.type} of ${row.size} bytes`);
  }
  if (media.sha256 !== undefined && media.sha256 !== row.sha256) throw new AppError("bad_media", `media ${media.id} has another sha256`);
  return row.sha256 === null ? media : { ...media, sha256: row.sha256 };
}

/**
 * A message now refers to the upload: it is no longer an orphan. `until` is the
 * message's disappearing time (every copy is purged then); null keeps the
 * reference until it is released: by delete for everyone, or, in a temporary
 * chat, when its last holder lets go (src/user/media-holds.ts). A permanent
 * chat's message that never disappears keeps it for good.
 */
export function referenceMedia(sql: SqlStorage, media: string, msg: string, chat: string, now: number, until: number | null): void {
  sql.exec("INSERT OR IGNORE INTO media_refs (media, msg, chat, ts, expires_at) VALUES (?, ?, ?, ?, ?)", media, msg, chat, now, until);
  sql.exec("UPDATE media SET expires_at = NULL WHERE id = ?", media);
}

/** Message `msg` no longer holds its media; an upload left with no reference is deleted by the alarm. */
export function releaseRefs(sql: SqlStorage, msg: string, now: number): void {
  const media = sql.exec<{ media: string }>("SELECT media FROM media_refs WHERE msg = ?", msg).toArray();
  sql.exec("DELETE FROM media_refs WHERE msg = ?", msg);
  forgetHolders(sql, msg);
  for (const { media: id } of media) releaseIfUnreferenced(sql, id, now);
}

function releaseIfUnreferenced(sql: SqlStorage, media: string, now: number): void {
  const left = sql.exec("SELECT 1 FROM media_refs WHERE media = ? LIMIT 1", media).toArray().length;
  if (left === 0) sql.exec("UPDATE media SET expires_at = ? WHERE id = ? AND state = 'stored'", now, media);
}

/** This user received a message carrying `media`: it may fetch it from now on. Idempotent. */
export function grantMedia(sql: SqlStorage, media: string, now: number): void {
  sql.exec("INSERT INTO media_grants (media, ts) VALUES (?, ?) ON CONFLICT(media) DO NOTHING", media, now);
}

/** The media id of an envelope's `media`, if it has one. */
export function mediaIdOf(media: unknown): string | null {
  if (media && typeof media === "object" && typeof (media as { id?: unknown }).id === "string") return (media as { id: string }).id;
  return null;
}

/** Every upload an envelope carries: its plaintext `media` and its encrypted `e2ee.attachments`. */
export function mediaIdsOf(e: { media?: unknown; e2ee?: unknown }): string[] {
  const ids: string[] = [];
  const one = mediaIdOf(e.media);
  if (one !== null) ids.push(one);
  const attachments = (e.e2ee as { attachments?: unknown } | undefined)?.attachments;
  if (Array.isArray(attachments)) for (const a of attachments) if (typeof a === "string") ids.push(a);
  return ids;
}

/** The encrypted uploads an e2ee send names must be this user's own complete uploads. */
export function checkAttachments(sql: SqlStorage, ids: readonly string[]): void {
  for (const id of ids) {
    const row = sql.exec<{ state: MediaState }>("SELECT state FROM media WHERE id = ?", id).toArray()[0];
    if (row?.state !== "stored") throw new AppError("bad_media", `attachment ${id} is not an upload of yours`);
  }
}

// ---- the ledger, for RPC and the alarm -----------------------------------------

export class MediaLedger {
  constructor(
    private readonly sql: SqlStorage,
    private readonly transaction: <T>(fn: () => T) => T,
    private readonly bucket: R2Bucket,
  ) {}

  /** Recorded before any byte goes to R2, so even an upload that dies half-way is cleaned up. */
  begin(rec: MediaBegin, now: number): void {
    this.sql.exec(
      "INSERT INTO media (id, type, size, state, created_at, expires_at, r2_upload_id, part_size) VALUES (?, ?, ?, 'uploading', ?, ?, ?, ?)",
      rec.id,
      rec.type,
      rec.size,
      now,
      now + MEDIA_UPLOAD_TTL_MS,
      rec.r2UploadId ?? null,
      rec.partSize ?? null,
    );
  }

  record(id: string): MediaRecord | null {
    const row = this.sql.exec<Row>("SELECT * FROM media WHERE id = ?", id).toArray()[0];
    if (!row) return null;
    const parts = this.sql
      .exec<{ n: number; etag: string; size: number }>("SELECT n, etag, size FROM media_parts WHERE media = ? ORDER BY n", id)
      .toArray();
    return {
      id: row.id,
      type: row.type,
      size: row.size,
      sha256: row.sha256,
      state: row.state,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      r2UploadId: row.r2_upload_id,
      partSize: row.part_size,
      parts,
    };
  }

  /** A part arrived in R2; a retried part replaces the earlier one. False if the upload is gone. */
  part(id: string, n: number, etag: string, size: number): boolean {
    if (!this.isUploading(id)) return false;
    this.sql.exec(
      "INSERT INTO media_parts (media, n, etag, size) VALUES (?, ?, ?, ?) ON CONFLICT(media, n) DO UPDATE SET etag = excluded.etag, size = excluded.size",
      id,
      n,
      etag,
      size,
    );
    return true;
  }

  /** The bytes are complete in R2. Unsent, they are deleted MEDIA_ORPHAN_TTL_MS from now. False if the upload is gone. */
  stored(id: string, size: number, sha256: string, now: number): boolean {
    const row = this.sql.exec<Row>("SELECT * FROM media WHERE id = ?", id).toArray()[0];
    if (row?.state === "stored") return row.sha256 === sha256; // a repeated complete
    if (!row) {
      // The upload was aborted or expired while its bytes were on the way: they are in
      // R2 now with no record. The caller deletes them; should that fail, this row
      // makes the alarm delete them (a second delete of gone bytes is harmless).
      this.transaction(() =>
        this.sql.exec(
          "INSERT INTO media (id, type, size, state, created_at, expires_at) VALUES (?, '', ?, 'deleting', ?, ?) ON CONFLICT(id) DO NOTHING",
          id,
          size,
          now,
          now + COLLECT_RETRY_MS,
        ),
      );
      return false;
    }
    if (row.state !== "uploading") return false;
    this.transaction(() => {
      this.sql.exec(
        "UPDATE media SET state = 'stored', size = ?, sha256 = ?, r2_upload_id = NULL, expires_at = ? WHERE id = ?",
        size,
        sha256,
        now + MEDIA_ORPHAN_TTL_MS,
        id,
      );
      this.sql.exec("DELETE FROM media_parts WHERE media = ?", id);
    });
    return true;
  }

  /** An upload refused or aborted: forget it (the caller removed what R2 held). */
  drop(id: string): void {
    if (!this.isUploading(id)) return;
    this.transaction(() => {
      this.sql.exec("DELETE FROM media WHERE id = ?", id);
      this.sql.exec("DELETE FROM media_parts WHERE media = ?", id);
    });
  }

  /** May this user fetch `id`: its own complete upload, or granted by a message it received. */
  access(id: string): boolean {
    return (
      this.sql.exec("SELECT 1 FROM media WHERE id = ? AND state = 'stored'", id).toArray().length > 0 ||
      this.sql.exec("SELECT 1 FROM media_grants WHERE media = ?", id).toArray().length > 0
    );
  }

  /** References whose message can no longer be retained anywhere are dropped. */
  expireRefs(now: number): void {
    // Runs on every alarm. Without the IS NOT NULL the DISTINCT is planned as a walk of the whole table.
    const gone = this.sql
      .exec<{ media: string }>("SELECT DISTINCT media FROM media_refs WHERE expires_at IS NOT NULL AND expires_at <= ?", now)
      .toArray();
    if (gone.length === 0) return;
    this.transaction(() => {
      this.sql.exec("DELETE FROM media_refs WHERE expires_at <= ?", now);
      for (const { media } of gone) releaseIfUnreferenced(this.sql, media, now);
    });
  }

  /** Deletes what is due: abandoned uploads, unsent uploads, released media. Idempotent (alarms repeat). */
  async collect(now: number): Promise<void> {
    const due = this.sql
      .exec<Row>(`SELECT * FROM media WHERE expires_at <= ? ORDER BY expires_at LIMIT ${COLLECT_BATCH}`, now)
      .toArray();
    if (due.length === 0) return;
    // Marked before the first await: from here a send refuses these ids, so no
    // message can start referring to bytes that are about to go.
    this.transaction(() => {
      for (const r of due) this.sql.exec("UPDATE media SET state = 'deleting' WHERE id = ?", r.id);
    });
    try {
      for (const r of due) {
        if (r.r2_upload_id !== null) {
          // Already completed or aborted uploads throw here; the delete below covers them.
          await this.bucket.resumeMultipartUpload(r.id, r.r2_upload_id).abort().catch(() => {});
        }
      }
      await this.bucket.delete(due.map((r) => r.id));
    } catch (err) {
      console.warn("media clean-up failed; retrying", String(err));
      for (const r of due) this.sql.exec("UPDATE media SET expires_at = ? WHERE id = ?", now + COLLECT_RETRY_MS, r.id);
      return;
    }
    this.transaction(() => {
      for (const r of due) {
        this.sql.exec("DELETE FROM media WHERE id = ? AND state = 'deleting'", r.id);
        this.sql.exec("DELETE FROM media_parts WHERE media = ?", r.id);
        this.sql.exec("DELETE FROM media_refs WHERE media = ?", r.id);
      }
    });
  }

  private isUploading(id: string): boolean {
    return this.sql.exec("SELECT 1 FROM media WHERE id = ? AND state = 'uploading'", id).toArray().length > 0;
  }
}
