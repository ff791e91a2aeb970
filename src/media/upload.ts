// Uploads, Worker side: one-request uploads (POST /v1/media) and multipart
// uploads (POST /v1/media/uploads and below). The bytes stream from the request
// into R2 (src/media/stream.ts); the uploader's UserObject keeps the ledger
// (src/user/media.ts): each upload is recorded there BEFORE its first byte
// reaches R2, so whatever dies half-way is still found and deleted by that
// object's alarm.
import type { Env } from "../env";
import { AppError } from "../errors";
import { DEFAULT_MEDIA_PART_BYTES, MAX_MEDIA_PART_BYTES, MEDIA_TYPES, MIN_MEDIA_PART_BYTES } from "../limits";
import type { MediaUploadState } from "../protocol";
import type { MediaRecord } from "../user/media";
import { inspect, sha256Of } from "./stream";

export interface Uploaded {
  id: string;
  type: string;
  size: number;
  sha256: string;
}

/** Media ids: unguessable (not that guessing helps: every download needs a signature). */
export function newMediaId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "m_" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The declared media type, without parameters; bad_media (415) unless it is one the server stores. */
export function mediaType(header: string | undefined): string {
  const type = (header ?? "").split(";")[0]!.trim().toLowerCase();
  if (!MEDIA_TYPES[type]) throw new AppError("bad_media", `type must be one of ${Object.keys(MEDIA_TYPES).join(", ")}`);
  return type;
}

/** The declared body length: 411 when missing (the bytes stream to R2, which must know the length up front). */
export function declaredLength(header: string | undefined): number {
  if (header === undefined || !/^\d{1,16}$/.test(header.trim())) throw new AppError("bad_frame", "Content-Length is required", 411);
  return Number(header.trim());
}

function customMetadata(owner: string, type: string) {
  return { httpMetadata: { contentType: type }, customMetadata: { owner, type } };
}

// ---- one request -------------------------------------------------------------

export async function uploadOne(env: Env, user: string, type: string, length: number, body: ReadableStream<Uint8Array> | null): Promise<Uploaded> {
  const max = MEDIA_TYPES[type]!.maxBytes;
  if (length > max) throw new AppError("too_large", `${type} is at most ${max} bytes in one request; use /v1/media/uploads for more`);
  if (length === 0 || body === null) throw new AppError("bad_media", "the body is empty");
  const owner = env.USERS.getByName(user);
  const id = newMediaId();
  await owner.mediaBegin({ id, type, size: length });
  const inspection = inspect(body, length, type);
  try {
    await env.MEDIA.put(id, inspection.readable, customMetadata(user, type));
  } catch (err) {
    // Nothing is kept of a refused body. R2 stores nothing from a stream that
    // errored, but a delete costs little and makes it certain.
    await env.MEDIA.delete(id).catch(() => {});
    await owner.mediaDrop(id).catch(() => {}); // if this fails, the alarm deletes the record in 24 h
    throw inspection.failure() ?? err;
  }
  const sha256 = await inspection.sha256();
  if (!(await owner.mediaStored(id, length, sha256))) {
    await env.MEDIA.delete(id);
    throw new AppError("not_found", "the upload expired before it finished");
  }
  return { id, type, size: length, sha256 };
}

// ---- multipart -------------------------------------------------------------------

/** Parts of an upload: every part is partSize bytes but the last, which holds the rest. */
export function partCount(rec: Pick<MediaRecord, "size" | "partSize">): number {
  return Math.ceil(rec.size / rec.partSize!);
}

export function uploadState(rec: MediaRecord): MediaUploadState {
  return {
    uploadId: rec.id,
    id: rec.id,
    type: rec.type,
    size: rec.size,
    partSize: rec.partSize!,
    parts: partCount(rec),
    received: rec.parts.map((p) => p.n),
    expiresAt: rec.expiresAt ?? rec.createdAt,
  };
}

export async function createUpload(env: Env, user: string, body: { type: string; size: number; partSize?: number }): Promise<MediaUploadState> {
  const type = mediaType(body.type);
  const max = MEDIA_TYPES[type]!.maxMultipartBytes;
  if (body.size > max) throw new AppError("too_large", `${type} is at most ${max} bytes`);
  const partSize = body.partSize ?? DEFAULT_MEDIA_PART_BYTES;
  if (partSize < MIN_MEDIA_PART_BYTES || partSize > MAX_MEDIA_PART_BYTES) {
    throw new AppError("bad_frame", `partSize: must be between ${MIN_MEDIA_PART_BYTES} and ${MAX_MEDIA_PART_BYTES} bytes`);
  }
  const id = newMediaId();
  const upload = await env.MEDIA.createMultipartUpload(id, customMetadata(user, type));
  try {
    const rec = await env.USERS.getByName(user).mediaBegin({ id, type, size: body.size, r2UploadId: upload.uploadId, partSize });
    return uploadState(rec);
  } catch (err) {
    // Unrecorded, nothing would ever abort it (R2's lifecycle rule would, after days).
    await upload.abort().catch(() => {});
    throw err;
  }
}

/** The caller's own upload still in progress; not_found for anyone else's, a finished or an unknown one. */
async function openUpload(env: Env, user: string, uploadId: string): Promise<MediaRecord & { r2UploadId: string; partSize: number }> {
  const rec = await env.USERS.getByName(user).mediaRecord(uploadId);
  if (!rec || rec.state !== "uploading" || rec.r2UploadId === null || rec.partSize === null) throw new AppError("not_found", `no upload ${uploadId}`);
  return { ...rec, r2UploadId: rec.r2UploadId, partSize: rec.partSize };
}

export async function getUpload(env: Env, user: string, uploadId: string): Promise<MediaUploadState> {
  return uploadState(await openUpload(env, user, uploadId));
}

/** Stores part n (1-based). Uploading a part again replaces it. Part 1 must open a file of the declared type. */
export async function uploadPart(
  env: Env,
  user: string,
  uploadId: string,
  n: number,
  length: number,
  body: ReadableStream<Uint8Array> | null,
): Promise<{ part: number; size: number; sha256: string }> {
  const rec = await openUpload(env, user, uploadId);
  const parts = partCount(rec);
  if (!Number.isInteger(n) || n < 1 || n > parts) throw new AppError("bad_frame", `part: must be 1 to ${parts}`);
  const expected = n < parts ? rec.partSize : rec.size - (parts - 1) * rec.partSize;
  if (length !== expected) throw new AppError("bad_frame", `part ${n} must be ${expected} bytes, not ${length}`);
  if (body === null) throw new AppError("bad_frame", "the body is empty");
  const inspection = inspect(body, length, n === 1 ? rec.type : null);
  const upload = env.MEDIA.resumeMultipartUpload(rec.id, rec.r2UploadId);
  let etag: string;
  try {
    etag = (await upload.uploadPart(n, inspection.readable)).etag;
  } catch (err) {
    const failure = inspection.failure();
    if (failure?.code === "bad_media") {
      // Not the declared type: the whole upload goes, nothing kept.
      await upload.abort().catch(() => {});
      await env.USERS.getByName(user).mediaDrop(rec.id).catch(() => {});
    }
    throw failure ?? err; // anything else: the part can simply be sent again
  }
  const sha256 = await inspection.sha256();
  if (!(await env.USERS.getByName(user).mediaPart(rec.id, n, etag, length))) throw new AppError("not_found", `no upload ${uploadId}`);
  return { part: n, size: length, sha256 };
}

/**
 * Assembles the parts, then reads the whole object back once to compute its
 * SHA-256 (R2 keeps no whole-object hash of a multipart object, and a message
 * names one hash per file). Repeating a complete that succeeded answers the same.
 */
export async function completeUpload(env: Env, user: string, uploadId: string): Promise<Uploaded> {
  const owner = env.USERS.getByName(user);
  const rec = await owner.mediaRecord(uploadId);
  if (rec?.state === "stored" && rec.sha256 !== null) return { id: rec.id, type: rec.type, size: rec.size, sha256: rec.sha256 };
  const open = await openUpload(env, user, uploadId);
  const parts = partCount(open);
  const have = new Set(open.parts.map((p) => p.n));
  const missing = Array.from({ length: parts }, (_, i) => i + 1).filter((n) => !have.has(n));
  if (missing.length > 0) throw new AppError("bad_frame", `parts missing: ${missing.slice(0, 20).join(", ")}`);
  try {
    await env.MEDIA.resumeMultipartUpload(open.id, open.r2UploadId).complete(open.parts.map((p) => ({ partNumber: p.n, etag: p.etag })));
  } catch (err) {
    // An earlier complete may have assembled it and then failed before recording it.
    const head = await env.MEDIA.head(open.id);
    if (!head || head.size !== open.size) throw err;
  }
  const object = await env.MEDIA.get(open.id);
  if (!object) throw new Error(`completed upload ${open.id} is not in R2`);
  const sha256 = await sha256Of(object.body);
  if (!(await owner.mediaStored(open.id, open.size, sha256))) {
    await env.MEDIA.delete(open.id);
    throw new AppError("not_found", `no upload ${uploadId}`);
  }
  return { id: open.id, type: open.type, size: open.size, sha256 };
}

export async function abortUpload(env: Env, user: string, uploadId: string): Promise<void> {
  const rec = await openUpload(env, user, uploadId);
  await env.MEDIA.resumeMultipartUpload(rec.id, rec.r2UploadId).abort().catch(() => {});
  await env.USERS.getByName(user).mediaDrop(rec.id);
}
