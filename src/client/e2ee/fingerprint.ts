// Safety numbers: what two people compare (read aloud, or as a QR code) to
// know that no one sits between their devices. Signal's numeric fingerprint
// (version 0: 5,200 iterations of SHA-512 over the identity keys and the
// user id, 30 digits per side), taken over ALL of a user's device keys (each
// device here has its own identity key, plus the Ed25519 key that signs its
// prekeys), sorted, so both people see the same 60 digits. Adding or
// replacing a device changes the number: a client should say so.
import { concat, fromBase64, utf8 } from "./bytes";
import { encodeKey, sha512 } from "./primitives";

const ITERATIONS = 5200;

export interface IdentitySide {
  user: string;
  devices: Array<{ identityKey: string; signingKey: string }>;
}

function keyMaterial(side: IdentitySide): Uint8Array {
  const keys = side.devices
    .map((d) => concat(encodeKey(fromBase64(d.identityKey)), encodeKey(fromBase64(d.signingKey))))
    .sort(compareBytes);
  return concat(...keys);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** 30 digits for one side. */
export function fingerprintOf(side: IdentitySide): string {
  const keys = keyMaterial(side);
  let hash = sha512(concat(new Uint8Array([0, 0]), keys, utf8(side.user)));
  for (let i = 0; i < ITERATIONS; i++) hash = sha512.create().update(hash).update(keys).digest();
  let digits = "";
  for (let chunk = 0; chunk < 6; chunk++) {
    let n = 0;
    for (let i = 0; i < 5; i++) n = n * 256 + hash[chunk * 5 + i]!;
    digits += String(n % 100_000).padStart(5, "0");
  }
  return digits;
}

/** 60 digits in twelve groups of five, identical on both people's screens. */
export function safetyNumber(a: IdentitySide, b: IdentitySide): string {
  const [x, y] = [fingerprintOf(a), fingerprintOf(b)].sort();
  return (x! + y!).match(/.{5}/g)!.join(" ");
}
