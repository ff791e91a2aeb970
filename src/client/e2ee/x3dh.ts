// X3DH key agreement (Signal's X3DH specification, revision 1), with an X25519
// identity key for DH and a separate Ed25519 key that signs the signed prekey
// (instead of XEdDSA). Curve X25519, hash SHA-256, info "RelayChat-X3DH-v1".
// The associated data AD = Encode(IK_A) || Encode(IK_B) || the two device
// addresses ("user/device"), so a message relabelled as coming from, or going
// to, another device fails to authenticate.
import { concat, fromBase64, lp, utf8 } from "./bytes";
import { E2eeError } from "./errors";
import { dh, dhKeyPair, encodeKey, hkdfSha256, verify, type KeyPair } from "./primitives";

/** One device's public keys as GET /v1/users/:user/keys returns them. */
export interface PublicBundle {
  device: string;
  identityKey: string;
  signingKey: string;
  signedPrekey: { id: number; publicKey: string; signature: string };
  oneTimePrekey?: { id: number; publicKey: string };
}

/** What the initiator puts in front of its first messages (the X3DH "initial message"). */
export interface PrekeyHeader {
  identityKey: Uint8Array;
  baseKey: Uint8Array;
  signedPrekeyId: number;
  oneTimePrekeyId: number | null;
}

/** The bytes an Ed25519 signing key signs for a signed prekey: Encode(SPK). */
export function signedPrekeyMessage(publicKey: Uint8Array): Uint8Array {
  return encodeKey(publicKey);
}

export function verifyBundle(bundle: PublicBundle): void {
  const spk = fromBase64(bundle.signedPrekey.publicKey, "signedPrekey.publicKey");
  const ok = verify(
    fromBase64(bundle.signingKey, "signingKey"),
    signedPrekeyMessage(spk),
    fromBase64(bundle.signedPrekey.signature, "signedPrekey.signature"),
  );
  if (!ok) throw new E2eeError("bad_signature", `signed prekey of device ${bundle.device} does not verify`);
}

export function associatedData(ikInitiator: Uint8Array, ikResponder: Uint8Array, initiator: string, responder: string): Uint8Array {
  return concat(encodeKey(ikInitiator), encodeKey(ikResponder), lp(utf8(initiator)), lp(utf8(responder)));
}

/** KDF(KM) = HKDF(salt = 32 zero bytes, IKM = F || KM) with F = 32 0xFF bytes. */
function kdf(km: Uint8Array): Uint8Array {
  return hkdfSha256(concat(new Uint8Array(32).fill(0xff), km), new Uint8Array(32), "RelayChat-X3DH-v1", 32);
}

/** The initiator (Alice): verifies the bundle and derives SK from a fresh ephemeral key. */
export function initiate(
  identity: KeyPair,
  bundle: PublicBundle,
  initiator: string,
  responder: string,
): { sharedKey: Uint8Array; ad: Uint8Array; header: PrekeyHeader; responderRatchetKey: Uint8Array } {
  verifyBundle(bundle);
  const ikB = fromBase64(bundle.identityKey, "identityKey");
  const spkB = fromBase64(bundle.signedPrekey.publicKey, "signedPrekey.publicKey");
  const ek = dhKeyPair();
  const parts = [dh(identity.secretKey, spkB), dh(ek.secretKey, ikB), dh(ek.secretKey, spkB)];
  let opkId: number | null = null;
  if (bundle.oneTimePrekey) {
    parts.push(dh(ek.secretKey, fromBase64(bundle.oneTimePrekey.publicKey, "oneTimePrekey.publicKey")));
    opkId = bundle.oneTimePrekey.id;
  }
  const sharedKey = kdf(concat(...parts));
  ek.secretKey.fill(0); // the spec: delete the ephemeral private key and the DH outputs
  for (const p of parts) p.fill(0);
  return {
    sharedKey,
    ad: associatedData(identity.publicKey, ikB, initiator, responder),
    header: { identityKey: identity.publicKey, baseKey: ek.publicKey, signedPrekeyId: bundle.signedPrekey.id, oneTimePrekeyId: opkId },
    responderRatchetKey: spkB,
  };
}

/** The responder (Bob): the same SK from its private keys and the initiator's header. */
export function respond(
  identity: KeyPair,
  signedPrekey: KeyPair,
  oneTimePrekey: KeyPair | null,
  header: PrekeyHeader,
  initiator: string,
  responder: string,
): { sharedKey: Uint8Array; ad: Uint8Array } {
  const parts = [
    dh(signedPrekey.secretKey, header.identityKey),
    dh(identity.secretKey, header.baseKey),
    dh(signedPrekey.secretKey, header.baseKey),
  ];
  if (oneTimePrekey) parts.push(dh(oneTimePrekey.secretKey, header.baseKey));
  const sharedKey = kdf(concat(...parts));
  for (const p of parts) p.fill(0);
  return { sharedKey, ad: associatedData(header.identityKey, identity.publicKey, initiator, responder) };
}

export const NO_PREKEY = 0xffffffff;
