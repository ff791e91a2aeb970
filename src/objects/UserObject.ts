// One Durable Object per user (idFromName(userId)): the sockets of the user's
// devices (hibernatable), the inbox with its single seq, each device's ack
// position, the outbox of hand-offs to other objects, and receipts. The class
// does lifecycle and dispatch; the inbox, outbox and chat policy live in
// src/user/*.ts and src/outbox.ts.
import { DurableObject } from "cloudflare:workers";
import { AlarmClock } from "../alarm";
import { ensureUser, knownUsers } from "../directory";
import { AppError, fail } from "../errors";
import { HOUSEKEEPING_INTERVAL_MS, MAX_DEVICES_PER_USER, OUTBOX_BACKSTOP_MS, OUTBOX_RETRY_BASE_MS } from "../limits";
import { Outbox, type HandoffResult, type OutboxItem } from "../outbox";
import type { Result } from "../errors";
import {
  type Chat,
  type ChatSettings,
  type ChatSettingsBody,
  type KeyBundle,
  type PublishKeysBody,
} from "../protocol";
import { CONNECT_HEADERS } from "../routes/connect";
import { signFrame } from "../media/url";
import { earliest, migrate } from "../sqlite";
import type { Env } from "../env";
import { ChatService, mayAddDeadlines } from "../user/chat";
import { decodeFrame, parseFrame } from "../user/frames";
import { listGroups } from "../user/groups";
import { projectFor } from "../user/e2ee";
import { KeyDirectory } from "../user/keys";
import { Inbox } from "../user/inbox";
import { EXPIRY_QUERIES, Retention, type HistoryPage } from "../user/retention";
import { MEDIA_DUE_QUERIES, MediaLedger, type MediaBegin, type MediaRecord } from "../user/media";
import { sweepHolds } from "../user/media-holds";
import { USER_MIGRATIONS } from "../user/schema";
import { attachmentOf, errorFrame, safeClose, safeSend, supersedes, type DeviceAttachment } from "../user/sockets";
import type { PrivacyBody, PrivacySettings } from "../protocol";
import { PresenceService, type PresenceView } from "../user/presence";
import { PrivacyStore } from "../user/privacy";
import { RateLimiter } from "../user/ratelimit";
import { openSession } from "../user/session";
import { Stubs } from "./stubs";

/** The tables with deadlines the alarm serves: expiring media (and references), disappearing messages. */
const DEADLINE_QUERIES = [...MEDIA_DUE_QUERIES, ...EXPIRY_QUERIES];
/** How long an e2ee send waits for the peer's device list before it is answered `internal` (the client retries). */
const KEY_LOOKUP_TIMEOUT_MS = 10_000;

/** p, or AppError("internal") once ms have passed. */
export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AppError("internal", "the recipient's device list did not answer in time; try again")), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
/** Test-only faults an object can be told to inject (stored in its meta table). */
type Fault = "fail_handoffs" | "fail_key_lookups";
export const CLOSE = { replaced: 4000, tokenExpired: 4001, policy: 4008, tooManyDevices: 4009, internal: 1011 } as const;

export class UserObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly inbox: Inbox;
  private readonly outbox: Outbox;
  private readonly chat: ChatService;
  private readonly retention: Retention;
  private readonly media: MediaLedger;
  private readonly keys: KeyDirectory;
  private readonly clock: AlarmClock;
  /** meta.housekeeping_at, cached: scheduleAlarm() runs several times per message. */
  private housekeepingAt: number | null = null;
  /** Test-only fault injection (failNextHandoffs, failNextKeyLookups): what is left, cached from meta. */
  private readonly faultsLeft = new Map<Fault, number>();
  private userId: string | null;
  private readonly privacy: PrivacyStore;
  private readonly presence: PresenceService;
  /** Per-device token buckets; in memory, so hibernation refills them. */
  private readonly limits = new RateLimiter();
  /** Frames being handled right now (an input to load shedding). */
  private framesInFlight = 0;
  /** Per device, the frame still being handled (one that awaits), which later frames wait for. */
  private readonly deviceQueues = new Map<string, Promise<void>>();
  private readonly userStubs = new Stubs(this.env.USERS);
  private readonly groupStubs = new Stubs(this.env.GROUPS);

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    migrate(this.sql, USER_MIGRATIONS);
    this.userId = this.meta("user");
    // Whatever leaves the inbox may have been the last copy of a media message here.
    this.inbox = new Inbox(this.sql, () => this.mediaCopiesRemoved());
    this.media = new MediaLedger(this.sql, (fn) => this.transaction(fn), env.MEDIA);
    this.keys = new KeyDirectory(this.sql, (fn) => this.transaction(fn));
    this.outbox = new Outbox(
      this.sql,
      (target, items) => this.handoffTo(target, items),
      (target, item, result) => this.chat.refused(target, item, result),
    );
    this.retention = new Retention({ sql: this.sql, inbox: this.inbox, outbox: this.outbox, self: () => this.self() });
    this.chat = new ChatService({
      sql: this.sql,
      transaction: (fn, storesDeadlines) => this.transaction(fn, storesDeadlines),
      inbox: this.inbox,
      outbox: this.outbox,
      retention: this.retention,
      self: () => this.self(),
      push: (json, except) => this.push(json, except),
      sendTo: (device, json) => this.sendTo(device, json),
      readReceipts: () => this.privacy.get().readReceipts,
      // Bounded: the device's later frames wait for this one (webSocketMessage).
      keyDevices: async (user) => {
        if (user === this.self()) return this.keys.current();
        this.injectFault("fail_key_lookups");
        return withDeadline(this.userStubs.call(user, (stub) => stub.currentKeyDevices()), KEY_LOOKUP_TIMEOUT_MS);
      },
    });
    this.privacy = new PrivacyStore(this.sql);
    this.presence = new PresenceService({
      sql: this.sql,
      transaction: (fn) => this.transaction(fn),
      self: () => this.self(),
      hasOpenSocket: (closing) =>
        this.ctx.getWebSockets().some((ws) => ws !== closing && ws.readyState === WebSocket.OPEN && attachmentOf(ws) !== null),
      sendTo: (device, json) => this.sendTo(device, json),
      push: (json) => this.push(json),
      peer: (user, call) => this.userStubs.call(user, call),
      group: (id, call) => this.groupStubs.call(id, call),
      knownUsers: (users) => knownUsers(this.env.DB, users),
      privacy: () => this.privacy.get(),
      framesInFlight: () => this.framesInFlight,
      outboxBacklog: (cap) => this.outbox.backlog(cap),
      scheduleAlarm: () => this.scheduleAlarm(),
    });
    // Answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    this.clock = new AlarmClock(ctx.storage);
    void ctx.blockConcurrencyWhile(() => this.clock.load());
  }

  // ---- connect -----------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const user = request.headers.get(CONNECT_HEADERS.user);
    const device = request.headers.get(CONNECT_HEADERS.device);
    const expiresAt = Number(request.headers.get(CONNECT_HEADERS.expiresAt));
    if (!user || !device || !Number.isFinite(expiresAt)) return new Response("bad connect", { status: 400 });
    if (this.meta("registered") === null) await this.register(user);

    const now = Date.now();
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];

    // Checked by the Worker (src/routes/connect.ts), which sets or removes the header itself.
    const connHeader = request.headers.get(CONNECT_HEADERS.conn);
    const conn = connHeader === null ? undefined : Number(connHeader);
    const attachment: DeviceAttachment = { device, expiresAt, connectedAt: now, ...(conn === undefined ? {} : { conn }) };
    const current = this.ctx.getWebSockets(device);
    // An attempt its client gave up for a later one (a lower `conn`) that arrives
    // late loses to the socket the client opened after it, instead of replacing it:
    // the client would read that 4000 on its live socket as another tab taking over.
    const stale = current.some((ws) => {
      const a = ws.readyState === WebSocket.OPEN ? attachmentOf(ws) : null;
      return a !== null && supersedes(a, attachment);
    });
    if (stale) {
      // Accepted through the hibernation API all the same: a plain accept() would keep the
      // object in memory until the close completes, which a client that is gone may never do.
      // The tag is no device id (ids have no ':'), and no attachment: nothing counts it.
      this.ctx.acceptWebSocket(server, ["refused:conn"]);
      safeClose(server, CLOSE.replaced, "a newer connection of this device is open");
      return new Response(null, { status: 101, webSocket: client });
    }
    // A second socket for the same device replaces the first.
    for (const old of current) safeClose(old, CLOSE.replaced, "replaced by a newer connection");
    const others = new Set(
      this.ctx
        .getWebSockets()
        .map((ws) => attachmentOf(ws)?.device)
        .filter((d): d is string => d !== undefined && d !== device),
    );
    this.ctx.acceptWebSocket(server, [device]);
    if (others.size >= MAX_DEVICES_PER_USER) {
      safeClose(server, CLOSE.tooManyDevices, `at most ${MAX_DEVICES_PER_USER} devices at once`);
      return new Response(null, { status: 101, webSocket: client });
    }
    server.serializeAttachment(attachment);

    const { row } = this.inbox.connect(device, now);
    openSession(server, this.inbox, this.env, user, device, row, now);
    this.presence.reconcile(now);
    this.scheduleAlarm();
    return new Response(null, { status: 101, webSocket: client });
  }

  private async register(user: string): Promise<void> {
    // The directory learns of users who only ever connect (tokens minted elsewhere).
    await ensureUser(this.env.DB, user);
    this.setMeta("user", user);
    this.setMeta("registered", "1");
    this.userId = user;
  }

  // ---- frames ------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const attachment = attachmentOf(ws);
    if (!attachment) return safeClose(ws, CLOSE.internal, "unknown socket");
    // A socket this object closed (replaced by the device's newer connection)
    // may still deliver frames the client wrote before it noticed. They are
    // dropped: the client resends whatever got no answer on the new socket, and
    // taking a straggler after the new socket's frames would reorder its sends.
    if (ws.readyState !== WebSocket.OPEN || this.replaced(ws, attachment)) return;
    const now = Date.now();
    if (attachment.expiresAt <= now) return safeClose(ws, CLOSE.tokenExpired, "token expired");
    const decoded = decodeFrame(message);
    // Every frame draws from a bucket, one that cannot be decoded too ("other"),
    // so a flood of garbage also ends in rate_limited and then 4008.
    const verdict = this.limits.take(attachment.device, decoded.ok ? decoded.type : undefined, now);
    if (verdict !== "ok") {
      safeSend(ws, errorFrame("rate_limited", "too many frames; slow down", decoded.ok ? decoded.ref : undefined));
      if (verdict === "close") safeClose(ws, CLOSE.policy, "flooding after rate_limited");
      return;
    }
    if (!decoded.ok) {
      safeSend(ws, errorFrame(decoded.code, decoded.message));
      return;
    }
    // A device's frames are handled in the order it wrote them. Most run to the
    // end at once; one that awaits (an e2ee send asks the peer's object for its
    // device list) holds back the device's later frames, which would otherwise
    // overtake it.
    const { device } = attachment;
    const before = this.deviceQueues.get(device);
    const done = before
      ? before.then(() => this.handleFrame(ws, device, decoded.raw, decoded.ref, Date.now()))
      : this.handleFrame(ws, device, decoded.raw, decoded.ref, now);
    this.deviceQueues.set(device, done);
    try {
      await done;
    } finally {
      if (this.deviceQueues.get(device) === done) this.deviceQueues.delete(device);
    }
  }

  /** One decoded frame of a device; never throws (failures are answered as error frames). */
  private async handleFrame(ws: WebSocket, device: string, raw: unknown, ref: string | undefined, now: number): Promise<void> {
    this.framesInFlight++;
    try {
      const frame = parseFrame(raw);
      if (!this.presence.handle(frame, device, now)) await this.chat.handle(frame, device, ws, now);
      // Only a frame that was accepted counts as the user's activity (last seen, online).
      this.presence.activity(frame.type, now);
    } catch (err) {
      if (err instanceof AppError) {
        safeSend(ws, errorFrame(err.code, err.message, ref, err.details));
      } else {
        console.error("frame failed", this.userId, device, err);
        safeSend(ws, errorFrame("internal", "internal error", ref));
      }
    } finally {
      this.framesInFlight--;
    }
  }

  /** Whether a socket of the same device that wins over this one exists (src/user/sockets.ts supersedes). */
  private replaced(ws: WebSocket, a: DeviceAttachment): boolean {
    return this.ctx.getWebSockets(a.device).some((other) => {
      const o = other === ws ? null : attachmentOf(other);
      return o !== null && supersedes(o, a);
    });
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    const attachment = attachmentOf(ws);
    if (attachment) this.inbox.touch(attachment.device, Date.now());
    this.presence.reconcile(Date.now(), ws);
    // Not reciprocated: the runtime answers the close itself (and 1005/1006 must not be).
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.webSocketClose(ws);
  }

  // ---- RPC: presence, typing, privacy (best-effort, never through the outbox) ----

  /** A watcher's object registers (or renews) its watch and gets the current view. */
  async presenceSubscribe(self: string, watcher: string, expiresAt: number): Promise<PresenceView> {
    this.learn(self);
    return this.presence.subscribe(watcher, expiresAt, Date.now());
  }

  /** A watched user's object reports a change; forwarded to this user's watching devices. */
  async presencePush(self: string, user: string, view: PresenceView): Promise<{ watching: boolean }> {
    this.learn(self);
    return this.presence.pushed(user, view, Date.now());
  }

  async typingRelay(_self: string, from: string, chat: Chat, on: boolean): Promise<void> {
    // Nothing is stored for typing, not even who this object is: only open sockets matter.
    this.presence.typingArrived(from, chat, on);
  }

  /** GET /v1/users/:user/presence: as others see this user, or as the user itself does. */
  async presenceView(self: string, asSelf: boolean): Promise<PresenceView> {
    this.learn(self);
    return this.presence.view(Date.now(), asSelf);
  }

  async privacySettings(self: string): Promise<PrivacySettings> {
    this.learn(self);
    return this.privacy.get();
  }

  async setPrivacy(self: string, change: PrivacyBody): Promise<PrivacySettings> {
    this.learn(self);
    const settings = this.privacy.set(change);
    this.presence.privacyChanged(Date.now());
    return settings;
  }

  // ---- RPC: the key directory (end-to-end encryption, src/user/keys.ts) -----
  // The Worker calls these for the caller's own user (publish, count, remove)
  // or for anyone's (claim, identities); other user objects call
  // currentKeyDevices() before an encrypted send.

  async publishKeys(user: string, device: string, body: PublishKeysBody): Promise<Result<{ device: string; count: number }>> {
    this.learn(user);
    return this.keys.publish(device, body, Date.now());
  }

  /**
   * `caller` claims this user's bundles, each with a one-time prekey. Limited per
   * caller (HTTP_RATE_LIMITS.claim): anyone could otherwise drain them all, and
   * every later first message would go without one.
   */
  async claimKeys(caller: string, devices?: string[]): Promise<Result<KeyBundle[]>> {
    if (!this.limits.takeHttp("claim", Date.now(), caller)) return fail("rate_limited", "too many key requests for this user; try again in a minute");
    return { ok: true, value: this.keys.claim(devices) };
  }

  /** One HTTP write by this user (the Worker asks before settings, groups, profile, privacy and keys changes). */
  async takeHttpWrite(): Promise<boolean> {
    return this.limits.takeHttp("write", Date.now());
  }

  async keyIdentities(): Promise<Array<{ device: string; identityKey: string; signingKey: string }>> {
    return this.keys.identities();
  }

  async keyCount(device: string): Promise<number | null> {
    return this.keys.prekeyCount(device);
  }

  async removeKeyDevice(device: string): Promise<boolean> {
    return this.keys.remove(device);
  }

  async currentKeyDevices(): Promise<string[]> {
    return this.keys.current();
  }

  // ---- RPC: other objects hand things over -------------------------------

  /** Items from another object's outbox, in order. Idempotent per item. */
  async handoff(to: string, from: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    this.learn(to);
    this.injectFault("fail_handoffs");
    const results = this.chat.accept(from, items, Date.now());
    // Rows the hand-off queued have had their wake(); its other changes are deadlines.
    this.scheduleAlarm("unchanged", mayAddDeadlines(from, items));
    return results;
  }

  /**
   * Test-only: the next `n` hand-offs to this object fail as if it were
   * unreachable. Stored, so it survives eviction; refused unless DEV_AUTH is on.
   */
  async failNextHandoffs(n: number): Promise<void> {
    this.setFault("fail_handoffs", n);
  }

  /**
   * Test-only: this object's next `n` lookups of a peer's device list (an
   * encrypted one-to-one send's check) fail as if the peer's object were
   * unreachable, so the send is answered `internal`. Refused unless DEV_AUTH is on.
   */
  async failNextKeyLookups(n: number): Promise<void> {
    this.setFault("fail_key_lookups", n);
  }

  private setFault(kind: Fault, n: number): void {
    if (this.env.DEV_AUTH !== "true") throw new Error("fault injection is for tests only");
    this.setMeta(kind, String(n));
    this.faultsLeft.set(kind, n);
  }

  private injectFault(kind: Fault): void {
    if (this.env.DEV_AUTH !== "true") return;
    // Cached: dev servers (and the benchmarks) would otherwise read it on every hand-off.
    let left = this.faultsLeft.get(kind);
    if (left === undefined) this.faultsLeft.set(kind, (left = Number(this.meta(kind) ?? "0")));
    if (left > 0) {
      this.faultsLeft.set(kind, left - 1);
      this.setMeta(kind, String(left - 1));
      throw new Error(`injected fault: ${kind}`);
    }
  }

  // ---- RPC: the Worker's chat routes (one-to-one chats; the caller is this user) ----

  async chatSettings(self: string, chat: string): Promise<ChatSettings> {
    this.learn(self);
    return this.retention.settings(chat);
  }

  async changeChatSettings(self: string, chat: string, body: ChatSettingsBody): Promise<ChatSettings> {
    this.learn(self);
    const settings = this.chat.changeSettings(chat, body, Date.now());
    this.scheduleAlarm();
    return settings;
  }

  async chatHistory(self: string, chat: string, before?: string, limit?: number): Promise<HistoryPage> {
    this.learn(self);
    const page = this.retention.history(chat, before, limit);
    // Media URLs are signed for this read, like a replay.
    const now = Date.now();
    return { ...page, frames: page.frames.map((f) => signFrame(f, this.env, now)) };
  }

  // ---- RPC: media this user uploads or may fetch (src/routes/media.ts) -------

  mediaBegin(rec: MediaBegin): MediaRecord {
    this.media.begin(rec, Date.now());
    this.scheduleAlarm();
    return this.media.record(rec.id)!;
  }
  mediaRecord(id: string): MediaRecord | null {
    return this.media.record(id);
  }
  mediaPart(id: string, n: number, etag: string, size: number): boolean {
    return this.media.part(id, n, etag, size);
  }
  mediaStored(id: string, size: number, sha256: string): boolean {
    const ok = this.media.stored(id, size, sha256, Date.now());
    this.scheduleAlarm();
    return ok;
  }
  mediaDrop(id: string): void {
    this.media.drop(id);
  }
  mediaAccess(id: string): boolean {
    return this.media.access(id);
  }

  /** GET /v1/groups: the groups this user is in, as their events told this object. */
  async listGroups(): Promise<Array<{ id: string; name: string; role: "admin" | "member" }>> {
    return listGroups(this.sql);
  }

  // ---- alarm ---------------------------------------------------------------

  override async alarm(): Promise<void> {
    this.clock.fired();
    const now = Date.now();
    for (const ws of this.ctx.getWebSockets()) {
      const a = attachmentOf(ws);
      if (a && a.expiresAt <= now) safeClose(ws, CLOSE.tokenExpired, "token expired");
    }
    this.presence.alarm(now);
    const due = Number(this.meta("housekeeping_at") ?? "0");
    if (due <= now) {
      this.transaction(() => {
        this.inbox.purgeExpired(now);
        this.chat.purgeExpired(now);
        this.housekeepingAt = now + HOUSEKEEPING_INTERVAL_MS;
        this.setMeta("housekeeping_at", String(this.housekeepingAt));
      });
    }
    const expiry = this.retention.nextExpiry();
    if (expiry !== null && expiry <= now) this.transaction(() => this.retention.purgeDisappeared(now));
    this.media.expireRefs(now);
    await this.media.collect(now);
    await this.outbox.drain();
    this.outbox.settle();
    this.scheduleAlarm();
  }

  /** One write transaction; what it queued in the outbox is drained once it committed (ChatDeps.transaction). */
  private transaction<T>(fn: () => T, storesDeadlines?: () => boolean): T {
    return this.outbox.transaction(this.ctx.storage, fn, () => this.wake(storesDeadlines?.() ?? true));
  }

  /**
   * Sets the alarm to the earliest thing that needs it. `outbox` says what the
   * caller knows of the outbox: "look" (anything may have changed: ask it),
   * "fresh" (rows were just queued, due now: their backstop is known without a
   * query) or "unchanged" (nothing was queued, so nothing of the outbox can want
   * an earlier alarm than the one already asked for). A retry time is always
   * followed by a "look" (wake, alarm), and so is every alarm that fires.
   * `deadlines` false: the caller stored no deadline (mayAddDeadlines), so the
   * alarm set covers every stored one, and their query is skipped while one is set.
   */
  private scheduleAlarm(outbox: "look" | "fresh" | "unchanged" = "look", deadlines = true): void {
    const candidates: number[] = [];
    const now = Date.now();
    // Runs several times per message: a candidate with a known lower bound at or
    // after the alarm already set cannot move it, so its queries are skipped.
    const set = this.clock.setFor;
    const beats = (lowerBound: number) => set === null || lowerBound < set;
    // A fresh row is drained at once by wake(); the alarm is only the backstop
    // for an eviction in the middle of that drain.
    if (outbox === "fresh") candidates.push(now + OUTBOX_BACKSTOP_MS);
    else if (outbox === "look" && beats(now + OUTBOX_RETRY_BASE_MS)) {
      const outboxAt = this.outbox.alarmAt(now);
      if (outboxAt !== null) candidates.push(outboxAt);
    }
    // Media to expire and disappearing messages: one statement for all four tables.
    if (deadlines || set === null) {
      const due = earliest(this.sql, DEADLINE_QUERIES);
      if (due !== null) candidates.push(due);
    }
    for (const ws of this.ctx.getWebSockets()) {
      const a = attachmentOf(ws);
      if (a) candidates.push(a.expiresAt);
    }
    this.housekeepingAt ??= Number(this.meta("housekeeping_at") ?? "0") || null;
    if ((this.housekeepingAt === null || beats(this.housekeepingAt)) && (!this.inbox.isEmpty() || this.chat.hasState())) {
      if (this.housekeepingAt === null) {
        this.housekeepingAt = now + HOUSEKEEPING_INTERVAL_MS;
        this.setMeta("housekeeping_at", String(this.housekeepingAt));
      }
      candidates.push(this.housekeepingAt);
    }
    const presenceDue = this.presence.nextAlarmAt(now);
    if (presenceDue !== null) candidates.push(presenceDue);
    this.clock.request(candidates);
  }

  /**
   * Inside the transaction that removed inbox entries: media messages no longer
   * held here are released (src/user/media-holds.ts); the transaction drains them.
   */
  private mediaCopiesRemoved(): void {
    // A release to this user's own ledger queues no outbox row (so no wake): the
    // media's new deadline needs the alarm set here.
    if (sweepHolds(this.sql, this.outbox, this.userId ?? "", Date.now())) this.scheduleAlarm();
  }

  /** Something was queued: set the backstop alarm, then drain now. `deadlines`: see scheduleAlarm. */
  private wake(deadlines = true): void {
    this.scheduleAlarm("fresh", deadlines);
    this.outbox
      .drain()
      // A drain where everything went through changed nothing the backstop set
      // above does not cover; a failure (a retry time) or a refusal (media
      // released) may want the alarm sooner.
      .then((clean) => {
        // Also when the backstop could not be set (setAlarm failed: the clock forgot it).
        if (!clean || this.clock.setFor === null) this.scheduleAlarm();
      })
      // The backstop alarm set above drains again.
      .catch((err: unknown) => console.warn("outbox drain failed; the alarm retries", String(err)));
  }

  // ---- plumbing ----------------------------------------------------------

  private async handoffTo(target: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    const sep = target.indexOf(":");
    const kind = target.slice(0, sep);
    const id = target.slice(sep + 1);
    const from = `user:${this.self()}`;
    if (kind === "user") return this.userStubs.call(id, (stub) => stub.handoff(id, from, items));
    if (kind === "group") return this.groupStubs.call(id, (stub) => stub.handoff(id, from, items));
    throw new Error(`unknown outbox target ${target}`);
  }

  private push(json: string, exceptDevice?: string): void {
    // Signed on the way out (synchronously: pushes must leave in seq order).
    json = signFrame(json, this.env, Date.now());
    for (const ws of this.ctx.getWebSockets()) {
      const a = attachmentOf(ws);
      // An e2ee entry goes out with only this device's ciphertext (src/user/e2ee.ts).
      if (a && a.device !== exceptDevice) safeSend(ws, projectFor(json, this.userId ?? "", a.device));
    }
  }

  private sendTo(device: string, json: string): void {
    for (const ws of this.ctx.getWebSockets(device)) safeSend(ws, json);
  }

  /** An object may be addressed before its user ever connected: learn who it is. */
  private learn(user: string): void {
    if (this.userId !== null) return;
    this.setMeta("user", user);
    this.userId = user;
  }

  private self(): string {
    if (this.userId === null) throw new Error("user object used before its user connected or was addressed");
    return this.userId;
  }

  private meta(key: string): string | null {
    return this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? null;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }
}

export type { Chat };
