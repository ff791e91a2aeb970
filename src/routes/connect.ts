// GET /v1/connect?device=: checks the upgrade, the origin and the device id,
// then hands the request to the user's object, which accepts the socket with
// the hibernation API. The verified identity travels in headers this Worker
// sets itself (any the client sent are overwritten).
import { Hono } from "hono";
import { AppError } from "../errors";
import { ID_RULE } from "../limits";
import type { AppEnv } from "../http";
import { DeviceId } from "../protocol";

export const CONNECT_HEADERS = { user: "X-Relay-User", device: "X-Relay-Device", expiresAt: "X-Relay-Token-Exp" } as const;

export const connectRoutes = new Hono<AppEnv>().get("/", async (c) => {
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    return c.json({ error: { code: "bad_frame", message: "expected Upgrade: websocket" } }, 426);
  }
  const allowed = (c.env.ALLOWED_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  const origin = c.req.header("Origin");
  if (allowed.length > 0 && origin !== undefined && !allowed.includes(origin)) {
    throw new AppError("forbidden", "origin not allowed");
  }
  const device = DeviceId.safeParse(c.req.query("device"));
  if (!device.success) throw new AppError("bad_frame", `device: ${ID_RULE}`);
  const { user, expiresAt } = c.get("identity");
  const headers = new Headers(c.req.raw.headers);
  headers.set(CONNECT_HEADERS.user, user);
  headers.set(CONNECT_HEADERS.device, device.data);
  headers.set(CONNECT_HEADERS.expiresAt, String(expiresAt));
  return c.env.USERS.getByName(user).fetch(new Request(c.req.url, { headers }));
});
