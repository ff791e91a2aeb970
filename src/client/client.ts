// ChatClient: what a chat app talks to. ChatSync (sync.ts) keeps the model in
// step with the server; this adds the calls an app makes: reading the model,
// media, opening chats (read receipts, presence), typing, activity, groups,
// chat settings, history and media URLs. Typed events report every change.
import { chatKey, type Chat } from "../protocol";
import { ApiError, type ChatSettings } from "./api";
import type { UploadOptions } from "./media";
import { ChatSync } from "./sync";
import type { ChatMessage, Conversation, MediaRef, PresenceInfo } from "./types";

export { randomId, type ChatClientOptions } from "./sync";

export interface HistoryPage {
  added: ChatMessage[];
  /** True when the server has nothing older (or keeps no history for this chat). */
  complete: boolean;
  error?: ApiError;
}

export class ChatClient extends ChatSync {
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
  /** Sends that have not been confirmed by `sent` yet, in order. */
  pendingSends(): string[] {
    return this.state.outgoing.map((e) => e.id);
  }
  presenceOf(user: string): PresenceInfo | undefined {
    return this.eph.presence.get(user);
  }
  typingIn(chat: Chat): string[] {
    return this.eph.typingIn(chat);
  }

  /** Uploads a file with the configured uploader; returns the MediaRef to put in a message. */
  async uploadMedia(file: Blob, opts: UploadOptions = {}): Promise<MediaRef> {
    const type = opts.type ?? (file.type || "application/octet-stream");
    const ref = await this.uploader(file, { ...opts, type }, { url: (p) => this.api.url(p), token: () => this.api.token(), fetch: this.o.fetch ?? ((r) => fetch(r)) });
    // A local copy to show the sender's own media at once. Browsers have it;
    // workerd defines createObjectURL but throws "not implemented".
    try {
      const U = URL as unknown as { createObjectURL?: (b: Blob) => string };
      if (typeof U.createObjectURL === "function") this.localMedia.set(ref.id, U.createObjectURL(file));
    } catch {
      // no local copy: mediaUrl() asks the server
    }
    return ref;
  }

  /** Uploads, then sends a media message (with caption and display hints). */
  async sendMedia(chat: Chat, file: Blob, hints: Omit<MediaRef, "id" | "type" | "size" | "sha256"> & UploadOptions = {}): Promise<ChatMessage> {
    const { onProgress, signal, type, ...display } = hints;
    const ref = await this.uploadMedia(file, { ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}), ...(type ? { type } : {}) });
    return this.send(chat, { media: { ...ref, ...display } });
  }

  edit(msg: string, text: string): boolean {
    return this.conn.send({ type: "edit", msg, text });
  }
  deleteMessage(msg: string): boolean {
    return this.conn.send({ type: "delete", msg });
  }

  // ---- reading, typing, presence -----------------------------------------------------

  /** The app shows this chat: marks it read, watches the peer's presence. */
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

  /** Asks the server for a user's presence (no-op if the server has no presence yet). */
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

  // ---- groups, settings, history, media urls -------------------------------------------

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

  async setChatSettings(chat: Chat, settings: ChatSettings): Promise<void> {
    await this.api.setChatSettings(chat, settings);
    const conv = this.state.conversation(chat);
    conv.retention = settings.retention;
    if (settings.disappearAfterSeconds !== undefined) conv.disappearAfterSeconds = settings.disappearAfterSeconds;
    this.state.changedConversation(conv);
    this.emit("conversation", conv);
    this.scheduleFlush();
  }

  /** Loads messages older than the oldest held (permanent chats keep history on the server). */
  async loadOlder(chat: Chat, limit = 50): Promise<HistoryPage> {
    const conv = this.state.conversation(chat);
    if (conv.historyComplete) return { added: [], complete: true };
    const oldest = this.state.messages(conv.key).find((m) => m.msg && !m.system)?.msg;
    let items;
    try {
      items = await this.api.history(chat, { ...(oldest ? { before: oldest } : {}), limit });
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError("network", String(err), 0);
      // No such route, or not a permanent chat: nothing older to show, said once.
      if (e.status >= 400 && e.status < 500 && e.status !== 429) {
        conv.historyComplete = true;
        this.state.changedConversation(conv);
      }
      return { added: [], complete: e.status >= 400 && e.status < 500, error: e };
    }
    const added: ChatMessage[] = [];
    for (const item of items) {
      const m = this.state.addMessage({ ...item, chat: conv.chat }, { unread: false });
      if (m) {
        added.push(m);
        this.emit("message", { message: m, conversation: conv, source: "history" });
      }
    }
    if (items.length < limit) conv.historyComplete = true;
    this.state.changedConversation(conv);
    this.emit("conversation", conv);
    this.scheduleFlush();
    return { added, complete: conv.historyComplete === true };
  }

  /** A URL to show a message's media: the local copy, the signed one, or a fresh one. */
  async mediaUrl(message: ChatMessage): Promise<string | null> {
    const media = message.media;
    if (!media) return null;
    const local = this.localMedia.get(media.id);
    if (local) return local;
    if (media.url && (media.urlExpiresAt === undefined || media.urlExpiresAt > Date.now() + 30_000)) return this.api.url(media.url);
    try {
      const fresh = await this.api.mediaUrl(media.id);
      media.url = fresh.url;
      if (fresh.urlExpiresAt !== undefined) media.urlExpiresAt = fresh.urlExpiresAt;
      this.state.markMessageChanged(message);
      this.scheduleFlush();
      return fresh.url;
    } catch {
      return media.url ? this.api.url(media.url) : null;
    }
  }
}
