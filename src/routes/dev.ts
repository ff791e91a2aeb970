// POST /v1/dev/token: mints a token for any user. Exists only where DEV_AUTH is
// "true" (local development and tests); 404 everywhere else.
import { Hono } from "hono";
import { mintToken } from "../auth";
import { ensureUser } from "../directory";
import { AppError } from "../errors";
import { readJson, type AppEnv } from "../http";
import { DEV_TOKEN_MAX_TTL_SECONDS, DEV_TOKEN_TTL_SECONDS } from "../limits";
import { DevTokenBody } from "../protocol";

export const devRoutes = new Hono<AppEnv>().post("/token", async (c) => {
  if (c.env.DEV_AUTH !== "true") throw new AppError("not_found", "no such route");
  const body = await readJson(c, DevTokenBody);
  const ttl = Math.min(body.ttlSeconds ?? DEV_TOKEN_TTL_SECONDS, DEV_TOKEN_MAX_TTL_SECONDS);
  await ensureUser(c.env.DB, body.user);
  return c.json(await mintToken(c.env, body.user, ttl));
});
