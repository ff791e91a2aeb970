// Media upload, pluggable. The default uploader sends a file as one raw body to
// POST /v1/media (with upload progress through XMLHttpRequest where it exists,
// i.e. browsers; fetch elsewhere), and files past MULTIPART_THRESHOLD_BYTES in
// parts. An app with other needs (resumable uploads, a CDN) passes its own
// `uploader` to ChatClient: anything that turns bytes into the MediaRef that
// POST /v1/media returns.
import { MediaRef } from "../protocol";
import { ApiError, readAnswer, type FetchLike } from "./api";
import { z } from "zod";

export interface UploadProgress {
  loaded: number;
  total: number;
}

export interface UploadOptions {
  /** MIME type; defaults to the Blob's own type. */
  type?: string;
  onProgress?: (p: UploadProgress) => void;
  signal?: AbortSignal;
}

export interface UploadContext {
  url(path: string): string;
  token(): Promise<string>;
  fetch: FetchLike;
}

export type Uploader = (file: Blob, opts: UploadOptions & { type: string }, ctx: UploadContext) => Promise<MediaRef>;

/** Files larger than this go in parts (the Worker caps one request body at 100 MB). */
export const MULTIPART_THRESHOLD_BYTES = 64 * 1024 * 1024;
/** Part size of multipart uploads (R2 needs at least 5 MiB for all parts but the last). */
export const MULTIPART_PART_BYTES = 8 * 1024 * 1024;

export const defaultUploader: Uploader = async (file, opts, ctx) => {
  if (file.size > MULTIPART_THRESHOLD_BYTES) return multipartUpload(file, opts, ctx);
  return singleUpload(file, opts, ctx);
};

/** POST /v1/media with the raw bytes. */
export async function singleUpload(file: Blob, opts: UploadOptions & { type: string }, ctx: UploadContext): Promise<MediaRef> {
  const url = ctx.url("/v1/media");
  const token = await ctx.token();
  const progress = opts.onProgress ?? (() => {});
  progress({ loaded: 0, total: file.size });
  const Xhr = (globalThis as { XMLHttpRequest?: new () => XhrLike }).XMLHttpRequest;
  if (Xhr) {
    const { status, body } = await xhrUpload(new Xhr(), url, token, file, opts.type, progress, opts.signal);
    return readAnswer(new Response(body, { status }), MediaRef);
  }
  const res = await ctx.fetch(
    new Request(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": opts.type, "Content-Length": String(file.size) },
      body: file,
      ...(opts.signal ? { signal: opts.signal } : {}),
    }),
  );
  const ref = await readAnswer(res, MediaRef);
  progress({ loaded: file.size, total: file.size });
  return ref;
}

const UploadStarted = z.object({ uploadId: z.string(), partSize: z.number().int().positive(), parts: z.number().int().positive() }).passthrough();
const PartStored = z.object({ part: z.number().int(), size: z.number().int(), sha256: z.string() }).passthrough();

/**
 * Multipart (docs/PROTOCOL.md, "Media"): POST /v1/media/uploads
 * {type, size, partSize} → {uploadId, partSize, parts, ...}; PUT
 * /v1/media/uploads/:uploadId/parts/:n (n from 1) with each part's bytes, each
 * checked against the SHA-256 the server answers and sent again if it differs;
 * POST /v1/media/uploads/:uploadId/complete → the MediaRef.
 */
export async function multipartUpload(file: Blob, opts: UploadOptions & { type: string }, ctx: UploadContext): Promise<MediaRef> {
  const token = await ctx.token();
  const auth = { Authorization: `Bearer ${token}` };
  const progress = opts.onProgress ?? (() => {});
  const signal = opts.signal ? { signal: opts.signal } : {};
  const started = await readAnswer(
    await ctx.fetch(
      new Request(ctx.url("/v1/media/uploads"), {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ type: opts.type, size: file.size, partSize: MULTIPART_PART_BYTES }),
        ...signal,
      }),
    ),
    UploadStarted,
  );
  const partSize = started.partSize;
  const base = `/v1/media/uploads/${encodeURIComponent(started.uploadId)}`;
  let loaded = 0;
  progress({ loaded, total: file.size });
  for (let n = 1, off = 0; off < file.size; n++, off += partSize) {
    const part = file.slice(off, Math.min(file.size, off + partSize));
    const bytes = new Uint8Array(await part.arrayBuffer());
    const expected = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
    // A part that arrived altered is simply sent again (the last complete upload of a part wins).
    for (let attempt = 1; ; attempt++) {
      const res = await ctx.fetch(
        new Request(ctx.url(`${base}/parts/${n}`), {
          method: "PUT",
          headers: { ...auth, "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length) },
          body: bytes,
          ...signal,
        }),
      );
      const stored = await readAnswer(res, PartStored);
      if (stored.sha256 === expected) break;
      if (attempt >= 3) throw new ApiError("bad_media", `part ${n} keeps arriving altered`, 0);
    }
    loaded += part.size;
    progress({ loaded, total: file.size });
  }
  return readAnswer(await ctx.fetch(new Request(ctx.url(`${base}/complete`), { method: "POST", headers: auth, ...signal })), MediaRef);
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: unknown): void;
  abort(): void;
  status: number;
  responseText: string;
  upload: { onprogress: ((ev: { loaded: number; total: number }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

function xhrUpload(
  xhr: XhrLike,
  url: string,
  token: string,
  file: Blob,
  type: string,
  progress: (p: UploadProgress) => void,
  signal?: AbortSignal,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    xhr.open("POST", url);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Content-Type", type);
    xhr.upload.onprogress = (ev) => progress({ loaded: ev.loaded, total: ev.total || file.size });
    xhr.onload = () => {
      progress({ loaded: file.size, total: file.size });
      resolve({ status: xhr.status, body: xhr.responseText });
    };
    xhr.onerror = () => reject(new ApiError("network", "upload failed", 0));
    xhr.onabort = () => reject(new ApiError("aborted", "upload aborted", 0));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}
