// Token verification and minting (HS256 JWT, algorithm pinned). Called by the
// Worker's middleware before any Durable Object is touched.
import { sign, verify } from "hono/jwt";
import { AppError } from "./errors";
import { PATH_ID_PATTERN } from "./limits";
import type { Env } from "./env";

export interface Identity {
  user: string;
  /** Token expiry, ms since epoch: sockets are closed with 4001 when it passes. */
  expiresAt: number;
}

function secretOf(env: Env): string {
  // Refuse to run with no secret rather than accept tokens signed with "".
  if (!env.AUTH_SECRET) throw new Error("AUTH_SECRET is not configured");
  return env.AUTH_SECRET;
}

export async function verifyToken(env: Env, token: string): Promise<Identity> {
  const secret = secretOf(env);
  let payload: Record<string, unknown>;
  try {
    payload = await verify(token, secret, {
      alg: "HS256",
      ...(env.JWT_ISSUER ? { iss: env.JWT_ISSUER } : {}),
      ...(env.JWT_AUDIENCE ? { aud: env.JWT_AUDIENCE } : {}),
    });
  } catch {
    throw new AppError("unauthorized", "invalid or expired token");
  }
  const { sub, exp } = payload;
  if (typeof exp !== "number") throw new AppError("unauthorized", "token has no exp");
  if (typeof sub !== "string" || !PATH_ID_PATTERN.test(sub)) throw new AppError("unauthorized", "token has no valid sub");
  // A socket lives at most a year on one token: an `exp` in milliseconds by mistake (year
  // 50000) would otherwise set an alarm the platform refuses (past 2189), and never close it.
  return { user: sub, expiresAt: Math.min(exp * 1000, Date.now() + MAX_TOKEN_SOCKET_MS) };
}

/** The longest a socket stays open on one token (it is closed with 4001; reconnecting renews it). */
export const MAX_TOKEN_SOCKET_MS = 366 * 24 * 60 * 60 * 1000;

export async function mintToken(env: Env, user: string, ttlSeconds: number): Promise<{ token: string; expiresAt: number }> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + ttlSeconds;
  const claims: Record<string, string | number> = { sub: user, iat: now, exp };
  if (env.JWT_ISSUER) claims.iss = env.JWT_ISSUER;
  if (env.JWT_AUDIENCE) claims.aud = env.JWT_AUDIENCE;
  return { token: await sign(claims, secretOf(env), "HS256"), expiresAt: exp * 1000 };
}

/** The bearer token of a request: the Authorization header, else `access_token`. */
export function tokenOf(req: Request): string | null {
  const header = req.headers.get("Authorization");
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m?.[1] ?? null;
  }
  return new URL(req.url).searchParams.get("access_token");
}
