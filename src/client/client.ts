// ChatClient: what a chat app talks to. ChatSync (sync.ts) keeps the model in
// step with the server and E2eeSync (e2ee-sync.ts) encrypts it end to end; this
// adds the calls an app makes: reading the model, media (encrypted files in
// encrypted chats), edits, opening chats (read receipts, presence), typing,
// activity, groups, chat settings, history, media URLs and safety numbers.
import { E2EE_MEDIA_TYPE, MEDIA_TYPES } from "../limits";
import { chatKey, type Chat } from "../protocol";
import { ApiError, type ChatSettings } from "./api";
import { decryptMedia, encryptMedia } from "./e2ee";
import { E2eeSync } from "./e2ee-sync";
import type { UploadOptions } from "./media";
import { messageKey, type MessageInput } from "./state";
import type { ChatMessage, Conversation, MediaRef, PresenceInfo } from "./types";

export { randomId, type ChatClientOptions } from "./sync";

export interface HistoryPage {
  added: ChatMessage[];
  /** True when the server has nothing older (or keeps no history for this chat). */
  complete: boolean;
  error?: ApiError;
}

/** How often an encrypted edit is re-sealed after devices_changed before it is given up. */
const EDIT_RESEALS = 3;

export class ChatClient extends E2eeSync {
  // ---- reading the model -----------------------------------------------------------

  /** Conversations, most recent activity first. */
  conversations(): Conversation[] {
    return [...this.state.conversations.values()].sort((a, b) => b.lastActivity - a.lastActivity);
  }
  conversation(chat: Chat): Conversation {
    return this.state.conversation(chat);
  }
  messages(chat: Chat): ChatMessage[] {
    return this.state.messages(chatKey(chat));
  }
  message(key: string): ChatMessage | undefined {
    return this.state.message(key);
  }
  /** Sends that have not been confirmed by `sent` yet, in order (sender-key hand-overs left out). */
  pendingSends(): string[] {
    return this.state.outgoing.filter((e) => !e.control).map((e) => e.id);
  }
  presenceOf(user: string): PresenceInfo | undefined {
    return this.eph.presence.get(user);
  }
  typingIn(chat: Chat): string[] {
    return this.eph.typingIn(chat);
  }

  // ---- media -------------------------------------------------------------------------

  /** Uploads a file with the configured uploader; returns the MediaRef to put in a message. */
  async uploadMedia(file: Blob, opts: UploadOptions = {}): Promise<MediaRef> {
    const type = opts.type ?? (file.type || "application/octet-stream");
    const ref = await this.uploader(file, { ...opts, type }, { url: (p) => this.api.url(p), token: () => this.api.token(), fetch: this.o.fetch ?? ((r) => fetch(r)) });
    this.keepLocalCopy(ref.id, file);
    return ref;
  }

  /**
   * Uploads, then sends a media message (with caption and display hints). In a
   * chat that is encrypted, the file is encrypted first (a fresh key that
   * travels inside the message) and the server gets only ciphertext.
   */
  async sendMedia(chat: Chat, file: Blob, hints: Omit<MediaRef, "id" | "type" | "size" | "sha256"> & UploadOptions = {}): Promise<ChatMessage> {
    const { onProgress, signal, type, ...display } = hints;
    const up = { ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) };
    const plainType = type ?? (file.type || "application/octet-stream");
    if (this.secure && (await this.secure.willEncrypt(chat).catch(() => false))) {
      const sealed = await encryptMedia(new Uint8Array(await file.arrayBuffer()));
      const ref = await this.uploadMedia(new Blob([sealed.ciphertext as Uint8Array<ArrayBuffer>], { type: E2EE_MEDIA_TYPE }), { ...up, type: E2EE_MEDIA_TYPE });
      this.keepLocalCopy(ref.id, file);
      return this.send(chat, { media: { id: ref.id, type: plainType, size: sealed.size, sha256: sealed.sha256, key: sealed.key, ...display } });
    }
    const ref = await this.uploadMedia(file, { ...up, type: plainType });
    return this.send(chat, { media: { ...ref, ...display } });
  }

  /** A URL to show a message's media: the local copy, the signed one, a fresh one, or the decrypted file. */
  async mediaUrl(message: ChatMessage): Promise<string | null> {
    const media = message.media;
    if (!media) return null;
    const local = this.localMedia.get(media.id);
    if (local) return local;
    if (media.key) {
      // Encrypted: fetched, decrypted and checked here; shown from memory.
      const bytes = await this.mediaBytes(message);
      // The type is the sender's word: only a media type the server would store is
      // given to the blob. An "image/svg+xml" or "text/html" one opened in a tab
      // would run its script in the app's origin.
      const type = displayableType(media.type);
      return this.keepLocalCopy(media.id, new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
    }
    if (media.url && (media.urlExpiresAt === undefined || media.urlExpiresAt > Date.now() + 30_000)) return this.api.url(media.url);
    try {
      return this.api.url(await this.freshMediaUrl(message));
    } catch {
      return media.url ? this.api.url(media.url) : null;
    }
  }

  /** A message's file, decrypted and checked against its SHA-256 when it was encrypted. */
  async mediaBytes(message: ChatMessage): Promise<Uint8Array> {
    const media = message.media;
    if (!media) throw new Error("the message has no media");
    const fresh = media.url && (media.urlExpiresAt === undefined || media.urlExpiresAt > Date.now() + 30_000);
    const bytes = await this.api.download(fresh ? media.url! : await this.freshMediaUrl(message));
    if (!media.key) return bytes;
    return decryptMedia(bytes, { key: media.key, sha256: media.sha256 ?? "" });
  }

  /** GET /v1/media/:id/url, kept on the message (URLs are relative to the server). */
  private async freshMediaUrl(message: ChatMessage): Promise<string> {
    const media = message.media!;
    const fresh = await this.api.mediaUrl(media.id);
    media.url = fresh.url;
    media.urlExpiresAt = fresh.urlExpiresAt;
    this.state.markMessageChanged(message);
    this.scheduleFlush();
    return fresh.url;
  }

  /** An object URL of a file, where the platform has them (browsers; workerd throws "not implemented"). */
  private keepLocalCopy(id: string, file: Blob): string | null {
    try {
      const U = URL as unknown as { createObjectURL?: (b: Blob) => string };
      if (typeof U.createObjectURL !== "function") return null;
      const url = U.createObjectURL(file);
      this.localMedia.set(id, url);
      return url;
    } catch {
      return null; // no local copy: mediaUrl() asks the server
    }
  }

  // ---- edit and delete ------------------------------------------------------------------

  /**
   * Edits an own message (the server allows 15 minutes). An encrypted message
   * is edited encrypted, for the chat's current devices, and never in the clear
   * (false when that cannot be done; the server refuses a plain edit of it too).
   * Shown at once; the `edited` event that comes back confirms it.
   */
  async edit(msg: string, text: string): Promise<boolean> {
    const m = this.state.messageByMsg(msg);
    if (m?.encrypted) {
      const before = m.text;
      const done = await this.editSealed(m, msg, text);
      // Refused or given up: the message shows what the server and the peer have.
      if (!done && m.text !== before && before !== undefined) this.applyEdit(m, before);
      return done;
    }
    if (!this.conn.send({ type: "edit", msg, text })) return false;
    if (m) this.applyEdit(m, text);
    return true;
  }

  /** The encrypted edit: sealed for the chat's devices, sealed again after devices_changed. */
  private async editSealed(m: ChatMessage, msg: string, text: string): Promise<boolean> {
    if (!this.secure) return false;
    for (let i = 0; i < EDIT_RESEALS; i++) {
      const frame = await this.secure.exclusive(() => this.secure!.sealEdit(m, text));
      if (!frame) return false; // nobody can decrypt any more
      await this.flush(); // the ratchets moved: stored before the frame goes out
      const refused = this.once("error", (e) => e.ref === msg, 3_000).then((e) => e.code, () => null);
      // The server's `edited` event for it (not the message's `edited` flag: a second edit finds it set).
      const confirmed = this.once("event", (e) => e.event.kind === "edited" && (e.event as { msg?: unknown }).msg === msg, 3_000).then(() => null, () => null);
      if (!this.conn.send(frame)) return false;
      this.applyEdit(m, text);
      const code = await Promise.race([refused, confirmed]);
      if (code !== "devices_changed") return code === null;
      // Someone's devices changed: look again and seal anew.
      this.keyring!.forgetList(this.user);
      if ("user" in m.chat) this.keyring!.forgetList(m.chat.user);
    }
    return false; // the devices kept changing
  }

  private applyEdit(m: ChatMessage, text: string): void {
    m.text = text;
    this.state.markMessageChanged(m);
    this.emit("messageUpdated", { message: m });
    this.scheduleFlush();
  }

  deleteMessage(msg: string): boolean {
    return this.conn.send({ type: "delete", msg });
  }

  // ---- reading, typing, presence -----------------------------------------------------

  /** The app shows this chat: marks it read, watches the peer's presence, checks its encryption. */
  openChat(chat: Chat): void {
    const key = chatKey(chat);
    if (this.activeChat?.key === key) return this.markRead(chat);
    this.closeChat();
    this.activeChat = { key, chat };
    this.markRead(chat);
    if ("user" in chat) {
      this.eph.watch([chat.user]);
      void this.fetchPresence(chat.user);
    }
    void this.checkEncryption(chat);
  }

  closeChat(): void {
    const open = this.activeChat;
    if (!open) return;
    this.activeChat = null;
    if ("user" in open.chat) this.eph.unwatch([open.chat.user]);
  }

  /** Call on each keystroke in the composer. */
  typing(chat: Chat): void {
    this.eph.typing(chat);
  }
  stopTyping(chat: Chat): void {
    this.eph.stopTyping(chat);
  }
  /** Ends every typing indicator of this device (call when the page or app goes away). */
  stopAllTyping(): void {
    this.eph.stopAllTyping();
  }
  /** The app is (not) in front of the user: drives `active` heartbeats and auto-read of the open chat. */
  setForeground(on: boolean): void {
    this.eph.setForeground(on);
    if (on && this.activeChat) this.markRead(this.activeChat.chat);
  }
  watch(users: string[]): void {
    this.eph.watch(users);
  }
  unwatch(users: string[]): void {
    this.eph.unwatch(users);
  }

  /** Asks the server for a user's presence. */
  async fetchPresence(user: string): Promise<PresenceInfo | undefined> {
    try {
      const p = await this.api.presence(user);
      this.eph.applyPresence(p);
      this.emit("presence", p);
      return p;
    } catch {
      return undefined;
    }
  }

  // ---- encryption ------------------------------------------------------------------------

  /** Whether messages to this chat would be encrypted now; sets the conversation's `encryption`. */
  async checkEncryption(chat: Chat): Promise<boolean> {
    if (!this.secure) return false;
    let on: boolean;
    try {
      on = await this.secure.willEncrypt(chat);
    } catch {
      return this.conversation(chat).encryption === "on";
    }
    const conv = this.state.conversation(chat);
    const was = conv.encryption;
    conv.encryption = on ? "on" : "off";
    if (on) delete conv.encryptionNote;
    else conv.encryptionNote ??= `${"user" in chat ? chat.user : "a member"} has not set up encryption: messages go unencrypted`;
    if (was !== conv.encryption) {
      this.state.changedConversation(conv);
      this.emit("conversation", conv);
      this.scheduleFlush();
    }
    return on;
  }

  /**
   * The safety number of the chat with `user`: 60 digits over both users'
   * current device keys, the same on both screens. Looking at it clears the
   * conversation's `securityChanged`.
   */
  async safetyNumber(user: string): Promise<{ digits: string; mine: number; theirs: number }> {
    if (!this.keyring) throw new Error("end-to-end encryption is off in this client");
    const n = await this.keyring.safetyNumber(user);
    const conv = this.state.conversations.get(chatKey({ user }));
    if (conv?.securityChanged) {
      conv.securityChanged = false;
      this.state.changedConversation(conv);
      this.emit("conversation", conv);
      this.scheduleFlush();
    }
    return n;
  }

  // ---- groups, settings, history -------------------------------------------------------

  async createGroup(name: string, members: string[]) {
    const g = await this.api.createGroup(name, members);
    const conv = this.state.conversation({ group: g.id });
    conv.title = g.name;
    conv.lastActivity = Math.max(conv.lastActivity, g.createdAt ?? Date.now());
    this.state.changedConversation(conv);
    this.emit("conversation", conv);
    this.scheduleFlush();
    return g;
  }

  /** PUT /v1/chats/:chat/settings; the conversation takes the server's answer. */
  async setChatSettings(chat: Chat, settings: Partial<ChatSettings>): Promise<ChatSettings> {
    const answer = await this.api.setChatSettings(chat, settings);
    this.applySettings(chat, answer);
    return answer;
  }

  /** GET /v1/chats/:chat/settings, applied to the conversation. */
  async chatSettings(chat: Chat): Promise<ChatSettings> {
    const answer = await this.api.chatSettings(chat);
    this.applySettings(chat, answer);
    return answer;
  }

  private applySettings(chat: Chat, s: ChatSettings): void {
    const conv = this.state.conversation(chat);
    conv.retention = s.retention;
    conv.disappearAfterSeconds = s.disappearAfterSeconds ?? null;
    this.state.changedConversation(conv);
    this.emit("conversation", conv);
    this.scheduleFlush();
  }

  /**
   * Loads the page of history before the oldest message held (permanent chats
   * keep it on the server), following the server's `nextBefore`. Encrypted
   * history is opened like live messages; what this device cannot read shows as such.
   */
  async loadOlder(chat: Chat, limit = 50): Promise<HistoryPage> {
    const conv = this.state.conversation(chat);
    if (conv.historyComplete) return { added: [], complete: true };
    const before = conv.historyBefore ?? this.state.messages(conv.key).find((m) => m.msg && !m.system)?.msg;
    let page;
    try {
      page = await this.api.history(chat, { ...(before ? { before } : {}), limit });
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError("network", String(err), 0);
      const final = e.status >= 400 && e.status < 500 && e.status !== 429;
      // Not a member, or no such chat: nothing older to show, said once.
      if (final) {
        conv.historyComplete = true;
        this.state.changedConversation(conv);
      }
      return { added: [], complete: final, error: e };
    }
    const added: ChatMessage[] = [];
    for (const item of page.messages) {
      const held = this.state.message(messageKey(conv.key, item.from, item.id));
      // Held already (message keys open once): only fill in what is missing.
      if (held) {
        if (!held.msg) this.state.addMessage({ ...item, chat: conv.chat } as MessageInput, { unread: false });
        continue;
      }
      const input = this.openMessage({ ...item, chat: conv.chat } as MessageInput, false);
      const m = input && this.state.addMessage(input, { unread: false });
      if (m) {
        added.push(m);
        this.emit("message", { message: m, conversation: conv, source: "history" });
      }
    }
    if (page.nextBefore === null) conv.historyComplete = true;
    else conv.historyBefore = page.nextBefore;
    this.state.changedConversation(conv);
    this.emit("conversation", conv);
    this.scheduleFlush();
    return { added, complete: conv.historyComplete === true };
  }
}

/** A media type the server stores as itself (images, video, audio); anything else is opaque bytes. */
export function displayableType(type: string): string {
  return type !== E2EE_MEDIA_TYPE && Object.hasOwn(MEDIA_TYPES, type) ? type : "application/octet-stream";
}
