// End-to-end encryption of messages, on top of the keyring (keyring.ts) and the
// crypto core (src/client/e2ee/). Seals queued sends before they go on the
// wire: one-to-one, one ciphertext per device of both users; groups, one
// sender-key ciphertext, the key first handed to member devices through hidden
// one-to-one messages (and renewed when a member left). Repairs a send the
// server answered with devices_changed, keeping its id. Goes in the clear only
// when a recipient has no keys, and says so. Opens what arrives: messages,
// encrypted edits, sender-key hand-overs, and group messages held until their
// sender's key arrives. Called by ChatSync (sync.ts) and ChatClient.
import { z } from "zod";
import { MediaRef, chatKey, type Chat, type E2eeSend } from "../protocol";
import type { Api } from "./api";
import { E2eeError, address, decodeContent, encodeContent, type E2eeContent, type SenderKeyDistribution } from "./e2ee";
import type { Keyring } from "./keyring";
import { messageKey, type ChatState, type OutgoingEntry, type SealedContent } from "./state";
import type { ChatMessage } from "./types";

/** A send is re-encrypted for changed devices at most this often before it fails. */
const MAX_REPAIRS = 5;
/** A group's member list is trusted this long (group events clear it sooner). */
const ROSTER_TTL_MS = 30_000;

export interface SecureHost {
  readonly state: ChatState;
  readonly api: Api;
  readonly keyring: Keyring;
  newId(prefix: string): string;
}

/** The `e2ee` of a message or an edited event as this device receives it. */
export interface DeliveredE2ee {
  v: number;
  sender: string;
  type?: "prekey" | "msg";
  body?: string;
  senderKeyCiphertext?: string;
  attachments?: string[];
}

export type Opened =
  | { kind: "content"; content: E2eeContent }
  /** A sender-key hand-over: nothing to show; these held group messages could now be read. */
  | { kind: "control"; updated: ChatMessage[] }
  | { kind: "error"; code: string; sealed?: ChatMessage["sealed"] };

/** The send must fail rather than go in the clear (its file was encrypted for this chat). */
export class SealRefused extends Error {}

export class Secure {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly rosters = new Map<string, { users: string[]; at: number }>();

  constructor(private readonly h: SecureHost) {}

  private get device() {
    return this.h.keyring.device;
  }

  /** Runs async e2ee work one at a time (bundles are claimed once, sender keys handed over once). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  /** A group's roster changed: look it up again before the next send. */
  groupChanged(group: string): void {
    this.rosters.delete(group);
  }

  /** Whether a message to this chat would be encrypted now (every recipient has keys). */
  async willEncrypt(chat: Chat): Promise<boolean> {
    if ("user" in chat) return (await this.h.keyring.devicesOf(chat.user)).length > 0;
    const users = await this.membersOf(chat.group);
    const lists = await this.h.keyring.devicesOfMany(users.filter((u) => u !== this.h.keyring.user));
    return lists.every(([, l]) => l.length > 0);
  }

  // ---- sending -------------------------------------------------------------------

  /** Seals a queued send (or repairs one after devices_changed); the caller stores it before it goes out. */
  async seal(e: OutgoingEntry): Promise<void> {
    if (e.repair) return this.repair(e);
    const { state } = this.h;
    const to = e.frame.to;
    const content = contentOf(e.frame);
    const attachments = content.media ? [content.media.id] : [];
    const sealed = "user" in to ? await this.pairwise(to.user, content, attachments) : await this.group(to.group, content, attachments, e);
    const conv = state.conversation(to);
    const message = state.message(messageKey(conv.key, this.h.keyring.user, e.id));
    if (typeof sealed === "string") {
      if (content.media?.key) throw new SealRefused(`${sealed}; the file was encrypted for this chat: send it again`);
      e.seal = "plain";
      conv.encryption = "off";
      conv.encryptionNote = `${sealed}: messages go unencrypted`;
      if (message) message.encrypted = false;
    } else {
      e.frame = { type: "send", id: e.id, to, e2ee: sealed };
      e.plain = content;
      e.seal = "sealed";
      conv.encryption = "on";
      delete conv.encryptionNote;
      if (message) message.encrypted = true;
    }
    this.h.keyring.changed();
    state.markOutgoingChanged(e);
    state.changedConversation(conv);
    if (message) state.markMessageChanged(message);
  }

  /** One ciphertext per device of the chat; a string says why it cannot be encrypted. */
  private async pairwise(peer: string, content: SealedContent, attachments: string[]): Promise<E2eeSend | string> {
    const { peer: theirs, own } = await this.h.keyring.chatAddresses(peer);
    if (theirs.length === 0) return `${peer} has not set up encryption`;
    const addrs = [...theirs, ...own];
    const bundles = await this.h.keyring.bundlesFor(addrs);
    // A device whose bundle did not come back is gone: the server's device check settles it.
    const usable = addrs.filter((a) => this.device.hasSession(a) || bundles[a]);
    const env = this.device.encryptFor(usable, encodeContent(content as E2eeContent), bundles);
    return { ...env, ...(attachments.length ? { attachments } : {}) };
  }

  /** One sender-key ciphertext for the group, after handing the key to devices that lack it. */
  private async group(group: string, content: SealedContent, attachments: string[], before: OutgoingEntry | null): Promise<E2eeSend | string> {
    const self = this.h.keyring.user;
    const users = await this.membersOf(group);
    const lists = await this.h.keyring.devicesOfMany(users);
    const without = lists.filter(([u, l]) => u !== self && l.length === 0).map(([u]) => u);
    if (without.length > 0) return `${without.join(", ")} ${without.length === 1 ? "has" : "have"} not set up encryption`;
    const addrs = lists.flatMap(([u, l]) => l.map((d) => address(u, d.device))).filter((a) => a !== this.device.address);
    await this.handOverKey(group, addrs, users, before);
    const sealed = this.device.encryptGroup(group, encodeContent(content as E2eeContent));
    return { ...sealed, ...(attachments.length ? { attachments } : {}) };
  }

  /**
   * Queues this device's sender key for every member device that lacks it, as
   * hidden one-to-one messages ahead of `before` (or at the end of the queue).
   * `prepare` makes a new key when a device that had the old one left.
   */
  private async handOverKey(group: string, addrs: string[], users: string[], before: OutgoingEntry | null): Promise<void> {
    const self = this.h.keyring.user;
    const prep = this.device.senderKeys.prepare(group, addrs);
    if (!prep.distribution || prep.recipients.length === 0) return;
    let peers = [...new Set(prep.recipients.map((a) => a.split("/")[0]!))].filter((u) => u !== self);
    // Only this user's other devices need it: they get it with any one-to-one message.
    if (peers.length === 0) peers = users.filter((u) => u !== self).slice(0, 1);
    if (peers.length === 0) return; // alone in the group: nobody to read it
    const targets = await Promise.all(peers.map(async (u) => ({ u, ...(await this.h.keyring.chatAddresses(u)) })));
    const bundles = await this.h.keyring.bundlesFor(targets.flatMap((t) => [...t.peer, ...t.own]));
    const plain: SealedContent = { senderKey: prep.distribution };
    targets.forEach((t, i) => {
      const all = [...t.peer, ...t.own].filter((a) => this.device.hasSession(a) || bundles[a]);
      const env = this.device.encryptFor(all, encodeContent(plain as E2eeContent), bundles);
      const id = this.h.newId("k");
      const entry = { id, frame: { type: "send" as const, id, to: { user: t.u }, e2ee: env }, seal: "sealed" as const, plain };
      this.h.state.addControl(before, entry, i + 1, targets.length);
    });
    this.device.senderKeys.markDistributed(group, prep.distribution.keyId, prep.recipients);
  }

  /** devices_changed: drop the extra devices, encrypt for the missing ones, keep the rest and the id. */
  private async repair(e: OutgoingEntry): Promise<void> {
    const { missing, extra } = e.repair!;
    const recipients = e.frame.e2ee?.recipients;
    if (!recipients || !e.plain || (e.repairs ?? 0) >= MAX_REPAIRS) throw new SealRefused("the devices of this chat keep changing");
    for (const a of extra) {
      delete recipients[a];
      this.device.forgetDevice(a);
      this.h.keyring.forgetList(a.split("/")[0]!);
    }
    // Fresh lists: a device that reappears with new keys gets a new session (and a warning).
    for (const u of new Set(missing.map((a) => a.split("/")[0]!))) {
      this.h.keyring.forgetList(u);
      await this.h.keyring.devicesOf(u, 0);
    }
    const bundles = await this.h.keyring.bundlesFor(missing);
    const payload = encodeContent(e.plain as E2eeContent);
    for (const a of missing) if (this.device.hasSession(a) || bundles[a]) recipients[a] = this.device.encryptOne(a, payload, bundles[a]);
    delete e.repair;
    e.repairs = (e.repairs ?? 0) + 1;
    this.h.keyring.changed();
    this.h.state.markOutgoingChanged(e);
  }

  /** The frame of an edit of an encrypted message, encrypted like a send; null to edit in the clear. */
  async sealEdit(m: ChatMessage, text: string): Promise<Record<string, unknown> | null> {
    if (!m.msg) return null;
    const sealed = "user" in m.chat ? await this.pairwise(m.chat.user, { text }, []) : await this.group(m.chat.group, { text }, [], null);
    if (typeof sealed === "string") return null;
    this.h.keyring.changed();
    return { type: "edit", msg: m.msg, e2ee: sealed };
  }

  private async membersOf(group: string): Promise<string[]> {
    const cached = this.rosters.get(group);
    if (cached && Date.now() - cached.at <= ROSTER_TTL_MS) return cached.users;
    const users = (await this.h.api.group(group)).members.map((m) => m.user);
    this.rosters.set(group, { users, at: Date.now() });
    return users;
  }

  // ---- receiving -------------------------------------------------------------------

  /**
   * Starts checking a group message's signature ahead of `open`, natively where
   * the runtime can (SenderKeys.checkAhead); null when there is nothing to check.
   */
  checkAhead(f: { from: string; chat: Chat; e2ee: DeliveredE2ee }): Promise<boolean> | null {
    if (!("group" in f.chat) || !f.e2ee.senderKeyCiphertext) return null;
    return this.device.senderKeys.checkAhead(f.chat.group, address(f.from, f.e2ee.sender), f.e2ee.senderKeyCiphertext);
  }

  /** Opens an encrypted message (synchronously: stored with the model before it is acked). */
  open(f: { from: string; chat: Chat; e2ee: DeliveredE2ee }): Opened {
    const { keyring } = this.h;
    try {
      if ("group" in f.chat) {
        if (!f.e2ee.senderKeyCiphertext) return { kind: "error", code: "malformed" };
        const plaintext = this.device.decryptGroup(f.chat.group, address(f.from, f.e2ee.sender), f.e2ee.senderKeyCiphertext);
        keyring.changed();
        return { kind: "content", content: decodeContent(plaintext) };
      }
      const d = this.device.decryptMessage(f.from, { sender: f.e2ee.sender, ...(f.e2ee.type ? { type: f.e2ee.type } : {}), ...(f.e2ee.body ? { body: f.e2ee.body } : {}) });
      keyring.changed();
      if (d.identityChanged) void keyring.recheck(f.from).catch(() => {});
      const content = decodeContent(d.plaintext);
      if (content.senderKey && content.text === undefined && content.media === undefined) {
        return { kind: "control", updated: this.acceptSenderKey(address(f.from, f.e2ee.sender), content.senderKey) };
      }
      return { kind: "content", content };
    } catch (err) {
      const code = err instanceof E2eeError ? err.code : "malformed";
      if (code === "no_sender_key" && f.e2ee.senderKeyCiphertext) {
        const sealed = { sender: f.e2ee.sender, senderKeyCiphertext: f.e2ee.senderKeyCiphertext, ...(f.e2ee.attachments ? { attachments: f.e2ee.attachments } : {}) };
        return { kind: "error", code, sealed };
      }
      return { kind: "error", code };
    }
  }

  /** The new text of an encrypted edit, or undefined when this device cannot read it (it made it). */
  openEdit(chat: Chat, by: string, e2ee: DeliveredE2ee): string | undefined {
    const opened = this.open({ from: by, chat, e2ee });
    return opened.kind === "content" ? opened.content.text : undefined;
  }

  /** A member device's sender key arrived: held group messages from it are opened now. */
  private acceptSenderKey(from: string, key: SenderKeyDistribution): ChatMessage[] {
    if (typeof key.group !== "string" || typeof key.keyId !== "number" || typeof key.chainKey !== "string") return [];
    this.device.senderKeys.process(from, key);
    this.h.keyring.changed();
    const updated: ChatMessage[] = [];
    for (const m of this.h.state.messages(chatKey({ group: key.group }))) {
      if (!m.sealed || address(m.from, m.sealed.sender) !== from) continue;
      const opened = this.open({ from: m.from, chat: m.chat, e2ee: { v: 1, ...m.sealed } });
      if (opened.kind === "error" && opened.code === "no_sender_key") continue;
      delete m.sealed;
      if (opened.kind === "content") {
        applyContent(m, opened.content);
        delete m.undecryptable;
      } else if (opened.kind === "error") m.undecryptable = opened.code;
      this.h.state.markMessageChanged(m);
      updated.push(m);
    }
    return updated;
  }
}

/** The content a queued send carries (its display-only fields stripped). */
function contentOf(frame: OutgoingEntry["frame"]): SealedContent {
  const content: SealedContent = {};
  if (frame.text !== undefined) content.text = frame.text;
  if (frame.replyTo !== undefined) content.replyTo = frame.replyTo;
  if (frame.media !== undefined) {
    const { url: _url, urlExpiresAt: _exp, ...media } = frame.media;
    content.media = media;
  }
  return content;
}

/** What a peer's media must have to be fetched and opened: checked strictly. */
const PeerMediaCore = z.object({
  id: MediaRef.shape.id,
  type: MediaRef.shape.type,
  size: MediaRef.shape.size,
  key: z.string().max(64).regex(/^[A-Za-z0-9+/]*={0,2}$/).optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/)
    .transform((s) => s.toLowerCase())
    .optional(),
});
/** Display hints: each kept when it is well formed, dropped alone otherwise (a video's length may be unknown). */
const PEER_MEDIA_HINTS = { caption: MediaRef.shape.caption, width: MediaRef.shape.width, height: MediaRef.shape.height, durationMs: MediaRef.shape.durationMs, thumb: MediaRef.shape.thumb } as const;

/**
 * The media a peer's content describes, as far as it is safe to use: never a
 * `url` (it would make this device fetch from wherever the sender likes), a
 * thumb only as base64 (it goes into a CSS url()), and only known fields.
 */
function peerMedia(raw: unknown): ChatMessage["media"] | undefined {
  const core = PeerMediaCore.safeParse(raw);
  if (!core.success) return undefined;
  const media: Record<string, unknown> = { ...core.data };
  for (const [name, schema] of Object.entries(PEER_MEDIA_HINTS)) {
    const hint = schema.safeParse((raw as Record<string, unknown>)[name]);
    if (hint.success && hint.data !== undefined) media[name] = hint.data;
  }
  return media as ChatMessage["media"];
}

/** Fills a message from opened content. */
export function applyContent(m: Pick<ChatMessage, "text" | "media" | "replyTo" | "encrypted">, c: E2eeContent): void {
  if (typeof c.text === "string") m.text = c.text;
  const media = peerMedia(c.media);
  if (media) m.media = media;
  if (typeof c.replyTo === "string") m.replyTo = c.replyTo;
  m.encrypted = true;
}
