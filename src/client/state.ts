// The client's model of the user's chats, rebuilt from the store at start and
// changed by frames: conversations, their messages (own ones with a status),
// the queue of sends waiting for `sent`, and the last applied inbox seq. Pure
// bookkeeping: no sockets, no timers. Every change marks the records it touched
// dirty; ChatClient writes them to the store before acknowledging anything.
// Record shapes and the message order live in records.ts.
import { chatFromKey, chatKey, type Chat, type EventFrame, type ReceiptFrame } from "../protocol";
import { byTime, clean, historyStatus, messageKey, type Meta, type MessageInput, type OutgoingEntry } from "./records";
import { STATUS_RANK, type ChatMessage, type Conversation, type MessageStatus } from "./types";

/** Receipts kept for messages this device has not matched to a send yet (Meta.earlyReceipts). */
const MAX_EARLY_RECEIPTS = 500;

export { messageKey, type Meta, type MessageInput, type OutgoingEntry, type SealedContent } from "./records";

export class ChatState {
  meta: Meta;
  readonly conversations = new Map<string, Conversation>();
  private readonly lists = new Map<string, ChatMessage[]>();
  private readonly byKey = new Map<string, ChatMessage>();
  private readonly byMsg = new Map<string, ChatMessage>();
  readonly outgoing: OutgoingEntry[] = [];
  private readonly dirty = new Set<string>();
  private readonly removed = new Set<string>();
  /** Records other modules own ("e2ee:..."): a value, or a function that makes it at write time. */
  private readonly extras = new Map<string, unknown>();
  /** Counts inbox entries that said something about this user's groups (see ChatSync.checkMembership). */
  membershipMark = 0;

  constructor(user: string, device: string) {
    this.meta = { user, device, lastSeq: 0, nextOrder: 1 };
  }

  get self(): string {
    return this.meta.user;
  }

  /** Rebuilds from store records (see store.ts for the key layout). */
  load(records: Array<[string, unknown]>): void {
    for (const [k, v] of records) {
      if (k === "meta") {
        const m = v as Meta;
        if (m.user === this.meta.user) this.meta = { ...this.meta, ...m };
      } else if (k.startsWith("conv:")) this.conversations.set((v as Conversation).key, v as Conversation);
      else if (k.startsWith("msg:")) this.index(v as ChatMessage);
      else if (k.startsWith("out:")) this.outgoing.push(v as OutgoingEntry);
      else if (k.startsWith("e2ee")) this.extras.set(k, v);
    }
    this.outgoing.sort((a, b) => a.order - b.order);
    for (const list of this.lists.values()) list.sort(byTime);
  }

  /** Dirty records to write (and clears the dirty set). */
  takeChanges(): { puts: Array<[string, unknown]>; deletes: string[] } {
    const puts: Array<[string, unknown]> = [];
    for (const k of this.dirty) {
      const v = this.recordOf(k);
      if (v !== undefined) puts.push([k, v]);
    }
    const deletes = [...this.removed];
    this.dirty.clear();
    this.removed.clear();
    return { puts, deletes };
  }

  /** A write failed: its records are dirty again. */
  requeue(puts: Array<[string, unknown]>, deletes: string[]): void {
    for (const [k] of puts) this.dirty.add(k);
    for (const k of deletes) this.removed.add(k);
  }

  get hasChanges(): boolean {
    return this.dirty.size > 0 || this.removed.size > 0;
  }

  touchMeta(): void {
    this.dirty.add("meta");
  }

  /** A record another module owns, as loaded or last set. */
  record(key: string): unknown {
    const v = this.extras.get(key);
    return typeof v === "function" ? (v as () => unknown)() : v;
  }

  /** Sets such a record (a function is called when the record is written) and marks it dirty. */
  setRecord(key: string, value: unknown): void {
    this.extras.set(key, value);
    this.dirty.add(key);
  }

  // ---- reading ---------------------------------------------------------------

  messages(key: string): ChatMessage[] {
    return this.lists.get(key) ?? [];
  }

  message(key: string): ChatMessage | undefined {
    return this.byKey.get(key);
  }

  messageByMsg(msg: string): ChatMessage | undefined {
    return this.byMsg.get(msg);
  }

  conversation(chat: Chat): Conversation {
    const key = chatKey(chat);
    let c = this.conversations.get(key);
    if (!c) {
      c = { key, chat: chatFromKey(key), unread: 0, lastActivity: 0 };
      this.conversations.set(key, c);
      this.dirty.add(`conv:${key}`);
    }
    return c;
  }

  changedConversation(c: Conversation): void {
    this.dirty.add(`conv:${c.key}`);
  }

  // ---- own sends -----------------------------------------------------------------

  addPending(chat: Chat, id: string, content: Pick<ChatMessage, "text" | "media" | "replyTo">, now: number, seal = false): { message: ChatMessage; entry: OutgoingEntry } {
    const conv = this.conversation(chat);
    const order = this.meta.nextOrder++;
    const message: ChatMessage = { key: messageKey(conv.key, this.self, id), chatKey: conv.key, chat: conv.chat, id, from: this.self, ts: now, mine: true, status: "pending", order, ...clean(content) };
    this.index(message);
    this.touchLast(conv, message);
    const frame: OutgoingEntry["frame"] = { type: "send", id, to: conv.chat, ...clean(content) };
    const entry: OutgoingEntry = { id, order, frame, ...(seal ? { seal: "pending" as const } : {}) };
    this.outgoing.push(entry);
    this.dirty.add(`out:${id}`);
    this.dirty.add("meta");
    return { message, entry };
  }

  outgoingById(id: string): OutgoingEntry | undefined {
    return this.outgoing.find((e) => e.id === id);
  }

  /** A hidden send (a sender-key hand-over), queued just before `before` so it goes out first, or last. */
  addControl(before: OutgoingEntry | null, entry: Omit<OutgoingEntry, "order">, k: number, n: number): void {
    // An order strictly between `before` and whatever was queued ahead of it (orders are integers).
    const order = before ? before.order - 1 + k / (n + 1) : this.meta.nextOrder++;
    const queued: OutgoingEntry = { ...entry, order, control: true };
    const at = before ? this.outgoing.indexOf(before) : -1;
    this.outgoing.splice(at < 0 ? this.outgoing.length : at, 0, queued);
    this.dirty.add(`out:${queued.id}`);
    this.dirty.add("meta");
  }

  markOutgoingChanged(e: OutgoingEntry): void {
    this.dirty.add(`out:${e.id}`);
  }

  /** `sent`: the server stored it. Returns the message if this device sent it. */
  markSent(id: string, msg: string, ts: number): { message: ChatMessage; previous: MessageStatus | undefined } | null {
    const entry = this.outgoingById(id);
    const key = entry ? messageKey(chatKey(entry.frame.to), this.self, id) : null;
    if (entry) this.removeOutgoing(id);
    const m = key ? this.byKey.get(key) : undefined;
    if (!m) return null;
    const previous = m.status;
    m.msg = msg;
    m.ts = ts;
    this.byMsg.set(msg, m);
    if (m.status === "pending" || m.status === undefined) m.status = "sent";
    const early = this.meta.earlyReceipts?.[msg];
    if (early !== undefined) {
      if (STATUS_RANK[early] > STATUS_RANK[m.status]) m.status = early;
      delete this.meta.earlyReceipts![msg];
      this.dirty.add("meta");
    }
    this.reposition(m);
    this.dirty.add(`msg:${m.key}`);
    return { message: m, previous };
  }

  /** The server refused a send for good (or a group refused the post). Returns the message if this device sent it. */
  markFailed(id: string, error: { code: string; message: string }): { message: ChatMessage; previous: MessageStatus | undefined } | null {
    const entry = this.outgoingById(id);
    if (entry) this.removeOutgoing(id);
    const key = entry ? messageKey(chatKey(entry.frame.to), this.self, id) : null;
    const m = key ? this.byKey.get(key) : [...this.byKey.values()].find((x) => x.mine && x.id === id && x.status !== "read" && x.status !== "delivered");
    if (!m) return null;
    const previous = m.status;
    m.status = "failed";
    m.error = error;
    this.dirty.add(`msg:${m.key}`);
    return { message: m, previous };
  }

  removeOutgoing(id: string): void {
    const i = this.outgoing.findIndex((e) => e.id === id);
    if (i >= 0) this.outgoing.splice(i, 1);
    this.removed.add(`out:${id}`);
    this.dirty.delete(`out:${id}`);
  }

  // ---- frames ------------------------------------------------------------------

  /** Adds a received message (live, replayed or from history); null if already held. */
  addMessage(input: MessageInput, opts: { unread: boolean }): ChatMessage | null {
    const conv = this.conversation(input.chat);
    const key = messageKey(conv.key, input.from, input.id);
    const existing = this.byKey.get(key);
    if (existing) {
      // A history copy of a message already held: only fill what is missing.
      if (!existing.msg) {
        existing.msg = input.msg;
        this.byMsg.set(input.msg, existing);
        this.dirty.add(`msg:${key}`);
      }
      return null;
    }
    const mine = input.from === this.self;
    const m: ChatMessage = { key, chatKey: conv.key, chat: conv.chat, id: input.id, msg: input.msg, from: input.from, ts: input.ts, mine };
    if (input.text !== undefined) m.text = input.text;
    if (input.media !== undefined) m.media = input.media;
    if (input.replyTo !== undefined) m.replyTo = input.replyTo;
    if (input.expiresAt !== undefined) m.expiresAt = input.expiresAt;
    if (input.editedAt !== undefined) m.edited = true;
    if (input.encrypted !== undefined) m.encrypted = input.encrypted;
    if (input.undecryptable !== undefined) m.undecryptable = input.undecryptable;
    if (input.sealed !== undefined) m.sealed = input.sealed;
    if (mine) m.status = historyStatus(input);
    this.index(m);
    this.touchLast(conv, m);
    if (!mine && opts.unread && (!conv.readUpTo || input.msg > conv.readUpTo)) {
      conv.unread++;
      this.changedConversation(conv);
    }
    return m;
  }

  /**
   * A group message came through the inbox: only members get those, so the user
   * is (again) a member, whatever an older event said (events and messages of a
   * group arrive in the group's order).
   */
  memberAgain(conv: Conversation): void {
    this.membershipMark++;
    this.setLeft(conv, false);
  }

  /** Sets or clears a group conversation's `left`; true when it changed. */
  setLeft(conv: Conversation, left: boolean): boolean {
    if ((conv.left === true) === left) return false;
    if (left) conv.left = true;
    else delete conv.left;
    this.changedConversation(conv);
    return true;
  }

  /** Upgrades own messages' status; returns those that changed. */
  applyReceipt(frame: ReceiptFrame): Array<{ message: ChatMessage; previous: MessageStatus | undefined }> {
    const changed: Array<{ message: ChatMessage; previous: MessageStatus | undefined }> = [];
    for (const msg of frame.msgs) {
      const m = this.byMsg.get(msg);
      if (!m) {
        // Perhaps a send of this device whose `sent` is still to come (it was lost with a socket).
        if (this.outgoing.length > 0) this.keepEarlyReceipt(msg, frame.status);
        continue;
      }
      if (!m.mine || m.status === "failed") continue;
      const previous = m.status;
      if (STATUS_RANK[frame.status] > STATUS_RANK[previous ?? "pending"]) {
        m.status = frame.status;
        this.dirty.add(`msg:${m.key}`);
        changed.push({ message: m, previous });
      }
    }
    return changed;
  }

  private keepEarlyReceipt(msg: string, status: "delivered" | "read"): void {
    const early = (this.meta.earlyReceipts ??= {});
    const had = early[msg];
    if (had !== undefined && STATUS_RANK[had] >= STATUS_RANK[status]) return;
    early[msg] = status;
    // Bounded: a receipt for a message this device never had (another device's, since purged) is dropped in time.
    const keys = Object.keys(early);
    for (const k of keys.slice(0, Math.max(0, keys.length - MAX_EARLY_RECEIPTS))) delete early[k];
    this.dirty.add("meta");
  }

  /** Applies a chat/group event; returns the messages it changed and the system line it added. */
  applyEvent(frame: EventFrame): { changed: ChatMessage[]; system: ChatMessage | null; conversation: Conversation } {
    const conv = this.conversation(frame.chat);
    const ev = frame.event as { kind: string; [k: string]: unknown };
    const changed: ChatMessage[] = [];
    const target = typeof ev.msg === "string" ? this.byMsg.get(ev.msg) : undefined;
    if (ev.kind === "edited" && target) {
      // An encrypted edit arrives here already opened (text filled in by the caller);
      // one this device cannot read (it made it) keeps the text it set locally.
      if (typeof ev.text === "string") target.text = ev.text;
      target.edited = true;
      changed.push(target);
    } else if (ev.kind === "deleted" && target) {
      delete target.text;
      delete target.media;
      target.deleted = true;
      changed.push(target);
    }
    for (const m of changed) this.dirty.add(`msg:${m.key}`);
    if (ev.kind === "retention_changed") {
      if (ev.retention === "temporary" || ev.retention === "permanent") conv.retention = ev.retention;
      if (typeof ev.disappearAfterSeconds === "number" || ev.disappearAfterSeconds === null) conv.disappearAfterSeconds = ev.disappearAfterSeconds;
    }
    if ("group" in conv.chat) {
      // Events come in inbox order, so the last one about this user decides.
      if (ev.kind === "created" || ev.kind === "member_added" || ev.kind === "member_left" || ev.kind === "member_removed") this.membershipMark++;
      if ((ev.kind === "member_left" || ev.kind === "member_removed") && ev.user === this.self) this.setLeft(conv, true);
      if (ev.kind === "created" || (ev.kind === "member_added" && Array.isArray(ev.users) && ev.users.includes(this.self))) this.setLeft(conv, false);
    }
    if (ev.kind === "renamed" && typeof ev.name === "string") conv.title = ev.name;
    if (ev.kind === "created" && typeof ev.name === "string" && !conv.title) conv.title = ev.name;
    if (ev.kind === "read" && typeof ev.upTo === "string") this.readElsewhere(conv, ev.upTo);
    this.changedConversation(conv);
    if (ev.kind === "edited" || ev.kind === "deleted" || ev.kind === "read") return { changed, system: null, conversation: conv };
    return { changed, system: this.addNotice(conv.chat, ev, frame.ts, String(frame.seq)), conversation: conv };
  }

  /** Another device of this user read the chat up to `upTo`: unread counts follow. */
  private readElsewhere(conv: Conversation, upTo: string): void {
    if (conv.readUpTo && upTo <= conv.readUpTo) return;
    conv.readUpTo = upTo;
    conv.readSent = upTo; // the server has it: this device need not send it again
    conv.unread = (this.lists.get(conv.key) ?? []).filter((m) => !m.mine && !m.system && m.msg && m.msg > upTo).length;
  }

  /** A line in the conversation that is no message: a group/chat event, or a notice ("security code changed"). */
  addNotice(chat: Chat, ev: { kind: string; [k: string]: unknown }, ts: number, id: string): ChatMessage {
    const conv = this.conversation(chat);
    const system: ChatMessage = {
      key: messageKey(conv.key, "~event", id),
      chatKey: conv.key,
      chat: conv.chat,
      id: `event-${id}`,
      from: typeof ev.by === "string" ? ev.by : "",
      ts,
      mine: false,
      system: ev,
    };
    this.index(system);
    this.touchLast(conv, system);
    return system;
  }

  /** Marks a conversation read up to its newest incoming message; returns that msg if it moved. */
  markRead(key: string): string | null {
    const conv = this.conversations.get(key);
    if (!conv) return null;
    const list = this.lists.get(key) ?? [];
    let newest: string | undefined;
    for (const m of list) if (!m.mine && !m.system && m.msg && (!newest || m.msg > newest)) newest = m.msg;
    const moved = newest !== undefined && (!conv.readUpTo || newest > conv.readUpTo);
    if (moved) conv.readUpTo = newest;
    if (moved || conv.unread !== 0) {
      conv.unread = 0;
      this.changedConversation(conv);
    }
    return moved ? newest! : null;
  }

  /** Removes messages past their `expiresAt` (disappearing messages); returns the chats touched. */
  sweepExpired(now: number): Set<string> {
    const touched = new Set<string>();
    for (const m of [...this.byKey.values()]) {
      if (m.expiresAt !== undefined && m.expiresAt <= now) {
        this.unindex(m);
        touched.add(m.chatKey);
        // An unread message that disappears stops counting (the same test as addMessage's).
        const conv = this.conversations.get(m.chatKey);
        if (conv && conv.unread > 0 && !m.mine && !m.system && m.msg && (!conv.readUpTo || m.msg > conv.readUpTo)) {
          conv.unread--;
          this.changedConversation(conv);
        }
      }
    }
    return touched;
  }

  nextExpiry(): number | null {
    let next: number | null = null;
    for (const m of this.byKey.values()) if (m.expiresAt !== undefined && (next === null || m.expiresAt < next)) next = m.expiresAt;
    return next;
  }

  markMessageChanged(m: ChatMessage): void {
    this.dirty.add(`msg:${m.key}`);
  }

  // ---- internals ---------------------------------------------------------------

  private index(m: ChatMessage): void {
    this.byKey.set(m.key, m);
    if (m.msg) this.byMsg.set(m.msg, m);
    let list = this.lists.get(m.chatKey);
    if (!list) this.lists.set(m.chatKey, (list = []));
    // Usually the newest: append, else insert in order.
    let i = list.length;
    while (i > 0 && byTime(list[i - 1]!, m) > 0) i--;
    list.splice(i, 0, m);
    this.dirty.add(`msg:${m.key}`);
  }

  /** Moves a message whose sort position changed (pending → sent) to its place. */
  private reposition(m: ChatMessage): void {
    const list = this.lists.get(m.chatKey);
    const at = list?.indexOf(m) ?? -1;
    if (!list || at < 0) return;
    list.splice(at, 1);
    let i = list.length;
    while (i > 0 && byTime(list[i - 1]!, m) > 0) i--;
    list.splice(i, 0, m);
  }

  private unindex(m: ChatMessage): void {
    this.byKey.delete(m.key);
    if (m.msg) this.byMsg.delete(m.msg);
    const list = this.lists.get(m.chatKey);
    const i = list?.indexOf(m) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
    this.dirty.delete(`msg:${m.key}`);
    this.removed.add(`msg:${m.key}`);
  }

  private touchLast(conv: Conversation, m: ChatMessage): void {
    if (m.ts >= conv.lastActivity) {
      conv.lastActivity = m.ts;
      conv.lastMessageKey = m.key;
      this.changedConversation(conv);
    }
  }

  private recordOf(k: string): unknown {
    if (k === "meta") return this.meta;
    if (k.startsWith("conv:")) return this.conversations.get(k.slice(5));
    if (k.startsWith("msg:")) return this.byKey.get(k.slice(4));
    if (k.startsWith("out:")) return this.outgoingById(k.slice(4));
    if (k.startsWith("e2ee")) return this.record(k);
    return undefined;
  }
}
