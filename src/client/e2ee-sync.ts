// E2eeSync: the sync engine (sync.ts) with end-to-end encryption on, which is
// the default. It owns this device's Keyring (keys made on first start,
// published, refilled on every connect) and Secure (sealing sends, opening
// frames), and plugs them into the engine's hooks: sends wait in the queue
// until sealed and stored; a devices_changed answer re-seals the send under the
// same id; every message and encrypted edit is opened before the model sees it.
// ChatClient (client.ts) builds on it.
import { chatKey, type ServerFrame } from "../protocol";
import { ApiError } from "./api";
import { Keyring } from "./keyring";
import { SealRefused, Secure, applyContent, type DeliveredE2ee } from "./secure";
import type { ChatState, MessageInput, OutgoingEntry } from "./state";
import { ChatSync, randomId } from "./sync";

/** Pauses before sealing is tried again after a network or server failure (ms). */
const SEAL_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];
/** Group events after which the member list (and so the sender-key recipients) is looked up again. */
const ROSTER_EVENTS = new Set(["created", "member_added", "member_removed", "member_left"]);

type EventFrame = Extract<ServerFrame, { type: "event" }>;
type ErrorFrame = Extract<ServerFrame, { type: "error" }>;

export class E2eeSync extends ChatSync {
  protected keyring: Keyring | null = null;
  protected secure: Secure | null = null;
  private sealing: Promise<void> | null = null;
  private sealAgain = false;
  private sealTimer: ReturnType<typeof setTimeout> | null = null;
  private sealFailures = 0;
  private maintaining = false;

  /** True once this device's keys are in the server's directory (others can encrypt for it). */
  get keysPublished(): boolean {
    return this.keyring?.published ?? false;
  }

  override async stop(): Promise<void> {
    if (this.sealTimer) clearTimeout(this.sealTimer);
    this.sealTimer = null;
    await super.stop();
  }

  // ---- hooks -----------------------------------------------------------------------

  protected override get seals(): boolean {
    return this.secure !== null;
  }

  protected override loaded(): void {
    if (this.o.e2ee === false) return;
    const getState = (): ChatState => this.state;
    const keyring = new Keyring(
      {
        api: this.api,
        record: (k) => this.state.record(k),
        setRecord: (k, v) => this.state.setRecord(k, v),
        flush: () => this.flush(),
        identityChanged: (user) => this.identityChanged(user),
      },
      this.user,
      this.device,
    );
    this.keyring = keyring;
    this.secure = new Secure({
      get state() {
        return getState();
      },
      api: this.api,
      keyring,
      newId: randomId,
    });
  }

  protected override connected(): void {
    this.maintainKeys();
    void this.sealQueue();
  }

  protected override queued(): void {
    void this.sealQueue();
  }

  protected override openMessage(f: MessageInput, live = true): MessageInput | null {
    // A live message tells whether the chat is encrypted now; an old one from history does not.
    const conv = () => this.state.conversation(f.chat);
    if (!f.e2ee) {
      if (live && f.from !== this.user) {
        const c = conv();
        c.encryption = "off";
        c.encryptionNote = `${f.from}'s app sent messages unencrypted`;
        this.state.changedConversation(c);
      }
      return { ...f, encrypted: false };
    }
    const { e2ee, ...rest } = f;
    if (!this.secure) return { ...rest, encrypted: true, undecryptable: "e2ee_off" };
    const opened = this.secure.open({ from: f.from, chat: f.chat, e2ee: e2ee as DeliveredE2ee });
    if (opened.kind === "control") {
      // A sender key: shown nowhere; group messages that waited for it are readable now.
      for (const m of opened.updated) this.emit("messageUpdated", { message: m });
      return null;
    }
    if (live) {
      const c = conv();
      c.encryption = "on";
      delete c.encryptionNote;
      this.state.changedConversation(c);
    }
    if (opened.kind === "content") {
      const input: MessageInput = { ...rest };
      applyContent(input, opened.content);
      return input;
    }
    return { ...rest, encrypted: true, undecryptable: opened.code, ...(opened.sealed ? { sealed: opened.sealed } : {}) };
  }

  protected override openEvent(f: EventFrame): EventFrame {
    const ev = f.event as { kind: string; by?: unknown; e2ee?: unknown };
    if ("group" in f.chat && ROSTER_EVENTS.has(ev.kind)) this.secure?.groupChanged(f.chat.group);
    if (ev.kind !== "edited" || !ev.e2ee || !this.secure || typeof ev.by !== "string") return f;
    const text = this.secure.openEdit(f.chat, ev.by, ev.e2ee as DeliveredE2ee);
    return text === undefined ? f : { ...f, event: { ...f.event, text } };
  }

  protected override prepare(f: ServerFrame): Promise<unknown> | null {
    // A replay the model already holds is dropped unopened: nothing to check.
    if (!this.secure || (f.type !== "message" && f.type !== "event") || f.seq <= this.state.meta.lastSeq) return null;
    if (f.type === "message") return f.e2ee ? this.secure.checkAhead({ from: f.from, chat: f.chat, e2ee: f.e2ee as DeliveredE2ee }) : null;
    // An encrypted edit of a group message is signed like one (openEvent opens it).
    const ev = f.event as { kind: string; by?: unknown; e2ee?: unknown };
    if (ev.kind !== "edited" || !ev.e2ee || typeof ev.by !== "string") return null;
    return this.secure.checkAhead({ from: ev.by, chat: f.chat, e2ee: ev.e2ee as DeliveredE2ee });
  }

  protected override sendRefused(f: ErrorFrame, entry: OutgoingEntry): boolean {
    if (f.code !== "devices_changed" || !this.secure || !entry.frame.e2ee?.recipients) return false;
    entry.repair = { missing: f.missing ?? [], extra: f.extra ?? [] };
    this.state.markOutgoingChanged(entry);
    this.sentOn.delete(entry.id);
    this.unpersist(entry.id);
    void this.sealQueue();
    return true;
  }

  // ---- sealing and keys ---------------------------------------------------------------

  /** Seals queued sends in order; each is stored before it goes out (the flush pumps it). */
  protected sealQueue(): Promise<void> {
    const secure = this.secure;
    if (!secure) return Promise.resolve();
    if (this.sealing) {
      this.sealAgain = true;
      return this.sealing;
    }
    this.sealing = secure
      .exclusive(() => this.sealAll(secure))
      .finally(() => {
        this.sealing = null;
        if (this.sealAgain) {
          this.sealAgain = false;
          void this.sealQueue();
        }
      });
    return this.sealing;
  }

  private async sealAll(secure: Secure): Promise<void> {
    for (;;) {
      const e = this.state.outgoing.find((x) => x.seal === "pending" || x.repair);
      if (!e) return;
      try {
        await secure.seal(e);
        this.sealFailures = 0;
        this.unpersist(e.id);
      } catch (err) {
        const final = err instanceof SealRefused || (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429);
        if (!final) {
          // Offline, or the server failed: the send waits (in order) and sealing is tried again.
          this.emit("error", { code: "seal_failed", message: String(err), ref: e.id });
          this.retrySealLater();
          return;
        }
        const failed = this.state.markFailed(e.id, { code: err instanceof ApiError ? err.code : "e2ee_failed", message: err instanceof Error ? err.message : String(err) });
        if (failed) this.emit("messageUpdated", { message: failed.message, ...(failed.previous ? { previousStatus: failed.previous } : {}) });
      }
      const conv = this.state.conversations.get(chatKey(e.frame.to));
      if (conv) this.emit("conversation", conv);
      await this.flush();
    }
  }

  private retrySealLater(): void {
    if (this.sealTimer) return;
    const delay = SEAL_RETRY_MS[Math.min(this.sealFailures++, SEAL_RETRY_MS.length - 1)]!;
    this.sealTimer = setTimeout(() => {
      this.sealTimer = null;
      void this.sealQueue();
    }, delay);
  }

  /** Publishes the keys (first start), rotates the signed prekey, refills one-time prekeys. */
  private maintainKeys(): void {
    const { keyring, secure } = this;
    if (!keyring || !secure || this.maintaining) return;
    this.maintaining = true;
    secure
      .exclusive(() => keyring.maintain())
      .catch((err: unknown) => this.emit("error", { code: "keys_failed", message: String(err) }))
      .finally(() => {
        this.maintaining = false;
      });
  }

  /** A contact's keys changed: a line in the chat, and the safety number is worth a look. */
  private identityChanged(user: string): void {
    const conv = this.state.conversations.get(chatKey({ user }));
    if (conv) {
      conv.securityChanged = true;
      this.state.changedConversation(conv);
      const notice = this.state.addNotice(conv.chat, { kind: "security_changed", user }, Date.now(), randomId("n"));
      this.emit("message", { message: notice, conversation: conv, source: "live" });
      this.emit("conversation", conv);
      this.scheduleFlush();
    }
    this.emit("identityChanged", { user });
  }
}
