// Presence and privacy over HTTP: GET /v1/users/:user/presence and
// GET/PUT /v1/me/privacy. The state lives in each user's object; this file
// only asks it. Presence applies the same rules as presence frames: a user who
// hides last seen shows as offline with no last seen, and sees no one else's.
import { Hono } from "hono";
import { getUser } from "../directory";
import { AppError } from "../errors";
import { param, readJson, type AppEnv } from "../http";
import { PrivacyBody, UserId } from "../protocol";

export const privacyRoutes = new Hono<AppEnv>()
  .get("/", async (c) => {
    const me = c.get("identity").user;
    return c.json(await c.env.USERS.getByName(me).privacySettings(me));
  })
  .put("/", async (c) => {
    const me = c.get("identity").user;
    const body = await readJson(c, PrivacyBody);
    return c.json(await c.env.USERS.getByName(me).setPrivacy(me, body));
  });

export const presenceRoutes = new Hono<AppEnv>().get("/:user/presence", async (c) => {
  const user = param(c, "user", UserId);
  const viewer = c.get("identity").user;
  if (user === viewer) {
    const own = await c.env.USERS.getByName(user).presenceView(user, true);
    return c.json({ user, online: own.online, lastSeen: own.lastSeen });
  }
  // The directory first: no object is created for a name nobody registered.
  if (!(await getUser(c.env.DB, user))) throw new AppError("not_found", `no user ${user}`);
  const [view, mine] = await Promise.all([
    c.env.USERS.getByName(user).presenceView(user, false),
    c.env.USERS.getByName(viewer).privacySettings(viewer),
  ]);
  return c.json({ user, online: view.online, lastSeen: mine.lastSeen === "nobody" ? null : view.lastSeen });
});
