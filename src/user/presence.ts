// Presence of this user (online, last seen), the watches others hold on it,
// the watches this user's devices hold on others, and typing relays. Called by
// the UserObject on every accepted frame (activity), on connect and socket
// close (reconcile), from the alarm, and by RPC from other users' objects.
//
// All of it is best-effort: never in the inbox, never through the outbox,
// fire-and-forget with bounded concurrency, and the first thing shed when the
// object is busy. Nothing on the path of send or ack awaits any of it.
//
// Storage, kept cheap on purpose:
// - meta.last_seen: written at most every LAST_SEEN_WRITE_INTERVAL_MS while
//   the user is active, and always when they go offline. Eviction while active
//   can cost last seen at most that interval of precision.
// - meta.presence_sent: the state last broadcast to watchers. A state that
//   differs from it is pending, so a broadcast lost to eviction is redone by
//   the next alarm rather than silently dropped.
// - presence_watchers / presence_watching: subscriptions with their expiry,
//   in SQLite so that eviction never ends a watch before its 60 s.
import { GROUP_ID } from "../ids";
import { AppError } from "../errors";
import {
  LAST_SEEN_WRITE_INTERVAL_MS,
  ONLINE_WINDOW_MS,
  PRESENCE_COALESCE_MS,
  PRESENCE_RPC_CONCURRENCY,
  PRESENCE_RPC_QUEUE,
  SHED_FRAMES_IN_FLIGHT,
  SHED_OUTBOX_BACKLOG,
  SHED_RPC_BACKLOG,
  TYPING_RPC_CONCURRENCY,
  WATCH_TTL_MS,
} from "../limits";
import { USER_DRIVEN_TYPES, type Chat, type ClientFrame, type PrivacySettings } from "../protocol";
import { TaskPool } from "./taskpool";

/** SQLite tables of presence: a migration entry in src/user/schema.ts, so never edit it once shipped. */
export const PRESENCE_SCHEMA = `
-- Who watches this user: one row per watching user, renewed by each watch
-- of any of its devices.
CREATE TABLE presence_watchers (watcher TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
-- Whom this user's devices watch: a device's watch frame replaces its rows.
CREATE TABLE presence_watching (
  device TEXT NOT NULL,
  user TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (device, user)
);
CREATE INDEX presence_watching_user ON presence_watching(user);
`;

/** A user's presence as one object tells another. `at` orders views from the same object. */
export interface PresenceView {
  online: boolean;
  lastSeen: number | null;
  at: number;
}

/** The presence RPCs of another user's object (UserObject implements them). */
export interface PresencePeer {
  presenceSubscribe(self: string, watcher: string, expiresAt: number): Promise<PresenceView>;
  presencePush(self: string, user: string, view: PresenceView): Promise<{ watching: boolean }>;
  typingRelay(self: string, from: string, chat: Chat, on: boolean): Promise<void>;
}

export interface PresenceDeps {
  sql: SqlStorage;
  transaction<T>(fn: () => T): T;
  self(): string;
  /** Whether a device socket is open, not counting `closing` (the one being closed right now). */
  hasOpenSocket(closing?: WebSocket): boolean;
  sendTo(device: string, json: string): void;
  push(json: string): void;
  /** Calls another user's object (through the owner's kept stubs). */
  peer<R>(user: string, call: (peer: PresencePeer) => Promise<R>): Promise<R>;
  /** Calls a group's object, which relays typing to its members. */
  group(id: string, call: (group: { typing(from: string, on: boolean): Promise<void> }) => Promise<void>): Promise<void>;
  /** The subset of users that exist in the directory. */
  knownUsers(users: string[]): Promise<Set<string>>;
  privacy(): PrivacySettings;
  framesInFlight(): number;
  /** Outbox rows waiting, counted up to `cap` (a backed-up outbox must not be scanned per typing frame). */
  outboxBacklog(cap: number): number;
  /** Re-evaluates the object's one alarm (it asks nextAlarmAt). */
  scheduleAlarm(): void;
}

export interface LoadFigures {
  framesInFlight: number;
  outboxBacklog: number;
  rpcBacklog: number;
}

/** The load-shedding rule: busy objects relay no typing and defer presence. */
export function isBusy(load: LoadFigures): boolean {
  return load.framesInFlight >= SHED_FRAMES_IN_FLIGHT || load.outboxBacklog >= SHED_OUTBOX_BACKLOG || load.rpcBacklog >= SHED_RPC_BACKLOG;
}

const NEVER_SEEN_KEY = "offline:null";

/** Newest view seen per watched user, kept to drop reordered RPCs; cleared past this size. */
const MAX_TRACKED_VIEWS = 2_000;

export class PresenceService {
  private lastActive: number | null;
  private persisted: number | null;
  private online: boolean;
  private sentKey: string;
  private lastBroadcastAt = 0;
  private readonly newestAt = new Map<string, number>();
  private readonly relays = new TaskPool("presence rpc", PRESENCE_RPC_CONCURRENCY, PRESENCE_RPC_QUEUE);
  private readonly typingRelays = new TaskPool("typing relay", TYPING_RPC_CONCURRENCY, 0);

  constructor(private readonly d: PresenceDeps) {
    const stored = this.meta("last_seen");
    this.lastActive = this.persisted = stored === null ? null : Number(stored);
    // Never broadcast: watchers start from "offline, never seen", which a new user is.
    this.sentKey = this.meta("presence_sent") ?? NEVER_SEEN_KEY;
    this.online = this.computeOnline(Date.now());
  }

  busy(): boolean {
    return isBusy({ framesInFlight: this.d.framesInFlight(), outboxBacklog: this.d.outboxBacklog(SHED_OUTBOX_BACKLOG), rpcBacklog: this.relays.backlog });
  }

  // ---- this user's own presence ----------------------------------------------

  /** Every accepted frame passes here; only user-driven ones move last seen. */
  activity(type: string, now: number): void {
    if (!USER_DRIVEN_TYPES.has(type)) return;
    this.lastActive = Math.max(this.lastActive ?? 0, now);
    if (this.persisted === null || now - this.persisted >= LAST_SEEN_WRITE_INTERVAL_MS) this.persist();
    this.reconcile(now);
  }

  /** Recomputes online; announces a change to watchers (coalesced). */
  reconcile(now: number, closing?: WebSocket): void {
    const online = this.computeOnline(now, closing);
    if (online !== this.online) {
      this.online = online;
      // Going offline always stores the exact last seen that memory holds;
      // going online needs the alarm at the window's end.
      if (!online && this.lastActive !== this.persisted) this.persist();
      if (online) this.d.scheduleAlarm();
    }
    this.maybeBroadcast(now);
  }

  alarm(now: number): void {
    this.reconcile(now);
  }

  /** When the alarm is needed: the online window's end, or a coalesced broadcast. */
  nextAlarmAt(now: number): number | null {
    const candidates: number[] = [];
    if (this.online && this.lastActive !== null) candidates.push(this.lastActive + ONLINE_WINDOW_MS);
    if (this.pendingKey(now) !== null) candidates.push(Math.max(this.lastBroadcastAt + PRESENCE_COALESCE_MS, now + (this.busy() ? PRESENCE_COALESCE_MS : 0)));
    return candidates.length > 0 ? Math.min(...candidates) : null;
  }

  /** This user's presence as others see it (privacy applied) or as the user itself does. */
  view(now: number, asSelf = false): PresenceView {
    this.reconcile(now);
    return this.snapshot(now, asSelf);
  }

  private snapshot(now: number, asSelf = false): PresenceView {
    if (!asSelf && this.d.privacy().lastSeen === "nobody") return { online: false, lastSeen: null, at: now };
    return { online: this.online, lastSeen: this.lastActive, at: now };
  }

  privacyChanged(now: number): void {
    this.reconcile(now);
  }

  // ---- others watching this user ------------------------------------------------

  /** RPC from a watcher's object: registers (or renews) it and returns the current view. */
  subscribe(watcher: string, expiresAt: number, now: number): PresenceView {
    const until = Math.min(expiresAt, now + WATCH_TTL_MS);
    // The view first: a change it settles is broadcast to earlier watchers, not also to this one.
    const view = this.view(now);
    this.d.sql.exec(
      `INSERT INTO presence_watchers (watcher, expires_at) VALUES (?, ?)
       ON CONFLICT(watcher) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)`,
      watcher,
      until,
    );
    return view;
  }

  private maybeBroadcast(now: number): void {
    const key = this.pendingKey(now);
    if (key === null) return;
    if (now < this.lastBroadcastAt + PRESENCE_COALESCE_MS || this.busy()) {
      this.d.scheduleAlarm(); // the alarm sends the state current at that time
      return;
    }
    const view = this.snapshot(now);
    this.sentKey = key;
    this.lastBroadcastAt = now;
    this.d.sql.exec("INSERT INTO meta (key, value) VALUES ('presence_sent', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key);
    this.d.sql.exec("DELETE FROM presence_watchers WHERE expires_at <= ?", now);
    const watchers = this.d.sql.exec<{ watcher: string; expires_at: number }>("SELECT watcher, expires_at FROM presence_watchers").toArray();
    if (watchers.length === 0) return;
    const self = this.d.self();
    for (const w of watchers) {
      const queued = this.relays.submit(async () => {
        const answer = await this.d.peer(w.watcher, (p) => p.presencePush(w.watcher, self, view));
        // No device there watches any more: forget it (unless it renewed meanwhile).
        if (!answer.watching) this.d.sql.exec("DELETE FROM presence_watchers WHERE watcher = ? AND expires_at = ?", w.watcher, w.expires_at);
      });
      if (!queued) console.warn("presence push dropped: queue full", self, w.watcher);
    }
  }

  /** The key of the state watchers should see, or null when they already have it. */
  private pendingKey(now: number): string | null {
    const v = this.snapshot(now);
    const key = v.online ? "online" : `offline:${v.lastSeen}`; // NEVER_SEEN_KEY when offline and never seen
    return key === this.sentKey ? null : key;
  }

  // ---- this user's devices watching others ------------------------------------

  /** A device's watch frame: replaces its list, then fetches each user's state (async). */
  watch(device: string, users: string[], now: number): void {
    const list = [...new Set(users)];
    const expiresAt = now + WATCH_TTL_MS;
    this.d.transaction(() => {
      this.d.sql.exec("DELETE FROM presence_watching WHERE device = ?", device);
      for (const u of list) this.d.sql.exec("INSERT INTO presence_watching (device, user, expires_at) VALUES (?, ?, ?)", device, u, expiresAt);
    });
    void this.register(device, list, expiresAt, now).catch((err: unknown) => console.warn("watch failed", String(err)));
  }

  private async register(device: string, users: string[], expiresAt: number, now: number): Promise<void> {
    const self = this.d.self();
    if (users.includes(self)) this.deliver([device], self, this.view(now, true));
    const others = users.filter((u) => u !== self);
    if (others.length === 0) return;
    // Users not in the directory get "offline, unknown" without creating an object for them.
    const known = await this.d.knownUsers(others).catch((err: unknown) => {
      console.warn("directory lookup failed; watching all", String(err));
      return new Set(others);
    });
    for (const u of others) {
      if (!known.has(u)) {
        this.deliver([device], u, { online: false, lastSeen: null, at: now });
        continue;
      }
      this.relays.submit(async () => {
        const view = await this.d.peer(u, (p) => p.presenceSubscribe(u, self, expiresAt));
        if (this.isStale(u, view)) return;
        this.deliver([device], u, view);
      });
    }
  }

  /** RPC from a watched user's object: its presence changed. */
  pushed(user: string, view: PresenceView, now: number): { watching: boolean } {
    const devices = this.d.sql
      .exec<{ device: string }>("SELECT device FROM presence_watching WHERE user = ? AND expires_at > ?", user, now)
      .toArray()
      .map((r) => r.device);
    if (devices.length === 0) return { watching: false };
    if (this.isStale(user, view)) return { watching: true };
    // Shed: the state is dropped here; the device gets it back with its next watch renewal.
    if (!this.busy()) this.deliver(devices, user, view);
    return { watching: true };
  }

  /** RPCs can overtake each other: never replace a newer view with an older one. */
  private isStale(user: string, view: PresenceView): boolean {
    if ((this.newestAt.get(user) ?? 0) > view.at) return true;
    if (this.newestAt.size >= MAX_TRACKED_VIEWS) this.newestAt.clear();
    this.newestAt.set(user, view.at);
    return false;
  }

  private deliver(devices: string[], user: string, view: PresenceView): void {
    // Reciprocal privacy: whoever hides their last seen sees nobody else's (own excepted).
    const hide = user !== this.d.self() && this.d.privacy().lastSeen === "nobody";
    const json = JSON.stringify({ type: "presence", user, online: view.online, lastSeen: hide ? null : view.lastSeen });
    for (const device of devices) this.d.sendTo(device, json);
  }

  // ---- typing ------------------------------------------------------------------

  /**
   * Relays typing to the other party's object (or the group's, which relays to
   * its members), fire-and-forget; dropped when busy or when all relay slots
   * are taken.
   */
  typing(chat: Chat, on: boolean): void {
    const self = this.d.self();
    if ("group" in chat) {
      if (this.busy() || !GROUP_ID.test(chat.group)) return;
      const group = chat.group;
      this.typingRelays.submit(() => this.d.group(group, (g) => g.typing(self, on)));
      return;
    }
    if (chat.user === self) throw new AppError("bad_frame", "chat: cannot type to yourself");
    if (this.busy()) return;
    const peer = chat.user;
    this.typingRelays.submit(() => this.d.peer(peer, (p) => p.typingRelay(peer, self, { user: self }, on)));
  }

  /** RPC: someone types to this user; `chat` is already from this user's view. */
  typingArrived(from: string, chat: Chat, on: boolean): void {
    if (this.busy()) return;
    this.d.push(JSON.stringify({ type: "typing", user: from, chat, on }));
  }

  /** Handles the frames that are presence's alone; false for the rest. */
  handle(frame: ClientFrame, device: string, now: number): boolean {
    switch (frame.type) {
      case "active":
        return true; // activity() counts it once the frame is accepted
      case "typing":
        this.typing(frame.chat, frame.on);
        return true;
      case "watch":
        this.watch(device, frame.users, now);
        return true;
      default:
        return false;
    }
  }

  // ---- plumbing ----------------------------------------------------------------

  private computeOnline(now: number, closing?: WebSocket): boolean {
    return this.lastActive !== null && now < this.lastActive + ONLINE_WINDOW_MS && this.d.hasOpenSocket(closing);
  }

  private persist(): void {
    if (this.lastActive === null) return;
    this.d.sql.exec(
      "INSERT INTO meta (key, value) VALUES ('last_seen', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      String(this.lastActive),
    );
    this.persisted = this.lastActive;
  }

  private meta(key: string): string | null {
    return this.d.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? null;
  }
}
