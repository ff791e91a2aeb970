// The primitives the Signal specifications name, composed from the audited
// @noble libraries: X25519 (DH), Ed25519 (signatures), HKDF/HMAC with SHA-256
// (KDFs), and the Double Ratchet specification's recommended ENCRYPT:
// HKDF(mk) -> AES-256-CBC/PKCS#7 + HMAC-SHA-256 over associated data ||
// ciphertext. Everything here is synchronous, but for verifiedNatively: the
// runtime's WebCrypto Ed25519, where it has one, as a shortcut to `verify`
// (it can only ever save noble's check, never decide against it).
import { cbc } from "@noble/ciphers/aes.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { concat, equal, utf8 } from "./bytes";
import { E2eeError } from "./errors";

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const MAC_BYTES = 32;

export function dhKeyPair(): KeyPair {
  const { secretKey, publicKey } = x25519.keygen();
  return { secretKey, publicKey };
}

/** X25519; a low-order or malformed public key is refused rather than giving a zero secret. */
export function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== KEY_BYTES) throw new E2eeError("malformed", "public key must be 32 bytes");
  try {
    return x25519.getSharedSecret(secretKey, publicKey);
  } catch {
    throw new E2eeError("malformed", "public key is not a usable X25519 key");
  }
}

export function signingKeyPair(): KeyPair {
  const { secretKey, publicKey } = ed25519.keygen();
  return { secretKey, publicKey };
}

export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, secretKey);
}

export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  try {
    return ed25519.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** WebCrypto's Ed25519, where the runtime has it; false once a runtime refused it. */
let subtleEd25519 = typeof crypto !== "undefined" && typeof crypto.subtle?.importKey === "function";
const subtleKeys = new Map<string, Promise<CryptoKey>>();
const MAX_SUBTLE_KEYS = 256;

/**
 * True when WebCrypto's Ed25519 (native: about 0.1 ms, against noble's 1.3 ms
 * here) says the signature is good; false when it says otherwise or the runtime
 * has no Ed25519. Only a true is worth remembering: WebCrypto checks RFC 8032's
 * rules, and noble's `verify` (ZIP-215, the most permissive reading) accepts
 * every signature those rules accept, so a true here is a true there too. A false
 * decides nothing: the synchronous `verify` still gets its say.
 */
export async function verifiedNatively(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (!subtleEd25519 || publicKey.length !== KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  const id = String.fromCharCode(...publicKey);
  try {
    let key = subtleKeys.get(id);
    if (!key) {
      if (subtleKeys.size >= MAX_SUBTLE_KEYS) subtleKeys.delete(subtleKeys.keys().next().value!);
      key = crypto.subtle.importKey("raw", publicKey as BufferSource, { name: "Ed25519" }, false, ["verify"]);
      subtleKeys.set(id, key);
    }
    return await crypto.subtle.verify({ name: "Ed25519" }, await key, signature as BufferSource, message as BufferSource);
  } catch (err) {
    subtleKeys.delete(id);
    // No Ed25519 in this runtime's WebCrypto (older browsers): noble alone from here on.
    if ((err as { name?: string }).name === "NotSupportedError") subtleEd25519 = false;
    return false;
  }
}

/** Encode(PK) of the X3DH spec: a curve-type byte (0x05, as Signal uses for Curve25519) then the key. */
export function encodeKey(publicKey: Uint8Array): Uint8Array {
  return concat(new Uint8Array([0x05]), publicKey);
}

export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: string, length: number): Uint8Array {
  return hkdf(sha256, ikm, salt, utf8(info), length);
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(sha256, key, data);
}

export { sha256, sha512 };

/** KDF_CK of the Double Ratchet spec (also the sender-key chain step). */
export function kdfChain(chainKey: Uint8Array): { chainKey: Uint8Array; messageKey: Uint8Array } {
  return {
    messageKey: hmacSha256(chainKey, new Uint8Array([0x01])),
    chainKey: hmacSha256(chainKey, new Uint8Array([0x02])),
  };
}

/** KDF_RK of the Double Ratchet spec: HKDF(salt = rk, ikm = dh_out) -> 64 bytes. */
export function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array): { rootKey: Uint8Array; chainKey: Uint8Array } {
  const out = hkdfSha256(dhOut, rootKey, "RelayChat-Ratchet-v1", 64);
  return { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
}

function messageKeys(mk: Uint8Array, info: string) {
  const out = hkdfSha256(mk, new Uint8Array(32), info, 80);
  return { encKey: out.subarray(0, 32), authKey: out.subarray(32, 64), iv: out.subarray(64, 80) };
}

/** ENCRYPT(mk, plaintext, ad): AES-256-CBC ciphertext || HMAC-SHA-256(ad || ciphertext). */
export function aeadEncrypt(mk: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, info: string): Uint8Array {
  const { encKey, authKey, iv } = messageKeys(mk, info);
  const ciphertext = cbc(encKey, iv).encrypt(plaintext);
  return concat(ciphertext, hmacSha256(authKey, concat(ad, ciphertext)));
}

/** DECRYPT: checks the MAC before touching the ciphertext; any change is `tampered`. */
export function aeadDecrypt(mk: Uint8Array, sealed: Uint8Array, ad: Uint8Array, info: string): Uint8Array {
  if (sealed.length < MAC_BYTES + 16 || (sealed.length - MAC_BYTES) % 16 !== 0) {
    throw new E2eeError("tampered", "ciphertext has an impossible length");
  }
  const { encKey, authKey, iv } = messageKeys(mk, info);
  const ciphertext = sealed.subarray(0, sealed.length - MAC_BYTES);
  const mac = sealed.subarray(sealed.length - MAC_BYTES);
  if (!equal(mac, hmacSha256(authKey, concat(ad, ciphertext)))) {
    throw new E2eeError("tampered", "message authentication failed");
  }
  try {
    return cbc(encKey, iv).decrypt(ciphertext);
  } catch {
    throw new E2eeError("tampered", "bad padding");
  }
}
