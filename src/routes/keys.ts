// The key directory of end-to-end encryption over HTTP. A device publishes,
// counts and removes ITS OWN user's keys only: those routes act on the
// caller's identity (the token's user), never on a user named in the request.
// Anyone signed in can fetch a user's bundles (claiming one one-time prekey
// per device) or list a user's device identities (claiming nothing).
//   PUT    /v1/keys/:device          publish (signed prekey signature checked here)
//   GET    /v1/keys/:device/count    one-time prekeys left on the server
//   DELETE /v1/keys/:device          remove the device from the directory
//   GET    /v1/users/:user/keys      bundles (?devices=a,b for some of them)
//   GET    /v1/users/:user/devices   device ids and identity keys, no claim
import { Hono } from "hono";
import { AppError } from "../errors";
import { param, readJson, type AppEnv } from "../http";
import { KeyDevicesQuery, PathDeviceId, PublishKeysBody, UserId } from "../protocol";
import { unwrap } from "../user/keys";

export const keyRoutes = new Hono<AppEnv>()
  .put("/:device", async (c) => {
    const device = param(c, "device", PathDeviceId);
    const body = await readJson(c, PublishKeysBody);
    if (!(await signedPrekeyVerifies(body.signingKey, body.signedPrekey.publicKey, body.signedPrekey.signature))) {
      throw new AppError("bad_frame", "signedPrekey.signature: does not verify with signingKey");
    }
    const { user } = c.get("identity");
    return c.json(unwrap(await c.env.USERS.getByName(user).publishKeys(user, device, body)));
  })
  .get("/:device/count", async (c) => {
    const device = param(c, "device", PathDeviceId);
    const count = await c.env.USERS.getByName(c.get("identity").user).keyCount(device);
    if (count === null) throw new AppError("not_found", `device ${device} has no published keys`);
    return c.json({ device, count });
  })
  .delete("/:device", async (c) => {
    const device = param(c, "device", PathDeviceId);
    const removed = await c.env.USERS.getByName(c.get("identity").user).removeKeyDevice(device);
    return c.json({ device, removed });
  });

export const userKeyRoutes = new Hono<AppEnv>()
  .get("/:user/keys", async (c) => {
    const user = param(c, "user", UserId);
    const filter = c.req.query("devices");
    let devices: string[] | undefined;
    if (filter !== undefined) {
      const parsed = KeyDevicesQuery.safeParse(filter);
      if (!parsed.success) throw new AppError("bad_frame", "devices: a comma-separated list of device ids");
      devices = parsed.data;
    }
    return c.json({ user, devices: unwrap(await c.env.USERS.getByName(user).claimKeys(c.get("identity").user, devices)) });
  })
  .get("/:user/devices", async (c) => {
    const user = param(c, "user", UserId);
    return c.json({ user, devices: await c.env.USERS.getByName(user).keyIdentities() });
  });

/**
 * Ed25519 over Encode(SPK) = 0x05 || SPK (what the client core signs), with
 * WebCrypto: workerd has Ed25519, so the server needs no crypto library.
 */
async function signedPrekeyVerifies(signingKey: string, prekey: string, signature: string): Promise<boolean> {
  try {
    const key = await crypto.subtle.importKey("raw", fromBase64(signingKey), { name: "Ed25519" }, false, ["verify"]);
    const message = new Uint8Array(33);
    message[0] = 0x05;
    message.set(fromBase64(prekey), 1);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, fromBase64(signature), message);
  } catch {
    return false; // not a valid Ed25519 public key
  }
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
