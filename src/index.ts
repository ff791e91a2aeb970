// The Worker: a stateless hono app that verifies the token, validates input and
// hands each request to the Durable Object that owns the state.
import { Hono, type Context } from "hono";
import { cors } from "hono/cors";
import { tokenOf, verifyToken } from "./auth";
import { AppError, errorBody, type ErrorCode } from "./errors";
import type { AppEnv } from "./http";
import { chatRoutes } from "./routes/chats";
import { connectRoutes } from "./routes/connect";
import { devRoutes } from "./routes/dev";
import { mediaDownload, mediaRoutes } from "./routes/media";
import { groupRoutes } from "./routes/groups";
import { keyRoutes, userKeyRoutes } from "./routes/keys";
import { meRoutes, userRoutes } from "./routes/users";
import { presenceRoutes, privacyRoutes } from "./routes/presence";

export { UserObject } from "./objects/UserObject";
export { GroupObject } from "./objects/GroupObject";

const app = new Hono<AppEnv>();

// Browser apps served from another origin may call the HTTP API: auth is a bearer token,
// never a cookie, so allowing any origin exposes nothing a script could not already send.
// With ALLOWED_ORIGINS set, only those. Preflights are answered before auth (they carry
// no token). Not on the socket upgrade: its 101 response cannot take headers, and sockets
// are not subject to CORS.
const corsHandler = cors({
  origin: (origin, c: Context<AppEnv>) => {
    const allowed = (c.env.ALLOWED_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean);
    if (allowed.length === 0) return "*";
    return allowed.includes(origin) ? origin : null;
  },
  allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
  allowHeaders: ["Authorization", "Content-Type", "Range", "If-None-Match"],
  exposeHeaders: ["Content-Range", "Accept-Ranges", "ETag", "Content-Length"],
  maxAge: 600,
});
app.use("/v1/*", (c, next) => (c.req.path.startsWith("/v1/connect") ? next() : corsHandler(c, next)));

app.get("/v1/health", (c) => c.json({ ok: true }));
app.route("/v1/dev", devRoutes);
// Media downloads carry no token: the URL's signature is the grant.
app.route("/v1/media", mediaDownload);

// Everything below needs a verified token; nothing past this point runs without one.
app.use("/v1/*", async (c, next) => {
  const token = tokenOf(c.req.raw);
  if (!token) throw new AppError("unauthorized", "missing token");
  c.set("identity", await verifyToken(c.env, token));
  await next();
});

// Changes are limited per user (HTTP_RATE_LIMITS.write): each may reach other users'
// inboxes, and the socket's own limits do not see them. Media uploads are not
// counted (they are few and large, and bounded by their own sizes).
app.use("/v1/*", async (c, next) => {
  const { method, path } = c.req;
  if (method !== "GET" && method !== "HEAD" && !path.startsWith("/v1/media")) {
    if (!(await c.env.USERS.getByName(c.get("identity").user).takeHttpWrite())) throw new AppError("rate_limited", "too many changes; slow down");
  }
  await next();
});

app.route("/v1/me", meRoutes);
app.route("/v1/me/privacy", privacyRoutes);
app.route("/v1/users", userRoutes);
app.route("/v1/users", presenceRoutes);
app.route("/v1/connect", connectRoutes);
app.route("/v1/chats", chatRoutes);
app.route("/v1/media", mediaRoutes);
app.route("/v1/groups", groupRoutes);
app.route("/v1/keys", keyRoutes);
app.route("/v1/users", userKeyRoutes);

app.notFound((c) => c.json(errorBody("not_found", "no such route"), 404));
app.onError((err, c) => {
  if (err instanceof AppError) {
    return c.json(errorBody(err.code, err.message), err.status as 400);
  }
  console.error("unhandled", c.req.method, new URL(c.req.url).pathname, err);
  return c.json(errorBody("internal" satisfies ErrorCode, "internal error"), 500);
});

export default app;
