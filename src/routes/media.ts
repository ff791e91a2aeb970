// Media over HTTP. `mediaDownload` (GET /v1/media/:id?exp=&sig=) needs no
// token, because the signature is the grant: index.ts mounts it before the auth
// middleware. `mediaRoutes` are the authenticated rest: uploads in one request
// or in parts, and fresh signed URLs for grantees. See docs/PROTOCOL.md, Media.
import { Hono } from "hono";
import { AppError } from "../errors";
import { param, readJson, type AppEnv } from "../http";
import { abortUpload, completeUpload, createUpload, declaredLength, getUpload, mediaType, uploadOne, uploadPart } from "../media/upload";
import { mediaSecret, signMediaUrl, verifyMediaUrl } from "../media/url";
import { Id, MediaUploadBody } from "../protocol";

/** Served bytes never run as a page on our origin, whatever a client tries. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox";

export const mediaDownload = new Hono<AppEnv>().get("/:id", async (c) => {
  const id = c.req.param("id");
  const now = Date.now();
  const exp = verifyMediaUrl(mediaSecret(c.env), id, c.req.query("exp"), c.req.query("sig"), now);
  if (exp === null) throw new AppError("forbidden", "bad or expired media signature");

  const req = c.req.raw.headers;
  let object: R2Object | R2ObjectBody | null;
  try {
    object = await c.env.MEDIA.get(id, { range: req, onlyIf: req });
  } catch (err) {
    if (req.has("Range")) return new Response(null, { status: 416 });
    throw err;
  }
  if (!object) throw new AppError("not_found", `no media ${id}`);

  const type = object.httpMetadata?.contentType ?? "application/octet-stream";
  const headers = new Headers({
    "Content-Type": type,
    ETag: object.httpEtag,
    "Accept-Ranges": "bytes",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    // Cacheable by the reader's browser for exactly as long as the URL works.
    "Cache-Control": `private, max-age=${Math.max(0, Math.floor((exp - now) / 1000))}`,
  });
  if (!/^(image|video|audio)\//.test(type)) headers.set("Content-Disposition", "attachment");

  if (!("body" in object)) {
    // A failed precondition: If-None-Match / If-Modified-Since mean "you have it".
    const notModified = req.has("If-None-Match") || req.has("If-Modified-Since");
    return new Response(null, { status: notModified ? 304 : 412, headers });
  }
  if (req.has("Range") && object.range) {
    const { start, end } = rangeOf(object.range, object.size);
    headers.set("Content-Range", `bytes ${start}-${end}/${object.size}`);
    headers.set("Content-Length", String(end - start + 1));
    return new Response(object.body, { status: 206, headers });
  }
  headers.set("Content-Length", String(object.size));
  return new Response(object.body, { status: 200, headers });
});

function rangeOf(range: R2Range, size: number): { start: number; end: number } {
  // R2 fills every key of the range it served, the unused ones with undefined.
  const r = range as { offset?: number; length?: number; suffix?: number };
  if (r.suffix !== undefined) return { start: Math.max(0, size - r.suffix), end: size - 1 };
  const start = r.offset ?? 0;
  const length = r.length ?? size - start;
  return { start, end: Math.min(size, start + length) - 1 };
}

export const mediaRoutes = new Hono<AppEnv>()
  .post("/", async (c) => {
    const type = mediaType(c.req.header("Content-Type"));
    const length = declaredLength(c.req.header("Content-Length"));
    return c.json(await uploadOne(c.env, c.get("identity").user, type, length, c.req.raw.body), 201);
  })
  .get("/:id/url", async (c) => {
    const id = param(c, "id", Id);
    // Grants live in the caller's own object: its uploads, and media of messages delivered to it.
    if (!(await c.env.USERS.getByName(c.get("identity").user).mediaAccess(id))) {
      throw new AppError("forbidden", "you neither uploaded nor received this media");
    }
    if (!(await c.env.MEDIA.head(id))) throw new AppError("not_found", `no media ${id}`);
    return c.json(signMediaUrl(mediaSecret(c.env), id, Date.now()));
  })
  .post("/uploads", async (c) => {
    const body = await readJson(c, MediaUploadBody);
    return c.json(await createUpload(c.env, c.get("identity").user, body), 201);
  })
  .get("/uploads/:uploadId", async (c) => c.json(await getUpload(c.env, c.get("identity").user, param(c, "uploadId", Id))))
  .put("/uploads/:uploadId/parts/:n", async (c) => {
    const uploadId = param(c, "uploadId", Id);
    const n = Number(c.req.param("n"));
    const length = declaredLength(c.req.header("Content-Length"));
    return c.json(await uploadPart(c.env, c.get("identity").user, uploadId, n, length, c.req.raw.body));
  })
  .post("/uploads/:uploadId/complete", async (c) => {
    return c.json(await completeUpload(c.env, c.get("identity").user, param(c, "uploadId", Id)), 201);
  })
  .delete("/uploads/:uploadId", async (c) => {
    await abortUpload(c.env, c.get("identity").user, param(c, "uploadId", Id));
    return c.body(null, 204);
  });
