// Sender keys for groups (Signal's "sender key" scheme): each sending device
// has, per group, a chain key and an Ed25519 signing key. It hands both to every
// member device once, through the pairwise sessions (a SenderKeyDistribution in
// the encrypted content); then each group message is ONE ciphertext under the
// next chain step, signed, that the server fans out unchanged. The chain only
// moves forward, so a member given the key at iteration i reads nothing sent
// before i. When a member device leaves, the sender rotates: a fresh key goes to
// the remaining devices only, and the removed one cannot read what follows.
//
// Message bytes: version(1) | keyId(u32) | iteration(u32) | AES-CBC ciphertext
// | HMAC(32) | Ed25519 signature(64) over lp(groupId) || everything before it.
import { concat, equal, fromBase64, lp, randomBytes, randomId, Reader, toBase64, u32, utf8 } from "./bytes";
import { E2eeError } from "./errors";
import { aeadDecrypt, aeadEncrypt, kdfChain, sign, signingKeyPair, SIGNATURE_BYTES, verifiedNatively, verify, type KeyPair } from "./primitives";
import { MAX_SKIP } from "./ratchet";

const VERSION = 1;
const INFO = "RelayChat-SenderKey-v1";
/** Skipped message keys kept per sender key. */
const MAX_SKIPPED_PER_KEY = 2000;
/** Older keys of one sender kept, for group messages that arrive after a rotation. */
const MAX_KEYS_PER_SENDER = 3;
/** Messages checked ahead (checkAhead) and not decrypted yet, at most (a bound on their memory). */
const MAX_CHECKED_AHEAD = 200;

/** What a member device needs to read a sender's group messages. Travels only inside pairwise ciphertext. */
export interface SenderKeyDistribution {
  group: string;
  keyId: number;
  iteration: number;
  chainKey: string;
  signingKey: string;
}

interface OwnKey {
  keyId: number;
  iteration: number;
  chainKey: Uint8Array;
  signing: KeyPair;
  /** Device addresses that were handed this key. */
  sentTo: string[];
}

interface PeerKey {
  keyId: number;
  iteration: number;
  chainKey: Uint8Array;
  signingKey: Uint8Array;
  skipped: Array<{ iteration: number; mk: Uint8Array }>;
}

export interface SenderKeysJSON {
  own: Record<string, { keyId: number; iteration: number; chainKey: string; signing: { publicKey: string; secretKey: string }; sentTo: string[] }>;
  peers: Record<string, Array<{ keyId: number; iteration: number; chainKey: string; signingKey: string; skipped: Array<{ iteration: number; mk: string }> }>>;
}

const peerSlot = (group: string, sender: string) => `${group}\n${sender}`;

export class SenderKeys {
  private own = new Map<string, OwnKey>();
  /** Per (group, sender device address): newest key first. */
  private peers = new Map<string, PeerKey[]>();
  /** (group, sender, ciphertext) -> the signing key its signature was checked under (checkAhead). */
  private readonly checked = new Map<string, Uint8Array>();

  /**
   * Before sending to a group: which member devices need this device's sender
   * key, and the distribution to give them. If a device that had the key is no
   * longer a member, the key is rotated first and every member gets the new one.
   * Send `distribution` to each of `recipients` pairwise, then `markDistributed`.
   */
  prepare(group: string, memberDevices: string[]): { distribution: SenderKeyDistribution | null; recipients: string[]; rotated: boolean } {
    let key = this.own.get(group);
    let rotated = false;
    const members = new Set(memberDevices);
    if (key && key.sentTo.some((d) => !members.has(d))) {
      key = undefined;
      rotated = true;
    }
    if (!key) {
      key = { keyId: randomId(), iteration: 0, chainKey: randomBytes(32), signing: signingKeyPair(), sentTo: [] };
      this.own.set(group, key);
    }
    const had = new Set(key.sentTo);
    const recipients = memberDevices.filter((d) => !had.has(d));
    return { distribution: recipients.length > 0 ? this.distribution(group) : null, recipients, rotated };
  }

  markDistributed(group: string, keyId: number, devices: string[]): void {
    const key = this.own.get(group);
    if (!key || key.keyId !== keyId) return; // rotated meanwhile: the new key still needs handing out
    for (const d of devices) if (!key.sentTo.includes(d)) key.sentTo.push(d);
  }

  /** Forces a new key for the group (e.g. after a member left); `prepare` then hands it to everyone. */
  rotate(group: string): void {
    this.own.delete(group);
  }

  /** The current key of this device for the group, from its current iteration on. */
  distribution(group: string): SenderKeyDistribution {
    const key = this.own.get(group);
    if (!key) throw new E2eeError("invalid", `no sender key for group ${group}: call prepare() first`);
    return { group, keyId: key.keyId, iteration: key.iteration, chainKey: toBase64(key.chainKey), signingKey: toBase64(key.signing.publicKey) };
  }

  /** One group message: encrypted once under the next chain step and signed. Base64. */
  encrypt(group: string, plaintext: Uint8Array): string {
    const key = this.own.get(group);
    if (!key) throw new E2eeError("invalid", `no sender key for group ${group}: call prepare() first`);
    const { chainKey, messageKey } = kdfChain(key.chainKey);
    const header = concat(new Uint8Array([VERSION]), u32(key.keyId), u32(key.iteration));
    key.chainKey = chainKey;
    key.iteration += 1;
    const body = concat(header, aeadEncrypt(messageKey, plaintext, concat(lp(utf8(group)), header), INFO));
    return toBase64(concat(body, sign(key.signing.secretKey, concat(lp(utf8(group)), body))));
  }

  /** Stores a sender key received (decrypted) from `sender` ("user/device"). */
  process(sender: string, d: SenderKeyDistribution): void {
    const slot = peerSlot(d.group, sender);
    const keys = this.peers.get(slot) ?? [];
    // A key already held can derive everything a re-sent copy can; replacing it
    // could wind the chain back (re-opening used keys) or drop skipped ones.
    if (keys.some((k) => k.keyId === d.keyId)) return;
    keys.unshift({
      keyId: d.keyId,
      iteration: d.iteration,
      chainKey: fromBase64(d.chainKey, "chainKey"),
      signingKey: fromBase64(d.signingKey, "signingKey"),
      skipped: [],
    });
    this.peers.set(slot, keys.slice(0, MAX_KEYS_PER_SENDER));
  }

  /** Forgets a sender's keys for a group (it left, or its device was removed). */
  forget(group: string, sender: string): void {
    this.peers.delete(peerSlot(group, sender));
  }

  /** A group message's parts, and the sender key it names (no_sender_key when this device has none). */
  private parse(group: string, sender: string, ciphertext: string) {
    const bytes = fromBase64(ciphertext, "senderKeyCiphertext");
    if (bytes.length < 9 + SIGNATURE_BYTES) throw new E2eeError("malformed", "group message is truncated");
    const r = new Reader(bytes);
    if (r.u8() !== VERSION) throw new E2eeError("malformed", "unknown group message version");
    const keyId = r.u32();
    const iteration = r.u32();
    const key = this.peers.get(peerSlot(group, sender))?.find((k) => k.keyId === keyId);
    if (!key) throw new E2eeError("no_sender_key", `no sender key ${keyId} from ${sender} in ${group} (not received yet, or not meant for this device)`);
    const signed = concat(lp(utf8(group)), bytes.subarray(0, bytes.length - SIGNATURE_BYTES));
    return { key, bytes, iteration, signed, signature: bytes.subarray(bytes.length - SIGNATURE_BYTES) };
  }

  /**
   * Checks a group message's signature ahead of `decrypt`, asynchronously, with
   * WebCrypto where the runtime has Ed25519; `decrypt` then skips its own check
   * for exactly this ciphertext under exactly this signing key. Never throws, and
   * changes nothing else: an unknown key, a bad message, or a runtime without
   * Ed25519 leaves the check to `decrypt`. True when the signature was checked
   * and found good here.
   */
  async checkAhead(group: string, sender: string, ciphertext: string): Promise<boolean> {
    let parsed: ReturnType<SenderKeys["parse"]>;
    try {
      parsed = this.parse(group, sender, ciphertext);
    } catch {
      return false;
    }
    const { key, signed, signature } = parsed;
    if (!(await verifiedNatively(key.signingKey, signed, signature))) return false;
    if (this.checked.size >= MAX_CHECKED_AHEAD) this.checked.delete(this.checked.keys().next().value!);
    this.checked.set(`${peerSlot(group, sender)}\n${ciphertext}`, key.signingKey);
    return true;
  }

  /** Decrypts a group message from `sender`; state changes only if it authenticated. */
  decrypt(group: string, sender: string, ciphertext: string): Uint8Array {
    const { key, bytes, iteration, signed, signature } = this.parse(group, sender, ciphertext);
    const memo = `${peerSlot(group, sender)}\n${ciphertext}`;
    const ahead = this.checked.get(memo);
    this.checked.delete(memo);
    if (!(ahead !== undefined && equal(ahead, key.signingKey)) && !verify(key.signingKey, signed, signature)) {
      throw new E2eeError("tampered", "group message signature does not verify");
    }
    const header = bytes.subarray(0, 9);
    const sealed = bytes.subarray(9, bytes.length - SIGNATURE_BYTES);
    const ad = concat(lp(utf8(group)), header);
    if (iteration < key.iteration) {
      const at = key.skipped.findIndex((s) => s.iteration === iteration);
      if (at < 0) throw new E2eeError("replayed", "this group message was already decrypted (or predates this device's key)");
      const plaintext = aeadDecrypt(key.skipped[at]!.mk, sealed, ad, INFO);
      key.skipped.splice(at, 1);
      return plaintext;
    }
    if (iteration - key.iteration > MAX_SKIP) throw new E2eeError("too_far_ahead", `group message is more than ${MAX_SKIP} ahead`);
    let chainKey = key.chainKey;
    const skipped: Array<{ iteration: number; mk: Uint8Array }> = [];
    for (let i = key.iteration; i < iteration; i++) {
      const step = kdfChain(chainKey);
      skipped.push({ iteration: i, mk: step.messageKey });
      chainKey = step.chainKey;
    }
    const step = kdfChain(chainKey);
    const plaintext = aeadDecrypt(step.messageKey, sealed, ad, INFO);
    key.chainKey = step.chainKey;
    key.iteration = iteration + 1;
    key.skipped.push(...skipped);
    if (key.skipped.length > MAX_SKIPPED_PER_KEY) key.skipped.splice(0, key.skipped.length - MAX_SKIPPED_PER_KEY);
    return plaintext;
  }

  toJSON(): SenderKeysJSON {
    const own: SenderKeysJSON["own"] = {};
    for (const [g, k] of this.own) {
      own[g] = {
        keyId: k.keyId,
        iteration: k.iteration,
        chainKey: toBase64(k.chainKey),
        signing: { publicKey: toBase64(k.signing.publicKey), secretKey: toBase64(k.signing.secretKey) },
        sentTo: [...k.sentTo],
      };
    }
    const peers: SenderKeysJSON["peers"] = {};
    for (const [slot, keys] of this.peers) {
      peers[slot] = keys.map((k) => ({
        keyId: k.keyId,
        iteration: k.iteration,
        chainKey: toBase64(k.chainKey),
        signingKey: toBase64(k.signingKey),
        skipped: k.skipped.map((s) => ({ iteration: s.iteration, mk: toBase64(s.mk) })),
      }));
    }
    return { own, peers };
  }

  static fromJSON(j: SenderKeysJSON): SenderKeys {
    const s = new SenderKeys();
    for (const [g, k] of Object.entries(j.own)) {
      s.own.set(g, {
        keyId: k.keyId,
        iteration: k.iteration,
        chainKey: fromBase64(k.chainKey),
        signing: { publicKey: fromBase64(k.signing.publicKey), secretKey: fromBase64(k.signing.secretKey) },
        sentTo: [...k.sentTo],
      });
    }
    for (const [slot, keys] of Object.entries(j.peers)) {
      s.peers.set(
        slot,
        keys.map((k) => ({
          keyId: k.keyId,
          iteration: k.iteration,
          chainKey: fromBase64(k.chainKey),
          signingKey: fromBase64(k.signingKey),
          skipped: k.skipped.map((x) => ({ iteration: x.iteration, mk: fromBase64(x.mk) })),
        })),
      );
    }
    return s;
  }
}
