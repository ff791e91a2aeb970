// Encrypted attachments: the file is encrypted on the device with a fresh
// random AES-256-GCM key, the ciphertext is uploaded (application/octet-stream),
// and the key, the plaintext's SHA-256, its type and a thumbnail travel inside
// the end-to-end encrypted message. The receiver decrypts and checks the hash,
// so neither the server nor anyone holding the URL can read or swap the file.
//
// Bytes: nonce(12) | AES-256-GCM ciphertext and tag(16).
//
// Files are large, so this uses the platform's WebCrypto (native AES-GCM,
// about 15x faster than pure JS here: 4 MiB in ~25 ms against ~400 ms), which
// browsers (secure contexts), Node 22 and workerd all have; where
// crypto.subtle is missing (an insecure origin) it falls back to
// @noble/ciphers, which produces and reads the same bytes.
import { gcm } from "@noble/ciphers/aes.js";
import { concat, fromBase64, randomBytes, toBase64, toHex } from "./bytes";
import { E2eeError } from "./errors";
import { sha256 } from "./primitives";

export interface MediaSecret {
  /** Base64 of the 32-byte AES-256-GCM key. */
  key: string;
  /** Hex SHA-256 of the plaintext file. */
  sha256: string;
  /** Plaintext size in bytes. */
  size: number;
}

/** WebCrypto wants ArrayBuffer-backed views; the DOM typings reject a possibly shared buffer. */
const buf = (b: Uint8Array): Uint8Array<ArrayBuffer> => b as Uint8Array<ArrayBuffer>;

const subtle: SubtleCrypto | undefined = (globalThis as { crypto?: { subtle?: SubtleCrypto } }).crypto?.subtle;

async function digestHex(bytes: Uint8Array): Promise<string> {
  if (!subtle) return toHex(sha256(bytes));
  return toHex(new Uint8Array(await subtle.digest("SHA-256", buf(bytes))));
}

async function gcmEncrypt(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  if (!subtle) return gcm(key, nonce).encrypt(data);
  const k = await subtle.importKey("raw", buf(key), "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv: buf(nonce) }, k, buf(data)));
}

async function gcmDecrypt(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  if (!subtle) return gcm(key, nonce).decrypt(data);
  const k = await subtle.importKey("raw", buf(key), "AES-GCM", false, ["decrypt"]);
  return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: buf(nonce) }, k, buf(data)));
}

export async function encryptMedia(file: Uint8Array): Promise<{ ciphertext: Uint8Array } & MediaSecret> {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const ciphertext = concat(nonce, await gcmEncrypt(key, nonce, file));
  return { ciphertext, key: toBase64(key), sha256: await digestHex(file), size: file.length };
}

export async function decryptMedia(ciphertext: Uint8Array, secret: Pick<MediaSecret, "key" | "sha256">): Promise<Uint8Array> {
  const key = fromBase64(secret.key, "media key");
  if (key.length !== 32) throw new E2eeError("invalid", "media key must be 32 bytes");
  if (ciphertext.length < 12 + 16) throw new E2eeError("tampered", "media ciphertext is truncated");
  let file: Uint8Array;
  try {
    file = await gcmDecrypt(key, ciphertext.subarray(0, 12), ciphertext.subarray(12));
  } catch {
    throw new E2eeError("tampered", "media ciphertext failed authentication");
  }
  if ((await digestHex(file)) !== secret.sha256.toLowerCase()) {
    throw new E2eeError("hash_mismatch", "decrypted media does not match the SHA-256 in the message");
  }
  return file;
}
