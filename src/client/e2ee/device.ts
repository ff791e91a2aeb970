// One device's end-to-end state: its identity and prekeys, its pairwise
// sessions with other devices (X3DH to start, Double Ratchet after) and its
// group sender keys. The client library keeps one E2eeDevice per signed-in
// device and saves `toJSON()` after every call that changes it (encrypt,
// decrypt, publishBundle, the sender-key calls): losing the saved state after
// a send or a receive desynchronises sessions.
//
// Addresses name devices as "user/device". Ciphertexts are
// {type: "prekey" | "msg", body: base64}, the value type of an `e2ee.recipients`
// map (docs/PROTOCOL.md, "End-to-end encryption").
import { concat, fromBase64, randomId, Reader, toBase64, u32 } from "./bytes";
import { E2eeError } from "./errors";
import { dhKeyPair, sign, signingKeyPair, type KeyPair } from "./primitives";
import { initAlice, initBob, ratchetDecrypt, ratchetEncrypt, ratchetFromJSON, ratchetToJSON, type RatchetJSON, type RatchetState } from "./ratchet";
import { SenderKeys, type SenderKeysJSON } from "./senderkeys";
import { initiate, NO_PREKEY, respond, signedPrekeyMessage, type PrekeyHeader, type PublicBundle } from "./x3dh";

/** Most one-time prekeys one upload (and the server) holds. */
export const MAX_ONE_TIME_PREKEYS = 100;
/** Sessions kept per remote device: the current one and a few older (simultaneous starts, late messages). */
const MAX_SESSIONS_PER_ADDRESS = 5;
/** Base keys of X3DH starts already accepted: a replayed first message is refused even without a one-time prekey. */
const MAX_SEEN_BASE_KEYS = 2000;
/** Signed prekeys kept after a rotation, for first messages still in flight. */
const SIGNED_PREKEYS_KEPT = 3;
/** Unused one-time prekey private keys kept (oldest dropped). */
const MAX_HELD_ONE_TIME_PREKEYS = 1000;
const PREKEY_VERSION = 1;

export interface Ciphertext {
  type: "prekey" | "msg";
  body: string;
}
/** The `e2ee` field of a one-to-one `send`. */
export interface E2eeEnvelope {
  v: 1;
  sender: string;
  recipients: Record<string, Ciphertext>;
}
/** The body of PUT /v1/keys/:device. */
export interface PublishKeys {
  identityKey: string;
  signingKey: string;
  signedPrekey: { id: number; publicKey: string; signature: string };
  oneTimePrekeys: Array<{ id: number; publicKey: string }>;
}
export interface Decrypted {
  plaintext: Uint8Array;
  /** The sending device's identity key (base64): compare it with what safety numbers were made of. */
  identityKey: string;
  /** True when this message started a session with a different identity key than the one before. */
  identityChanged: boolean;
}

interface Session {
  ad: Uint8Array;
  baseKey: string;
  remoteIdentity: string;
  ratchet: RatchetState;
  /** Set while the initiator has not heard back: its messages keep the X3DH header. */
  pending: PrekeyHeader | null;
  /** Responder side: the X3DH header that started the session (base64); later copies must match it exactly. */
  startedBy?: string;
}

type KeyPairJSON = { publicKey: string; secretKey: string };
export interface DeviceJSON {
  v: 1;
  user: string;
  device: string;
  identity: KeyPairJSON;
  signing: KeyPairJSON;
  signedPrekeys: Array<{ id: number; keyPair: KeyPairJSON; signature: string }>;
  oneTimePrekeys: Array<{ id: number; keyPair: KeyPairJSON }>;
  nextPrekeyId: number;
  sessions: Record<
    string,
    Array<{
      ad: string;
      baseKey: string;
      remoteIdentity: string;
      ratchet: RatchetJSON;
      pending: null | { identityKey: string; baseKey: string; signedPrekeyId: number; oneTimePrekeyId: number | null };
      startedBy?: string;
    }>
  >;
  seenBaseKeys: string[];
  senderKeys: SenderKeysJSON;
}

const ADDRESS = /^[A-Za-z0-9_.-]{1,64}\/[A-Za-z0-9_.-]{1,64}$/;
const kpToJSON = (k: KeyPair): KeyPairJSON => ({ publicKey: toBase64(k.publicKey), secretKey: toBase64(k.secretKey) });
const kpFromJSON = (k: KeyPairJSON): KeyPair => ({ publicKey: fromBase64(k.publicKey), secretKey: fromBase64(k.secretKey) });

export function address(user: string, device: string): string {
  return `${user}/${device}`;
}

export class E2eeDevice {
  readonly senderKeys: SenderKeys;
  private signedPrekeys: Array<{ id: number; keyPair: KeyPair; signature: Uint8Array }>;
  private oneTimePrekeys: Map<number, KeyPair>;
  private sessions = new Map<string, Session[]>();
  private seenBaseKeys: string[];
  private nextPrekeyId: number;

  private constructor(
    readonly user: string,
    readonly device: string,
    private readonly identityPair: KeyPair,
    private readonly signingPair: KeyPair,
    state?: DeviceJSON,
  ) {
    if (!ADDRESS.test(address(user, device))) throw new E2eeError("invalid", "user and device must be 1-64 characters of A-Z a-z 0-9 _ . -");
    this.signedPrekeys = state?.signedPrekeys.map((s) => ({ id: s.id, keyPair: kpFromJSON(s.keyPair), signature: fromBase64(s.signature) })) ?? [];
    this.oneTimePrekeys = new Map(state?.oneTimePrekeys.map((p) => [p.id, kpFromJSON(p.keyPair)]) ?? []);
    // A random start: ids of two devices rarely collide, so a ciphertext given to
    // the wrong device fails early and clearly (unknown_prekey).
    this.nextPrekeyId = state?.nextPrekeyId ?? 1 + (randomId() % 0x40000000);
    this.seenBaseKeys = state ? [...state.seenBaseKeys] : [];
    this.senderKeys = state ? SenderKeys.fromJSON(state.senderKeys) : new SenderKeys();
    for (const [addr, list] of Object.entries(state?.sessions ?? {})) {
      this.sessions.set(
        addr,
        list.map((s) => ({
          ad: fromBase64(s.ad),
          baseKey: s.baseKey,
          remoteIdentity: s.remoteIdentity,
          ratchet: ratchetFromJSON(s.ratchet),
          pending: s.pending && {
            identityKey: fromBase64(s.pending.identityKey),
            baseKey: fromBase64(s.pending.baseKey),
            signedPrekeyId: s.pending.signedPrekeyId,
            oneTimePrekeyId: s.pending.oneTimePrekeyId,
          },
          ...(s.startedBy !== undefined ? { startedBy: s.startedBy } : {}),
        })),
      );
    }
    if (this.signedPrekeys.length === 0) this.rotateSignedPrekey();
  }

  /** A new device: fresh identity (X25519) and signing (Ed25519) keys and a signed prekey. */
  static create(user: string, device: string): E2eeDevice {
    return new E2eeDevice(user, device, dhKeyPair(), signingKeyPair());
  }

  static fromJSON(state: DeviceJSON): E2eeDevice {
    if (state.v !== 1) throw new E2eeError("invalid", `unknown device state version ${String(state.v)}`);
    return new E2eeDevice(state.user, state.device, kpFromJSON(state.identity), kpFromJSON(state.signing), state);
  }

  get address(): string {
    return address(this.user, this.device);
  }

  /** This device's public identity, as safety numbers take it. */
  get publicIdentity(): { identityKey: string; signingKey: string } {
    return { identityKey: toBase64(this.identityPair.publicKey), signingKey: toBase64(this.signingPair.publicKey) };
  }

  // ---- prekeys -----------------------------------------------------------------

  /**
   * The body of PUT /v1/keys/:device with `count` NEW one-time prekeys (their
   * private halves are kept here). Upload it first thing, and again with
   * `MAX_ONE_TIME_PREKEYS - count` when GET /v1/keys/:device/count runs low.
   */
  publishBundle(count = MAX_ONE_TIME_PREKEYS): PublishKeys {
    const n = Math.max(0, Math.min(count, MAX_ONE_TIME_PREKEYS));
    const fresh: Array<{ id: number; publicKey: string }> = [];
    for (let i = 0; i < n; i++) {
      const id = this.nextPrekeyId++;
      const pair = dhKeyPair();
      this.oneTimePrekeys.set(id, pair);
      fresh.push({ id, publicKey: toBase64(pair.publicKey) });
    }
    for (const id of this.oneTimePrekeys.keys()) {
      if (this.oneTimePrekeys.size <= MAX_HELD_ONE_TIME_PREKEYS) break;
      this.oneTimePrekeys.delete(id); // Map keeps insertion order: oldest first
    }
    const spk = this.signedPrekeys[0]!;
    return {
      ...this.publicIdentity,
      signedPrekey: { id: spk.id, publicKey: toBase64(spk.keyPair.publicKey), signature: toBase64(spk.signature) },
      oneTimePrekeys: fresh,
    };
  }

  /** A new signed prekey (do it every week or so, then publish); the last few stay usable. */
  rotateSignedPrekey(): void {
    const keyPair = dhKeyPair();
    const id = this.nextPrekeyId++;
    const signature = sign(this.signingPair.secretKey, signedPrekeyMessage(keyPair.publicKey));
    this.signedPrekeys.unshift({ id, keyPair, signature });
    this.signedPrekeys.length = Math.min(this.signedPrekeys.length, SIGNED_PREKEYS_KEPT);
  }

  // ---- pairwise ------------------------------------------------------------------

  hasSession(addr: string): boolean {
    return (this.sessions.get(addr)?.length ?? 0) > 0;
  }

  /** The addresses among these that need a bundle (GET /v1/users/:user/keys) before encryptFor. */
  needsBundle(addrs: string[]): string[] {
    return addrs.filter((a) => !this.hasSession(a));
  }

  /** The identity key of the device at `addr` in the current session, or null. */
  remoteIdentity(addr: string): string | null {
    return this.sessions.get(addr)?.[0]?.remoteIdentity ?? null;
  }

  /**
   * Encrypts one plaintext for each address: the `e2ee` field of a send.
   * Devices without a session need their bundle in `bundles` (keyed by address).
   */
  encryptFor(addrs: string[], plaintext: Uint8Array | string, bundles: Record<string, PublicBundle> = {}): E2eeEnvelope {
    const bytes = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext;
    const recipients: Record<string, Ciphertext> = {};
    for (const addr of addrs) recipients[addr] = this.encryptOne(addr, bytes, bundles[addr]);
    return { v: 1, sender: this.device, recipients };
  }

  encryptOne(addr: string, plaintext: Uint8Array, bundle?: PublicBundle): Ciphertext {
    if (!ADDRESS.test(addr)) throw new E2eeError("invalid", `bad address ${addr}`);
    if (addr === this.address) throw new E2eeError("invalid", "a device does not encrypt for itself");
    let session = this.sessions.get(addr)?.[0];
    if (!session) {
      if (!bundle) throw new E2eeError("no_session", `no session with ${addr}: fetch its bundle first`);
      if (address(addr.split("/")[0]!, bundle.device) !== addr) throw new E2eeError("invalid", `bundle of ${bundle.device} given for ${addr}`);
      const x = initiate(this.identityPair, bundle, this.address, addr);
      session = {
        ad: x.ad,
        baseKey: toBase64(x.header.baseKey),
        remoteIdentity: bundle.identityKey,
        ratchet: initAlice(x.sharedKey, x.responderRatchetKey),
        pending: x.header,
      };
      this.storeSession(addr, session);
    }
    const message = ratchetEncrypt(session.ratchet, plaintext, session.ad);
    if (!session.pending) return { type: "msg", body: toBase64(message) };
    const h = session.pending;
    const head = concat(new Uint8Array([PREKEY_VERSION]), h.identityKey, h.baseKey, u32(h.signedPrekeyId), u32(h.oneTimePrekeyId ?? NO_PREKEY));
    return { type: "prekey", body: toBase64(concat(head, message)) };
  }

  /** Decrypts a ciphertext from the device at `from`; refuses tampered, replayed and misdirected ones. */
  decrypt(from: string, c: Ciphertext): Decrypted {
    if (!ADDRESS.test(from)) throw new E2eeError("invalid", `bad address ${from}`);
    const bytes = fromBase64(c.body, "body");
    if (c.type === "prekey") return this.decryptPrekey(from, bytes);
    if (c.type !== "msg") throw new E2eeError("malformed", `unknown ciphertext type ${String(c.type)}`);
    const list = this.sessions.get(from);
    if (!list || list.length === 0) throw new E2eeError("no_session", `no session with ${from}`);
    let firstError: unknown = null;
    for (const session of list) {
      try {
        return this.decryptWith(from, session, bytes, false);
      } catch (err) {
        firstError ??= err;
      }
    }
    throw firstError;
  }

  /**
   * Decrypts the `e2ee` of a one-to-one `message` frame from user `from`. A
   * frame without a ciphertext for this device (it was added after the message
   * was sent) is `not_for_device`.
   */
  decryptMessage(from: string, e2ee: { sender: string; type?: "prekey" | "msg"; body?: string }): Decrypted {
    if (e2ee.type === undefined || e2ee.body === undefined) {
      throw new E2eeError("not_for_device", "this message was not encrypted for this device (it was sent before the device existed, or left out)");
    }
    return this.decrypt(address(from, e2ee.sender), { type: e2ee.type, body: e2ee.body });
  }

  private decryptPrekey(from: string, bytes: Uint8Array): Decrypted {
    const r = new Reader(bytes);
    if (r.u8() !== PREKEY_VERSION) throw new E2eeError("malformed", "unknown prekey message version");
    const header: PrekeyHeader = { identityKey: r.take(32), baseKey: r.take(32), signedPrekeyId: r.u32(), oneTimePrekeyId: r.u32() };
    if (header.oneTimePrekeyId === NO_PREKEY) header.oneTimePrekeyId = null;
    const headerBytes = toBase64(bytes.subarray(0, r.offset));
    const inner = r.rest();
    const baseKey = toBase64(header.baseKey);
    // A later message of a session this device already accepted: its X3DH
    // header is not used again, so it must be the very one that started it.
    const known = this.sessions.get(from)?.find((s) => s.baseKey === baseKey);
    if (known) {
      if (known.startedBy !== headerBytes) throw new E2eeError("tampered", "session start header was changed");
      return this.decryptWith(from, known, inner, false);
    }
    if (this.seenBaseKeys.includes(baseKey)) throw new E2eeError("replayed", "this session start was already used");
    const spk = this.signedPrekeys.find((s) => s.id === header.signedPrekeyId);
    if (!spk) throw new E2eeError("unknown_prekey", `signed prekey ${header.signedPrekeyId} is not this device's (or too old)`);
    let opk: KeyPair | null = null;
    if (header.oneTimePrekeyId !== null) {
      opk = this.oneTimePrekeys.get(header.oneTimePrekeyId) ?? null;
      if (!opk) throw new E2eeError("unknown_prekey", `one-time prekey ${header.oneTimePrekeyId} is not held by this device (already used?)`);
    }
    const x = respond(this.identityPair, spk.keyPair, opk, header, from, this.address);
    const session: Session = {
      ad: x.ad,
      baseKey,
      remoteIdentity: toBase64(header.identityKey),
      ratchet: initBob(x.sharedKey, spk.keyPair),
      pending: null,
      startedBy: headerBytes,
    };
    const result = this.decryptWith(from, session, inner, true);
    // Only now, with the message authenticated: the one-time prekey is spent.
    if (header.oneTimePrekeyId !== null) this.oneTimePrekeys.delete(header.oneTimePrekeyId);
    this.seenBaseKeys.push(baseKey);
    if (this.seenBaseKeys.length > MAX_SEEN_BASE_KEYS) this.seenBaseKeys.shift();
    return result;
  }

  private decryptWith(from: string, session: Session, message: Uint8Array, isNew: boolean): Decrypted {
    const { plaintext, state } = ratchetDecrypt(session.ratchet, message, session.ad);
    const before = this.sessions.get(from)?.[0]?.remoteIdentity ?? null;
    session.ratchet = state;
    session.pending = null; // the peer has this session: no more X3DH headers
    this.storeSession(from, session);
    return {
      plaintext,
      identityKey: session.remoteIdentity,
      identityChanged: isNew && before !== null && before !== session.remoteIdentity,
    };
  }

  /** Puts a session first (the one to send with), keeping a few older ones. */
  private storeSession(addr: string, session: Session): void {
    const list = (this.sessions.get(addr) ?? []).filter((s) => s !== session && s.baseKey !== session.baseKey);
    list.unshift(session);
    this.sessions.set(addr, list.slice(0, MAX_SESSIONS_PER_ADDRESS));
  }

  /** Drops every session with a device (it was removed): a new one needs a fresh bundle. */
  forgetDevice(addr: string): void {
    this.sessions.delete(addr);
  }

  // ---- groups --------------------------------------------------------------------

  /** The `e2ee` field of a group send; call senderKeys.prepare() and distribute first. */
  encryptGroup(group: string, plaintext: Uint8Array | string): { v: 1; sender: string; senderKeyCiphertext: string } {
    const bytes = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext;
    return { v: 1, sender: this.device, senderKeyCiphertext: this.senderKeys.encrypt(group, bytes) };
  }

  decryptGroup(group: string, from: string, senderKeyCiphertext: string): Uint8Array {
    return this.senderKeys.decrypt(group, from, senderKeyCiphertext);
  }

  // ---- storage -------------------------------------------------------------------

  toJSON(): DeviceJSON {
    const sessions: DeviceJSON["sessions"] = {};
    for (const [addr, list] of this.sessions) {
      sessions[addr] = list.map((s) => ({
        ad: toBase64(s.ad),
        baseKey: s.baseKey,
        remoteIdentity: s.remoteIdentity,
        ratchet: ratchetToJSON(s.ratchet),
        pending: s.pending && {
          identityKey: toBase64(s.pending.identityKey),
          baseKey: toBase64(s.pending.baseKey),
          signedPrekeyId: s.pending.signedPrekeyId,
          oneTimePrekeyId: s.pending.oneTimePrekeyId,
        },
        ...(s.startedBy !== undefined ? { startedBy: s.startedBy } : {}),
      }));
    }
    return {
      v: 1,
      user: this.user,
      device: this.device,
      identity: kpToJSON(this.identityPair),
      signing: kpToJSON(this.signingPair),
      signedPrekeys: this.signedPrekeys.map((s) => ({ id: s.id, keyPair: kpToJSON(s.keyPair), signature: toBase64(s.signature) })),
      oneTimePrekeys: [...this.oneTimePrekeys].map(([id, keyPair]) => ({ id, keyPair: kpToJSON(keyPair) })),
      nextPrekeyId: this.nextPrekeyId,
      sessions,
      seenBaseKeys: [...this.seenBaseKeys],
      senderKeys: this.senderKeys.toJSON(),
    };
  }
}
