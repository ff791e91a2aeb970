// Profiles: GET/PUT /v1/me and GET /v1/users/:user (the D1 directory).
import { Hono } from "hono";
import { ensureUser, getUser, setDisplayName } from "../directory";
import { AppError } from "../errors";
import { param, readJson, type AppEnv } from "../http";
import { ProfileBody, UserId } from "../protocol";

export const meRoutes = new Hono<AppEnv>()
  .get("/", async (c) => c.json(await ensureUser(c.env.DB, c.get("identity").user)))
  .put("/", async (c) => {
    const body = await readJson(c, ProfileBody);
    return c.json(await setDisplayName(c.env.DB, c.get("identity").user, body.displayName));
  });

export const userRoutes = new Hono<AppEnv>().get("/:user", async (c) => {
  const user = param(c, "user", UserId);
  const profile = await getUser(c.env.DB, user);
  if (!profile) throw new AppError("not_found", `no user ${user}`);
  return c.json(profile);
});
