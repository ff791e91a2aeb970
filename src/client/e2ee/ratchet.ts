// The Double Ratchet (Signal's specification, revision 4) without header
// encryption: a DH ratchet over X25519, symmetric chains with KDF_CK, message
// keys kept for skipped messages (at most MAX_SKIP ahead in one chain, at most
// MAX_SKIPPED_KEYS in all, oldest dropped first). Decryption works on a copy of
// the state and commits it only when the message authenticated, as the spec
// asks, so a forged or tampered message changes nothing.
//
// Message bytes: version(1) | DHs public key(32) | PN(u32) | N(u32) | AES-CBC
// ciphertext | HMAC(32). The header (the first 41 bytes) is authenticated as
// part of the associated data: AD_session || header.
import { concat, fromBase64, lp, Reader, toBase64, u32 } from "./bytes";
import { E2eeError } from "./errors";
import { aeadDecrypt, aeadEncrypt, dh, dhKeyPair, kdfChain, kdfRoot, type KeyPair } from "./primitives";

export const VERSION = 1;
/** Most message keys skipped in one step (the spec's MAX_SKIP). */
export const MAX_SKIP = 1000;
/** Most skipped message keys one session keeps. */
export const MAX_SKIPPED_KEYS = 2000;
/** Earlier receiving ratchet keys remembered, to call a stale message a replay. */
const MAX_PREVIOUS_RATCHET_KEYS = 8;
const INFO = "RelayChat-Message-v1";
const HEADER_BYTES = 1 + 32 + 4 + 4;

export interface RatchetState {
  dhs: KeyPair;
  dhr: Uint8Array | null;
  rk: Uint8Array;
  cks: Uint8Array | null;
  ckr: Uint8Array | null;
  ns: number;
  nr: number;
  pn: number;
  /** Skipped message keys, oldest first, keyed by ratchet key (base64) and n. */
  skipped: Array<{ dh: string; n: number; mk: Uint8Array }>;
  previousDhr: string[];
}

export interface Header {
  dh: Uint8Array;
  pn: number;
  n: number;
}

export function initAlice(sharedKey: Uint8Array, bobRatchetKey: Uint8Array): RatchetState {
  const dhs = dhKeyPair();
  const { rootKey, chainKey } = kdfRoot(sharedKey, dh(dhs.secretKey, bobRatchetKey));
  return { dhs, dhr: bobRatchetKey, rk: rootKey, cks: chainKey, ckr: null, ns: 0, nr: 0, pn: 0, skipped: [], previousDhr: [] };
}

export function initBob(sharedKey: Uint8Array, bobRatchetPair: KeyPair): RatchetState {
  return { dhs: bobRatchetPair, dhr: null, rk: sharedKey, cks: null, ckr: null, ns: 0, nr: 0, pn: 0, skipped: [], previousDhr: [] };
}

function encodeHeader(h: Header): Uint8Array {
  return concat(new Uint8Array([VERSION]), h.dh, u32(h.pn), u32(h.n));
}

export function parseMessage(bytes: Uint8Array): { header: Header; headerBytes: Uint8Array; sealed: Uint8Array } {
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== VERSION) throw new E2eeError("malformed", `unknown message version ${version}`);
  const header = { dh: r.take(32), pn: r.u32(), n: r.u32() };
  return { header, headerBytes: bytes.subarray(0, HEADER_BYTES), sealed: r.rest() };
}

/** RatchetEncrypt: mutates the state (the caller persists it) and returns the message bytes. */
export function ratchetEncrypt(state: RatchetState, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  if (!state.cks) throw new E2eeError("invalid", "session cannot send before it has received (responder without a reply)");
  const { chainKey, messageKey } = kdfChain(state.cks);
  state.cks = chainKey;
  const headerBytes = encodeHeader({ dh: state.dhs.publicKey, pn: state.pn, n: state.ns });
  state.ns += 1;
  return concat(headerBytes, aeadEncrypt(messageKey, plaintext, concat(lp(ad), headerBytes), INFO));
}

/** RatchetDecrypt on a copy: returns the plaintext and the state to keep, or throws and changes nothing. */
export function ratchetDecrypt(current: RatchetState, message: Uint8Array, ad: Uint8Array): { plaintext: Uint8Array; state: RatchetState } {
  const { header, headerBytes, sealed } = parseMessage(message);
  const state = structuredClone(current);
  const fullAd = concat(lp(ad), headerBytes);
  const dhKey = toBase64(header.dh);

  const skippedAt = state.skipped.findIndex((s) => s.dh === dhKey && s.n === header.n);
  if (skippedAt >= 0) {
    const [entry] = state.skipped.splice(skippedAt, 1);
    return { plaintext: aeadDecrypt(entry!.mk, sealed, fullAd, INFO), state };
  }
  const sameChain = state.dhr !== null && toBase64(state.dhr) === dhKey;
  if ((sameChain && header.n < state.nr) || state.previousDhr.includes(dhKey)) {
    throw new E2eeError("replayed", "this message was already decrypted (or its key was discarded)");
  }
  if (!sameChain) {
    skipMessageKeys(state, header.pn);
    dhRatchet(state, header);
  }
  skipMessageKeys(state, header.n);
  const { chainKey, messageKey } = kdfChain(state.ckr!);
  state.ckr = chainKey;
  state.nr += 1;
  return { plaintext: aeadDecrypt(messageKey, sealed, fullAd, INFO), state };
}

function skipMessageKeys(state: RatchetState, until: number): void {
  if (state.nr + MAX_SKIP < until) throw new E2eeError("too_far_ahead", `message is more than ${MAX_SKIP} messages ahead`);
  if (!state.ckr || !state.dhr) return;
  const dhKey = toBase64(state.dhr);
  while (state.nr < until) {
    const { chainKey, messageKey } = kdfChain(state.ckr);
    state.ckr = chainKey;
    state.skipped.push({ dh: dhKey, n: state.nr, mk: messageKey });
    state.nr += 1;
  }
  if (state.skipped.length > MAX_SKIPPED_KEYS) state.skipped.splice(0, state.skipped.length - MAX_SKIPPED_KEYS);
}

function dhRatchet(state: RatchetState, header: Header): void {
  if (state.dhr) {
    state.previousDhr.push(toBase64(state.dhr));
    if (state.previousDhr.length > MAX_PREVIOUS_RATCHET_KEYS) state.previousDhr.shift();
  }
  state.pn = state.ns;
  state.ns = 0;
  state.nr = 0;
  state.dhr = header.dh.slice();
  let step = kdfRoot(state.rk, dh(state.dhs.secretKey, state.dhr));
  state.rk = step.rootKey;
  state.ckr = step.chainKey;
  state.dhs = dhKeyPair();
  step = kdfRoot(state.rk, dh(state.dhs.secretKey, state.dhr));
  state.rk = step.rootKey;
  state.cks = step.chainKey;
}

// ---- JSON form (base64 strings), for the client's store ---------------------

export interface RatchetJSON {
  dhs: { publicKey: string; secretKey: string };
  dhr: string | null;
  rk: string;
  cks: string | null;
  ckr: string | null;
  ns: number;
  nr: number;
  pn: number;
  skipped: Array<{ dh: string; n: number; mk: string }>;
  previousDhr: string[];
}

const b = (x: Uint8Array | null) => (x === null ? null : toBase64(x));
const u = (x: string | null) => (x === null ? null : fromBase64(x));

export function ratchetToJSON(s: RatchetState): RatchetJSON {
  return {
    dhs: { publicKey: toBase64(s.dhs.publicKey), secretKey: toBase64(s.dhs.secretKey) },
    dhr: b(s.dhr),
    rk: toBase64(s.rk),
    cks: b(s.cks),
    ckr: b(s.ckr),
    ns: s.ns,
    nr: s.nr,
    pn: s.pn,
    skipped: s.skipped.map((k) => ({ dh: k.dh, n: k.n, mk: toBase64(k.mk) })),
    previousDhr: [...s.previousDhr],
  };
}

export function ratchetFromJSON(j: RatchetJSON): RatchetState {
  return {
    dhs: { publicKey: fromBase64(j.dhs.publicKey), secretKey: fromBase64(j.dhs.secretKey) },
    dhr: u(j.dhr),
    rk: fromBase64(j.rk),
    cks: u(j.cks),
    ckr: u(j.ckr),
    ns: j.ns,
    nr: j.nr,
    pn: j.pn,
    skipped: j.skipped.map((k) => ({ dh: k.dh, n: k.n, mk: fromBase64(k.mk) })),
    previousDhr: [...j.previousDhr],
  };
}
