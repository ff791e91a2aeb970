// The best-effort half of the protocol on the client: presence `watch` renewed
// while someone is watched, `active` heartbeats while the app is in the
// foreground, outgoing typing with auto-off, incoming typing with expiry, and
// presence answers. Nothing here is stored; a server that does not support a
// frame type answers bad_frame once per connection and the frame is then not sent.
import { chatKey, type Chat } from "../protocol";
import type { PresenceInfo } from "./types";

export interface EphemeralOptions {
  /** Renew `watch` this often (the server keeps a watch for 60 s). */
  watchRenewMs: number;
  /** `active` heartbeat while foregrounded. */
  activeIntervalMs: number;
  /** Send `typing off` after this long without a keystroke. */
  typingIdleMs: number;
  /** Re-send `typing on` this often while the user keeps typing. */
  typingRepeatMs: number;
  /** Forget someone's `typing on` after this long without news. */
  typingExpireMs: number;
}

export const DEFAULT_EPHEMERAL: EphemeralOptions = {
  watchRenewMs: 50_000,
  activeIntervalMs: 5_000,
  typingIdleMs: 3_000,
  typingRepeatMs: 4_000,
  typingExpireMs: 8_000,
};

type Timer = ReturnType<typeof setTimeout>;

export interface EphemeralHooks {
  /** Sends a frame if the socket is open; false otherwise. */
  send(frame: Record<string, unknown>): boolean;
  onTyping(chat: Chat, user: string, on: boolean): void;
}

export class Ephemeral {
  private readonly watched = new Map<string, number>();
  private watchTimer: Timer | null = null;
  private activeTimer: Timer | null = null;
  private foreground = false;
  private readonly outTyping = new Map<string, { chat: Chat; lastOnAt: number; idle: Timer | null }>();
  private readonly inTyping = new Map<string, Map<string, Timer>>();
  /** Frame types the server said it does not support (reset per connection). */
  readonly unsupported = new Set<string>();
  readonly presence = new Map<string, PresenceInfo>();

  constructor(
    private readonly o: EphemeralOptions,
    private readonly h: EphemeralHooks,
  ) {}

  /** A socket is open: re-announce what the server forgot with the old one. */
  connected(): void {
    this.unsupported.clear();
    this.sendWatch();
    if (this.foreground) this.sendActive();
  }

  stop(): void {
    for (const t of [this.watchTimer, this.activeTimer]) if (t) clearInterval(t);
    this.watchTimer = this.activeTimer = null;
    for (const s of this.outTyping.values()) if (s.idle) clearTimeout(s.idle);
    this.outTyping.clear();
    for (const m of this.inTyping.values()) for (const t of m.values()) clearTimeout(t);
    this.inTyping.clear();
  }

  // ---- presence ----------------------------------------------------------------

  watch(users: string[]): void {
    let added = false;
    for (const u of users) {
      const n = this.watched.get(u) ?? 0;
      this.watched.set(u, n + 1);
      if (n === 0) added = true;
    }
    if (added) this.sendWatch();
    if (this.watched.size > 0 && !this.watchTimer) this.watchTimer = setInterval(() => this.sendWatch(), this.o.watchRenewMs);
  }

  unwatch(users: string[]): void {
    for (const u of users) {
      const n = (this.watched.get(u) ?? 0) - 1;
      if (n <= 0) this.watched.delete(u);
      else this.watched.set(u, n);
    }
    if (this.watched.size === 0 && this.watchTimer) {
      clearInterval(this.watchTimer);
      this.watchTimer = null;
    }
  }

  get watchedUsers(): string[] {
    return [...this.watched.keys()];
  }

  private sendWatch(): void {
    // The whole set each time: renewing and replacing read the same. At most 100 per frame.
    const users = this.watchedUsers.slice(0, 100);
    if (users.length > 0 && !this.unsupported.has("watch")) this.h.send({ type: "watch", users });
  }

  applyPresence(p: PresenceInfo): void {
    this.presence.set(p.user, p);
  }

  // ---- activity ------------------------------------------------------------------

  setForeground(on: boolean): void {
    if (on === this.foreground) return;
    this.foreground = on;
    if (this.activeTimer) clearInterval(this.activeTimer);
    this.activeTimer = null;
    if (on) {
      this.sendActive();
      this.activeTimer = setInterval(() => this.sendActive(), this.o.activeIntervalMs);
    }
  }

  get isForeground(): boolean {
    return this.foreground;
  }

  private sendActive(): void {
    if (!this.unsupported.has("active")) this.h.send({ type: "active" });
  }

  // ---- typing ----------------------------------------------------------------------

  /** Call on every keystroke; sends `on` (repeated while typing) and `off` when idle. */
  typing(chat: Chat, now = Date.now()): void {
    const key = chatKey(chat);
    let s = this.outTyping.get(key);
    if (!s) this.outTyping.set(key, (s = { chat, lastOnAt: 0, idle: null }));
    if (now - s.lastOnAt >= this.o.typingRepeatMs) {
      s.lastOnAt = now;
      if (!this.unsupported.has("typing")) this.h.send({ type: "typing", chat, on: true });
    }
    if (s.idle) clearTimeout(s.idle);
    s.idle = setTimeout(() => this.stopTyping(chat), this.o.typingIdleMs);
  }

  stopTyping(chat: Chat): void {
    const key = chatKey(chat);
    const s = this.outTyping.get(key);
    if (!s) return;
    if (s.idle) clearTimeout(s.idle);
    this.outTyping.delete(key);
    if (!this.unsupported.has("typing")) this.h.send({ type: "typing", chat, on: false });
  }

  /** Ends every typing indicator this device has on (the page is going away). */
  stopAllTyping(): void {
    for (const s of [...this.outTyping.values()]) this.stopTyping(s.chat);
  }

  /** A `typing` frame from the server (or a message from that user, which ends typing). */
  applyTyping(chat: Chat, user: string, on: boolean): void {
    const key = chatKey(chat);
    let m = this.inTyping.get(key);
    const was = m?.has(user) ?? false;
    const old = m?.get(user);
    if (old) clearTimeout(old);
    if (on) {
      if (!m) this.inTyping.set(key, (m = new Map()));
      m.set(user, setTimeout(() => this.applyTyping(chat, user, false), this.o.typingExpireMs));
    } else m?.delete(user);
    if (was !== on) this.h.onTyping(chat, user, on);
  }

  typingIn(chat: Chat): string[] {
    return [...(this.inTyping.get(chatKey(chat))?.keys() ?? [])];
  }

  /** Remembers that the server refused a frame type (from its bad_frame message). */
  noteError(code: string, message: string): void {
    const m = /"(\w+)" is not supported/.exec(message);
    if (code === "bad_frame" && m?.[1]) this.unsupported.add(m[1]);
  }
}
