// Signed media URLs: the signature is the grant. A URL names one media id and
// an expiry, signed with HMAC-SHA256 under MEDIA_SIGNING_SECRET; whoever holds
// it may fetch the bytes until it expires, with no token (so <img src> works).
// The Worker signs for GET /v1/media/:id/url and checks on download; the user
// object signs every message frame with media on its way out (signFrame), so a
// stored frame never carries a URL and every replay gets a fresh one.
//
// Signing is synchronous (node:crypto's HMAC) on purpose: the user object signs
// between a durable write and the socket send that follows it, and an await
// there would let another push overtake this one (devices ack cumulatively, so
// frames must leave in seq order).
import { createHmac } from "node:crypto";
import type { Env } from "../env";
import { MEDIA_URL_GRANULARITY_MS, MEDIA_URL_TTL_MS } from "../limits";

/** The signing secret; required: refusing to sign beats signing with a guessable key. */
export function mediaSecret(env: Pick<Env, "MEDIA_SIGNING_SECRET">): string {
  if (!env.MEDIA_SIGNING_SECRET) throw new Error("MEDIA_SIGNING_SECRET is not configured");
  return env.MEDIA_SIGNING_SECRET;
}

/** Expiry of a URL signed now: at most MEDIA_URL_TTL_MS ahead, rounded down so URLs repeat within the hour. */
export function mediaUrlExpiry(now: number): number {
  return Math.floor((now + MEDIA_URL_TTL_MS) / MEDIA_URL_GRANULARITY_MS) * MEDIA_URL_GRANULARITY_MS;
}

function mac(secret: string, id: string, exp: number): string {
  // A domain prefix keeps these MACs from meaning anything anywhere else the secret might be reused.
  return createHmac("sha256", secret).update(`relay-media-url/v1\n${id}\n${exp}`).digest("base64url");
}

/** A URL relative to the server's origin, and when it stops working (ms). */
export function signMediaUrl(secret: string, id: string, now: number): { url: string; urlExpiresAt: number } {
  const exp = mediaUrlExpiry(now);
  return { url: `/v1/media/${encodeURIComponent(id)}?exp=${exp}&sig=${mac(secret, id, exp)}`, urlExpiresAt: exp };
}

/** The expiry (ms) of a valid, unexpired signature for `id`; null otherwise. Constant time in the signature. */
export function verifyMediaUrl(secret: string, id: string, exp: string | undefined, sig: string | undefined, now: number): number | null {
  if (!exp || !sig || !/^\d{1,15}$/.test(exp)) return null;
  const expMs = Number(exp);
  if (expMs <= now) return null;
  const enc = new TextEncoder();
  const expected = enc.encode(mac(secret, id, expMs));
  const given = enc.encode(sig);
  // The length of a MAC is public; the comparison of its bytes must not leak how many matched.
  if (given.byteLength !== expected.byteLength) return null;
  return crypto.subtle.timingSafeEqual(given, expected) ? expMs : null;
}

/**
 * Adds `url` and `urlExpiresAt` to the `media` of a frame about to be sent.
 * Frames without media pass through untouched and unparsed: inside JSON a
 * quote in a string is always escaped, so the bare text `"media":` only occurs
 * as a key.
 */
export function signFrame(json: string, env: Pick<Env, "MEDIA_SIGNING_SECRET">, now: number): string {
  if (!json.includes('"media":')) return json;
  const secret = mediaSecret(env);
  const frame = JSON.parse(json) as Record<string, unknown>;
  const media = frame.media as Record<string, unknown> | undefined;
  if (!media || typeof media !== "object" || typeof media.id !== "string") return json;
  frame.media = { ...media, ...signMediaUrl(secret, media.id, now) };
  return JSON.stringify(frame);
}
