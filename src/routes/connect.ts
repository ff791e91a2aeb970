// GET /v1/connect?device=&conn=: checks the upgrade, the origin, the device id
// and the optional connection number, then hands the request to the user's
// object, which accepts the socket with the hibernation API. The verified
// identity travels in headers this Worker sets itself (any the client sent are
// overwritten or removed).
import { Hono } from "hono";
import { AppError } from "../errors";
import { ID_RULE } from "../limits";
import type { AppEnv } from "../http";
import { DeviceId } from "../protocol";

export const CONNECT_HEADERS = { user: "X-Relay-User", device: "X-Relay-Device", expiresAt: "X-Relay-Token-Exp", conn: "X-Relay-Conn" } as const;

/**
 * `conn`: a number the client raises for every socket it opens for a device
 * (docs/PROTOCOL.md, "Additions"). The device's socket with the highest one
 * wins, so an attempt the client gave up that reaches the server late cannot
 * replace the socket it opened after it. Decimal digits, a safe integer.
 */
function parseConn(raw: string | undefined): number | null | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,16}$/.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}

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
  const conn = parseConn(c.req.query("conn"));
  if (conn === null) throw new AppError("bad_frame", "conn: a whole number from 0 to 2^53 - 1, in decimal digits");
  const { user, expiresAt } = c.get("identity");
  const headers = new Headers(c.req.raw.headers);
  headers.set(CONNECT_HEADERS.user, user);
  headers.set(CONNECT_HEADERS.device, device.data);
  headers.set(CONNECT_HEADERS.expiresAt, String(expiresAt));
  if (conn === undefined) headers.delete(CONNECT_HEADERS.conn);
  else headers.set(CONNECT_HEADERS.conn, String(conn));
  return c.env.USERS.getByName(user).fetch(new Request(c.req.url, { headers }));
});
