// The end-to-end encryption core the client library calls. Pure TypeScript
// over @noble/curves, @noble/hashes and @noble/ciphers; no Node-only APIs, so
// it runs in browsers, Node 22 and workerd. Everything is synchronous.
//
//   const me = E2eeDevice.create(user, device);          // once per install
//   PUT /v1/keys/:device  <- me.publishBundle()           // and refill when low
//   GET /v1/users/:peer/keys -> bundlesByAddress(peer, body)
//   send.e2ee = me.encryptFor(addresses, encodeContent({text}), bundles)
//   decodeContent(me.decrypt(`${from}/${e2ee.sender}`, {type, body}).plaintext)
//   groups: me.senderKeys.prepare(...), me.encryptGroup(...), me.decryptGroup(...)
//   media: encryptMedia(bytes) / decryptMedia(ciphertext, {key, sha256})
//   safetyNumber({user, devices}, {user, devices})
//   save me.toJSON() after each call; E2eeDevice.fromJSON(saved) on load.
import { address } from "./device";
import type { PublicBundle } from "./x3dh";

export { E2eeDevice, MAX_ONE_TIME_PREKEYS, address, type Ciphertext, type Decrypted, type DeviceJSON, type E2eeEnvelope, type PublishKeys } from "./device";
export { E2eeError, type E2eeErrorCode } from "./errors";
export { SenderKeys, type SenderKeyDistribution, type SenderKeysJSON } from "./senderkeys";
export { encryptMedia, decryptMedia, type MediaSecret } from "./media";
export { safetyNumber, fingerprintOf, type IdentitySide } from "./fingerprint";
export { encodeContent, decodeContent, type E2eeContent, type EncryptedMedia } from "./content";
export { verifyBundle, type PublicBundle } from "./x3dh";
export { MAX_SKIP } from "./ratchet";

/** GET /v1/users/:user/keys's body as a map from address to bundle, for encryptFor. */
export function bundlesByAddress(body: { user: string; devices: PublicBundle[] }): Record<string, PublicBundle> {
  const out: Record<string, PublicBundle> = {};
  for (const b of body.devices) out[address(body.user, b.device)] = b;
  return out;
}
