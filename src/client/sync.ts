// ChatSync: keeps the client's model in step with the server. One connection
// kept up (connection.ts), the server's frames applied to the model (state.ts)
// and stored (store.ts) before anything is acknowledged, unconfirmed sends
// re-sent with their original id after every reconnect, reads re-sent if a
// socket dropped them. E2eeSync (e2ee-sync.ts) adds encryption through the
// protected hooks below; ChatClient (client.ts) puts the app-facing calls on top.
import { chatKey, type Chat, type ServerFrame } from "../protocol";
import { Api } from "./api";
import { Connection, DEFAULT_BACKOFF, defaultSocketFactory } from "./connection";
import { Emitter } from "./emitter";
import { DEFAULT_EPHEMERAL, Ephemeral } from "./ephemeral";
import { defaultUploader, type Uploader } from "./media";
import { ChatState, type MessageInput, type OutgoingEntry } from "./state";
import { MemoryStore, type ClientStore } from "./store";
import type { ChatMessage, ClientEvents, ConnectionState, Conversation } from "./types";
import { randomId, type ChatClientOptions } from "./options";

export { randomId, type ChatClientOptions };

/** Errors after which a send will never succeed: the message is marked failed. */
export const FINAL_SEND_ERRORS = new Set(["bad_frame", "too_large", "id_conflict", "not_member", "forbidden", "not_found", "bad_media", "group_full", "unauthorized"]);
const MAX_SEND_RETRIES = 5;

export class ChatSync extends Emitter<ClientEvents> {
  readonly api: Api;
  protected readonly store: ClientStore;
  protected readonly conn: Connection;
  protected readonly eph: Ephemeral;
  protected state: ChatState;
  protected readonly uploader: Uploader;
  private connState: ConnectionState = "idle";
  /** Outgoing ids written to the store: only those go on the wire (a reload must not lose a sent message). */
  protected readonly persisted = new Set<string>();
  /** Queued sends changed while a write was under way: that write does not cover them. */
  private readonly changedSince = new Set<string>();
  /** Which socket generation each outgoing id was last handed to. */
  protected readonly sentOn = new Map<string, number>();
  /**
   * Sends the server answered `internal`: how often, and not before when they go
   * again. Their own budget: resends after reconnects are not failures.
   */
  private readonly internalRetries = new Map<string, { count: number; at: number }>();
  /** The last frame still waiting to be applied (receive), or null when none is. */
  private intake: Promise<void> | null = null;
  /** Per conversation, the read handed to the pacer and not yet on the socket. */
  private readonly readsQueued = new Map<string, string>();
  private ackedOn = { gen: -1, seq: 0 };
  private flushChain: Promise<void> = Promise.resolve();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;
  protected activeChat: { key: string; chat: Chat } | null = null;
  private readonly titleAsked = new Set<string>();
  protected readonly localMedia = new Map<string, string>();
  private started = false;
  private storeFailures = 0;
  /** The highest `gap.to` of this socket's replay, acknowledged at `synced`. */
  private gapTo = 0;

  constructor(protected readonly o: ChatClientOptions) {
    super();
    this.api = new Api({ baseUrl: o.baseUrl, token: o.token, ...(o.fetch ? { fetch: o.fetch } : {}) });
    this.store = o.store ?? new MemoryStore();
    this.uploader = o.uploader ?? defaultUploader;
    this.state = new ChatState(o.user, o.device ?? randomId("d"));
    this.eph = new Ephemeral({ ...DEFAULT_EPHEMERAL, ...o.ephemeral }, {
      send: (f) => this.conn.send(f),
      onTyping: (chat, user, on) => {
        this.emit("typing", { chat, chatKey: chatKey(chat), user, on });
        const conv = this.state.conversations.get(chatKey(chat));
        if (conv) this.emit("conversation", conv);
      },
    });
    this.conn = new Connection({
      factory: o.socketFactory ?? defaultSocketFactory,
      backoff: { ...DEFAULT_BACKOFF, ...o.backoff },
      url: async (conn) => {
        const u = new URL("/v1/connect", o.baseUrl);
        u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
        u.searchParams.set("device", this.state.meta.device);
        u.searchParams.set("conn", String(conn));
        // Kept, so that a reload whose clock went back still sends a higher one (a half-open
        // socket of this device the server still holds would refuse a lower one as stale).
        this.state.meta.lastConn = conn;
        this.state.touchMeta();
        this.scheduleFlush();
        u.searchParams.set("access_token", await this.api.token());
        return u.toString();
      },
      onFrame: (f, gen) => this.receive(f, gen),
      onConnecting: (attempt) => this.setConn("connecting", attempt),
      onDown: (i) => this.setConn(i.replaced ? "replaced" : "offline", i.attempt, i.willRetryInMs ?? undefined, i.code),
      onBadFrame: (raw, why) => this.emit("error", { code: "bad_server_frame", message: `${why}: ${raw.slice(0, 200)}` }),
      onDropped: (frames) => this.readsDropped(frames),
      onWritten: (data) => this.readWritten(data),
      ...(o.pingIntervalMs ? { pingIntervalMs: o.pingIntervalMs } : {}),
      ...(o.pongTimeoutMs ? { pongTimeoutMs: o.pongTimeoutMs } : {}),
      ...(o.helloTimeoutMs ? { helloTimeoutMs: o.helloTimeoutMs } : {}),
    });
  }

  // ---- lifecycle -----------------------------------------------------------------

  /** Loads the stored state, then connects (and keeps reconnecting until stop()). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const records = await this.store.loadAll();
    const device = this.o.device ?? (records.find(([k]) => k === "meta")?.[1] as { device?: string } | undefined)?.device;
    this.state = new ChatState(this.o.user, device ?? this.state.meta.device);
    this.state.load(records);
    this.state.touchMeta();
    for (const e of this.state.outgoing) this.persisted.add(e.id);
    this.loaded();
    this.sweep();
    this.conn.start(this.state.meta.lastConn);
  }

  /** Closes the socket and stops every timer; the store keeps everything. */
  async stop(): Promise<void> {
    this.conn.stop();
    this.eph.stop();
    for (const t of [this.flushTimer, this.expiryTimer]) if (t) clearTimeout(t);
    this.flushTimer = this.expiryTimer = null;
    this.started = false;
    this.setConn("stopped", 0);
    await this.flush();
  }

  get user(): string {
    return this.state.self;
  }
  get device(): string {
    return this.state.meta.device;
  }
  get connectionState(): ConnectionState {
    return this.connState;
  }
  /** Highest inbox seq applied and stored. */
  get lastSeq(): number {
    return this.state.meta.lastSeq;
  }

  /** Reconnects now instead of waiting out the backoff (e.g. the browser came back online). */
  reconnectNow(): void {
    this.conn.reconnectNow();
  }
  /** Drops the socket as a network failure would (it reconnects by itself). */
  dropConnection(): void {
    this.conn.drop();
  }

  // ---- sending ---------------------------------------------------------------------

  /** Queues a message (stored first, then sent; re-sent after reconnects until `sent`). */
  send(chat: Chat, content: { text?: string; media?: ChatMessage["media"]; replyTo?: string }, id = randomId("m")): ChatMessage {
    if (!content.text && content.media === undefined) throw new Error("a message needs text (at least one character) or media");
    // Another connection of this device took over (a second tab): what this one queued would
    // be sealed with keys the other has moved on from, and sent from the shared store later.
    if (this.connectionState === "replaced") throw new Error("this device's chat is open elsewhere (another tab); reload to use it here");
    const { message } = this.state.addPending(chat, id, content, Date.now(), this.seals);
    this.eph.stopTyping(chat);
    const conv = this.state.conversation(chat);
    this.emit("message", { message, conversation: conv, source: "own" });
    this.emit("conversation", conv);
    void this.flush();
    this.queued();
    return message;
  }

  // ---- hooks (E2eeSync overrides them) ---------------------------------------------

  /** True when new sends wait to be sealed (encrypted) before they go out. */
  protected get seals(): boolean {
    return false;
  }
  /** The store is loaded (before the first connect). */
  protected loaded(): void {}
  /** A send was queued. */
  protected queued(): void {}
  /** A socket said hello. */
  protected connected(): void {}
  /** What a message frame adds to the model; null when it is nothing to show. */
  protected openMessage(f: MessageInput, _live = true): MessageInput | null {
    return f;
  }
  /** An event frame as the model applies it. */
  protected openEvent(f: Extract<ServerFrame, { type: "event" }>): Extract<ServerFrame, { type: "event" }> {
    return f;
  }
  /**
   * Work a frame can start as it arrives, before it is applied (E2eeSync: a group
   * message's signature checked natively). The frame, and every frame after it,
   * is applied once this settles; null (the usual case) applies it at once.
   */
  protected prepare(_f: ServerFrame): Promise<unknown> | null {
    return null;
  }
  /** An error frame about a queued send; true when handled here. */
  protected sendRefused(_f: Extract<ServerFrame, { type: "error" }>, _entry: OutgoingEntry): boolean {
    return false;
  }

  /** Marks everything received in the chat as read and tells the server (now or after reconnecting). */
  markRead(chat: Chat): void {
    const key = chatKey(chat);
    this.state.markRead(key);
    const conv = this.state.conversations.get(key);
    if (!conv) return;
    this.sendRead(conv);
    this.emit("conversation", conv);
    this.scheduleFlush();
  }

  // ---- persistence and acks ----------------------------------------------------------

  /** Writes every change to the store, then acks and sends what the write covered. */
  flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    // A failure never breaks the chain: the next flush runs regardless.
    this.flushChain = this.flushChain.then(() => this.writeOnce()).catch((err: unknown) => this.emit("error", { code: "flush_failed", message: String(err) }));
    return this.flushChain;
  }

  protected scheduleFlush(delayMs = this.o.ackDelayMs ?? 50): void {
    if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), delayMs);
  }

  /** A queued send changed (sealed): it goes out only once a write holding the change completed. */
  protected unpersist(id: string): void {
    this.persisted.delete(id);
    this.changedSince.add(id);
  }

  private async writeOnce(): Promise<void> {
    const seq = this.state.meta.lastSeq;
    const ids = this.state.outgoing.map((e) => e.id);
    this.changedSince.clear(); // what changes from here on is in a later write
    if (this.state.hasChanges) {
      const { puts, deletes } = this.state.takeChanges();
      try {
        await this.store.write(puts, deletes);
      } catch (err) {
        // Nothing is acknowledged or sent that is not stored; try again shortly.
        this.state.requeue(puts, deletes);
        this.emit("error", { code: "store_failed", message: String(err) });
        // A store that keeps failing (disk full, IndexedDB closed) is retried less and less often.
        this.storeFailures++;
        this.scheduleFlush(Math.min(5_000, 50 * 2 ** Math.min(this.storeFailures, 7)));
        return;
      }
    }
    this.storeFailures = 0;
    for (const id of ids) if (!this.changedSince.has(id)) this.persisted.add(id);
    this.changedSince.clear();
    this.ack(seq);
    this.pump();
  }

  private ack(seq: number): void {
    const gen = this.conn.generation;
    if (seq <= 0 || (this.ackedOn.gen === gen && this.ackedOn.seq >= seq)) return;
    if (this.conn.send({ type: "ack", seq })) this.ackedOn = { gen, seq };
  }

  /** Hands stored, unconfirmed sends to the current socket, in order. */
  private pump(): void {
    const gen = this.conn.generation;
    if (!this.conn.isOpen) return;
    const lastIn = new Map<string, string>(); // chat key -> the queued send before, in that chat
    for (const e of this.state.outgoing) {
      // In order: nothing overtakes a send that is not stored or not sealed yet.
      if (!this.persisted.has(e.id) || e.seal === "pending" || e.repair) break;
      const key = chatKey(e.frame.to);
      const after = lastIn.get(key);
      lastIn.set(key, e.id);
      // A send retried after an `internal` goes alone, until it is answered: what is behind
      // it would only be refused (out_of_order) should it fail again.
      const retried = this.internalRetries.get(e.id);
      if (this.sentOn.get(e.id) === gen) {
        if (retried) break;
        continue;
      }
      if ((retried?.at ?? 0) > Date.now()) break; // still in its pause
      if (!this.conn.send(onWire(e, after))) break;
      this.sentOn.set(e.id, gen);
      if (retried) break;
    }
    for (const conv of this.state.conversations.values()) this.sendRead(conv);
  }

  /** The queued send before `e` in the same chat, if any (all of them are unconfirmed). */
  private queuedBefore(e: OutgoingEntry): string | undefined {
    const key = chatKey(e.frame.to);
    let before: string | undefined;
    for (const o of this.state.outgoing) {
      if (o === e) break;
      if (chatKey(o.frame.to) === key) before = o.id;
    }
    return before;
  }

  /**
   * Reads the pacer dropped unwritten when the socket went down go again on the
   * next one (sends and acks are re-sent per socket already; a read is not
   * answered, so nothing else would).
   */
  private readsDropped(frames: string[]): void {
    for (const data of frames) {
      const f = readFrameOf(data);
      if (f && this.readsQueued.get(f.key) === f.upTo) this.readsQueued.delete(f.key);
    }
  }

  /**
   * A read is on the socket: only now is `readSent` set, and stored. Set when it
   * was queued, a reload while the pacer held it stored a read never sent.
   */
  private readWritten(data: string): void {
    const f = readFrameOf(data);
    if (!f) return;
    const { key } = f;
    if (this.readsQueued.get(key) === f.upTo) this.readsQueued.delete(key);
    const conv = this.state.conversations.get(key);
    if (!conv || (conv.readSent !== undefined && conv.readSent >= f.upTo)) return;
    conv.readSent = f.upTo;
    this.state.changedConversation(conv);
    this.scheduleFlush();
  }

  private sendRead(conv: Conversation): void {
    if (!conv.readUpTo || conv.readUpTo === conv.readSent || this.readsQueued.get(conv.key) === conv.readUpTo) return;
    this.readsQueued.set(conv.key, conv.readUpTo);
    if (!this.conn.send({ type: "read", chat: conv.chat, upTo: conv.readUpTo })) this.readsQueued.delete(conv.key);
  }

  // ---- frames --------------------------------------------------------------------------

  /**
   * Every frame is applied in the order it came, each once its preparation and
   * every earlier frame are done. Preparations run side by side; a frame with
   * none, when nothing waits, is applied at once (synchronously, as before).
   */
  private receive(f: ServerFrame, gen: number): void {
    const ready = this.prepare(f);
    if (ready === null && this.intake === null) return this.onFrame(f, gen);
    // A preparation that fails still lets its frame apply: it only ever saves work.
    const intake: Promise<void> = Promise.all([this.intake, ready?.catch(() => {})])
      .then(() => this.onFrame(f, gen))
      .catch((err: unknown) => this.emit("error", { code: "frame_failed", message: String(err) }))
      .finally(() => {
        if (this.intake === intake) this.intake = null;
      });
    this.intake = intake;
  }

  private onFrame(f: ServerFrame, gen: number): void {
    switch (f.type) {
      case "hello":
        // A server that lost its state (a wiped dev database) has a lower head: follow it.
        if (f.head < this.state.meta.lastSeq) {
          this.state.meta.lastSeq = f.head;
          this.state.touchMeta();
        }
        this.gapTo = 0;
        this.setConn("syncing", 0);
        this.eph.connected();
        this.pump();
        this.connected();
        return;
      case "synced": {
        // A gap may have taken a group event away (a removal, a re-add): the
        // server's list of groups says what the inbox could not. Also once per
        // store, for groups left before the flag existed or on another device.
        const checkGroups = this.gapTo > 0 || !this.state.meta.membershipChecked;
        if (this.gapTo > this.state.meta.lastSeq) {
          this.state.meta.lastSeq = this.gapTo;
          this.state.touchMeta();
        }
        this.gapTo = 0;
        // The flush acks what it stored (writeOnce), on this socket too: an ack of
        // lastSeq here could cover entries that arrived during the write, or a
        // replay the store failed to keep.
        void this.flush().then(() => {
          if (gen !== this.conn.generation) return;
          this.setConn("online", 0);
          this.emit("synced", { head: f.head });
          if (checkGroups) void this.checkMembership();
        });
        return;
      }
      case "message":
      case "receipt":
      case "event":
        // Replays are harmless: an entry already applied is dropped (and acked again at synced).
        if (f.seq <= this.state.meta.lastSeq) return;
        this.state.meta.lastSeq = f.seq;
        this.state.touchMeta();
        this.applyEntry(f);
        this.scheduleFlush();
        return;
      case "sent": {
        const r = this.state.markSent(f.id, f.msg, f.ts);
        this.sentOn.delete(f.id);
        this.internalRetries.delete(f.id);
        if (r) this.emit("messageUpdated", { message: r.message, ...(r.previous ? { previousStatus: r.previous } : {}) });
        this.scheduleFlush();
        return;
      }
      case "gap":
        // Acknowledged (ack `to` or later to move past it), else the server sends it on
        // every connect; but only at `synced`: gaps come before the replay, and one can
        // lie above entries still to be replayed, which must not count as seen.
        this.gapTo = Math.max(this.gapTo, f.to);
        this.emit("gap", { from: f.from, to: f.to });
        return;
      case "presence":
        this.eph.applyPresence(f);
        this.emit("presence", f);
        return;
      case "typing":
        this.eph.applyTyping(f.chat, f.user, f.on);
        return;
      case "error":
        this.onError(f);
        return;
    }
  }

  /**
   * Sets each group conversation's `left` from the server's list of the user's
   * groups. Skipped when an inbox entry about groups arrived meanwhile (it is
   * newer than the answer), or the request failed: tried again at the next
   * gap, or the next start until it once went through.
   */
  private async checkMembership(): Promise<void> {
    const mark = this.state.membershipMark;
    let groups: Array<{ id: string }>;
    try {
      groups = await this.api.groups();
    } catch {
      return;
    }
    if (mark !== this.state.membershipMark) return;
    const member = new Set(groups.map((g) => g.id));
    for (const conv of this.state.conversations.values()) {
      if ("group" in conv.chat && this.state.setLeft(conv, !member.has(conv.chat.group))) this.emit("conversation", conv);
    }
    this.state.meta.membershipChecked = true;
    this.state.touchMeta();
    this.scheduleFlush();
  }

  private applyEntry(f: Extract<ServerFrame, { type: "message" | "receipt" | "event" }>): void {
    if (f.type === "message") {
      const key = chatKey(f.chat);
      const reading = this.activeChat?.key === key && this.eph.isForeground;
      const input = this.openMessage(f);
      if (!input) return;
      const m = this.state.addMessage(input, { unread: !reading });
      if (!m) return;
      const conv = this.state.conversation(f.chat);
      if ("group" in f.chat) this.state.memberAgain(conv);
      this.eph.applyTyping(f.chat, f.from, false);
      this.ensureTitle(conv);
      this.emit("message", { message: m, conversation: conv, source: "live" });
      if (reading) this.markRead(f.chat);
      else this.emit("conversation", conv);
      this.sweep();
    } else if (f.type === "receipt") {
      for (const c of this.state.applyReceipt(f)) this.emit("messageUpdated", { message: c.message, ...(c.previous ? { previousStatus: c.previous } : {}) });
      this.emit("receipt", f);
    } else {
      f = this.openEvent(f);
      const r = this.state.applyEvent(f);
      for (const m of r.changed) this.emit("messageUpdated", { message: m });
      if (r.system) this.emit("message", { message: r.system, conversation: r.conversation, source: "live" });
      this.ensureTitle(r.conversation);
      this.emit("event", f);
      this.emit("conversation", r.conversation);
    }
  }

  private onError(f: Extract<ServerFrame, { type: "error" }>): void {
    if (f.code === "out_of_order" && f.ref) {
      // Not taken because the send before it is not (onWire): it goes again behind that one,
      // with the next pump (that one's `sent`, its retry, or its failure). Nothing to report.
      this.sentOn.delete(f.ref);
      return;
    }
    this.eph.noteError(f.code, f.message);
    const entry = f.ref ? this.state.outgoingById(f.ref) : undefined;
    const report = (send?: "retried" | "failed") => this.emit("error", { code: f.code, message: f.message, ...(f.ref ? { ref: f.ref } : {}), ...(send ? { send } : {}) });
    if (f.code === "rate_limited") {
      report(entry ? "retried" : undefined);
      return this.rateLimited(f.ref, entry);
    }
    if (!f.ref) return report();
    if (entry && this.sendRefused(f, entry)) return report("retried");
    const retried = this.internalRetries.get(f.ref)?.count ?? 0;
    if (entry && f.code === "internal" && retried < MAX_SEND_RETRIES) {
      // Sent again after a pause that grows with the internal errors it drew (later sends wait behind it).
      const pause = 1000 * 2 ** retried;
      this.internalRetries.set(f.ref, { count: retried + 1, at: Date.now() + pause });
      this.sentOn.delete(f.ref);
      setTimeout(() => this.pump(), pause + 5);
      return report("retried");
    }
    if (!entry && !FINAL_SEND_ERRORS.has(f.code)) return report();
    this.internalRetries.delete(f.ref);
    const failed = this.state.markFailed(f.ref, { code: f.code, message: f.message });
    report(failed ? "failed" : undefined);
    if (failed) this.emit("messageUpdated", { message: failed.message, ...(failed.previous ? { previousStatus: failed.previous } : {}) });
    this.scheduleFlush();
  }

  /** The server did not process a frame (rate limits): never a failure, it goes again after a pause (pacer.ts). */
  private rateLimited(ref: string | undefined, entry: OutgoingEntry | undefined): void {
    if (entry) {
      // A queued send: first of its class again, in the order the answers came.
      if (this.sentOn.get(entry.id) === this.conn.generation && this.conn.sendAgain(onWire(entry, this.queuedBefore(entry)))) return;
      this.sentOn.delete(entry.id);
      return this.pump();
    }
    if (ref) return this.conn.slowDown("send"); // an edit or delete: edit() reports it, the class pauses
    // An ack, read, typing or watch (they carry no ref): those classes pause; the ack goes again with the next flush.
    for (const type of ["ack", "read", "typing", "watch"]) this.conn.slowDown(type);
    this.ackedOn = { gen: -1, seq: 0 };
    this.scheduleFlush();
  }

  // ---- helpers ---------------------------------------------------------------------------

  private setConn(state: ConnectionState, attempt: number, retryInMs?: number, closeCode?: number): void {
    this.connState = state;
    this.emit("connection", { state, attempt, ...(retryInMs !== undefined ? { retryInMs } : {}), ...(closeCode !== undefined ? { closeCode } : {}) });
  }

  /** Fills a conversation's title from the directory or the group, once per session. */
  protected ensureTitle(conv: Conversation): void {
    if (conv.title || this.titleAsked.has(conv.key)) return;
    this.titleAsked.add(conv.key);
    const chat = conv.chat;
    const lookup = "user" in chat ? this.api.user(chat.user).then((p) => p.displayName) : this.api.group(chat.group).then((g) => g.name);
    lookup.then(
      (title) => {
        conv.title = title;
        this.state.changedConversation(conv);
        this.emit("conversation", conv);
        this.scheduleFlush();
      },
      () => {},
    );
  }

  /** Drops disappearing messages past their time and sets a timer for the next one. */
  private sweep(): void {
    const touched = this.state.sweepExpired(Date.now());
    for (const key of touched) {
      const conv = this.state.conversations.get(key);
      if (conv) this.emit("conversation", conv);
    }
    if (touched.size > 0) this.scheduleFlush();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    const next = this.state.nextExpiry();
    if (next !== null) this.expiryTimer = setTimeout(() => this.sweep(), Math.min(Math.max(0, next - Date.now()) + 50, 2 ** 31 - 1));
  }
}

/**
 * A serialized frame this client wrote, if it is a `read`: its chat key and upTo.
 * Every written frame passes here, so others are told apart without parsing them:
 * sendRead builds the frame with `type` first.
 */
function readFrameOf(data: string): { key: string; upTo: string } | null {
  if (!data.startsWith('{"type":"read"')) return null;
  const f = JSON.parse(data) as { chat: Chat; upTo: string };
  return { key: chatKey(f.chat), upTo: f.upTo };
}

/**
 * A queued send as it goes on the wire: with `after`, the id of the send before
 * it in the same chat that has no `sent` yet. Should that one draw an error the
 * client retries (internal, devices_changed, a rate limit), the server refuses
 * this one (out_of_order) instead of taking it first, and it goes again behind
 * it: the chat keeps the order it was typed in (docs/PROTOCOL.md, Additions).
 */
function onWire(e: OutgoingEntry, after: string | undefined): OutgoingEntry["frame"] & { after?: string } {
  return after === undefined ? e.frame : { ...e.frame, after };
}
