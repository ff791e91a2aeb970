// One Durable Object per user (idFromName(userId)): the sockets of the user's
// devices (hibernatable), the inbox with its single seq, each device's ack
// position, the outbox of hand-offs to other objects, and receipts. The class
// does lifecycle and dispatch; the inbox, outbox and chat policy live in
// src/user/*.ts and src/outbox.ts.
import { DurableObject } from "cloudflare:workers";
import { ensureUser } from "../directory";
import { AppError } from "../errors";
import { HOUSEKEEPING_INTERVAL_MS, MAX_DEVICES_PER_USER, OUTBOX_RETRY_BASE_MS, MAX_FRAME_BYTES, REPLAY_CHUNK } from "../limits";
import { Outbox, type HandoffResult, type OutboxItem } from "../outbox";
import { CLIENT_FRAME_TYPES, ClientFrame, PROTOCOL_VERSION, describeIssues, type Chat } from "../protocol";
import { CONNECT_HEADERS } from "../routes/connect";
import { migrate } from "../sqlite";
import type { Env } from "../env";
import { ChatService } from "../user/chat";
import { Inbox } from "../user/inbox";
import { USER_MIGRATIONS } from "../user/schema";
import { attachmentOf, errorFrame, safeClose, safeSend, type DeviceAttachment } from "../user/sockets";

export const CLOSE = { replaced: 4000, tokenExpired: 4001, policy: 4008, tooManyDevices: 4009, internal: 1011 } as const;

export class UserObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly inbox: Inbox;
  private readonly outbox: Outbox;
  private readonly chat: ChatService;
  /** Cached alarm time; null when none is set (loaded in the constructor). */
  private alarmAt: number | null = null;
  private userId: string | null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    migrate(this.sql, USER_MIGRATIONS);
    this.userId = this.meta("user");
    this.inbox = new Inbox(this.sql);
    this.outbox = new Outbox(
      this.sql,
      (target, items) => this.handoffTo(target, items),
      (target, item, result) => this.chat.refused(target, item, result),
    );
    this.chat = new ChatService({
      sql: this.sql,
      transaction: (fn) => ctx.storage.transactionSync(fn),
      inbox: this.inbox,
      outbox: this.outbox,
      self: () => this.self(),
      push: (json, except) => this.push(json, except),
      sendTo: (device, json) => this.sendTo(device, json),
      wake: () => this.wake(),
    });
    // Answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    void ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  // ---- connect -----------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const user = request.headers.get(CONNECT_HEADERS.user);
    const device = request.headers.get(CONNECT_HEADERS.device);
    const expiresAt = Number(request.headers.get(CONNECT_HEADERS.expiresAt));
    if (!user || !device || !Number.isFinite(expiresAt)) return new Response("bad connect", { status: 400 });
    if (this.userId === null) await this.register(user);

    const now = Date.now();
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];

    // A second socket for the same device replaces the first.
    for (const old of this.ctx.getWebSockets(device)) safeClose(old, CLOSE.replaced, "replaced by a newer connection");
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
    const attachment: DeviceAttachment = { device, expiresAt, connectedAt: now };
    server.serializeAttachment(attachment);

    const { row } = this.inbox.connect(device, now);
    safeSend(
      server,
      JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, user, device, head: this.inbox.head, serverTime: now }),
    );
    for (const gap of this.inbox.gapsFor(row, now)) safeSend(server, JSON.stringify({ type: "gap", ...gap, reason: "expired" }));
    let chunk: string[] = [];
    for (const frame of this.inbox.replay(device, row.acked)) {
      chunk.push(frame);
      if (chunk.length >= REPLAY_CHUNK) {
        for (const f of chunk) safeSend(server, f);
        chunk = [];
      }
    }
    for (const f of chunk) safeSend(server, f);
    safeSend(server, JSON.stringify({ type: "synced", head: this.inbox.head }));
    this.scheduleAlarm();
    return new Response(null, { status: 101, webSocket: client });
  }

  private async register(user: string): Promise<void> {
    // The directory learns of users who only ever connect (tokens minted elsewhere).
    await ensureUser(this.env.DB, user);
    this.setMeta("user", user);
    this.userId = user;
  }

  // ---- frames ------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const attachment = attachmentOf(ws);
    if (!attachment) return safeClose(ws, CLOSE.internal, "unknown socket");
    const now = Date.now();
    if (attachment.expiresAt <= now) return safeClose(ws, CLOSE.tokenExpired, "token expired");
    if (typeof message !== "string") {
      safeSend(ws, errorFrame("unsupported_frame", "binary frames are not supported; send JSON text"));
      return;
    }
    if (message.length > MAX_FRAME_BYTES || (message.length * 3 > MAX_FRAME_BYTES && new TextEncoder().encode(message).length > MAX_FRAME_BYTES)) {
      safeSend(ws, errorFrame("too_large", `frames are at most ${MAX_FRAME_BYTES} bytes`));
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(message);
    } catch {
      safeSend(ws, errorFrame("bad_json", "frame is not valid JSON"));
      return;
    }
    const ref = refOf(raw);
    try {
      const frame = parseFrame(raw);
      await this.chat.handle(frame, attachment.device, ws, now);
    } catch (err) {
      if (err instanceof AppError) {
        safeSend(ws, errorFrame(err.code, err.message, ref));
      } else {
        console.error("frame failed", this.userId, attachment.device, err);
        safeSend(ws, errorFrame("internal", "internal error", ref));
      }
    }
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    const attachment = attachmentOf(ws);
    if (attachment) this.inbox.touch(attachment.device, Date.now());
    // Not reciprocated: the runtime answers the close itself (and 1005/1006 must not be).
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.webSocketClose(ws);
  }

  // ---- RPC: other objects hand things over -------------------------------

  /** Items from another object's outbox, in order. Idempotent per item. */
  async handoff(to: string, from: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    // An object may be addressed before its user ever connected: learn who it is.
    if (this.userId === null) {
      this.setMeta("user", to);
      this.userId = to;
    }
    this.injectFault();
    const results = this.chat.accept(from, items, Date.now());
    this.scheduleAlarm();
    return results;
  }

  /**
   * Test-only: the next `n` hand-offs to this object fail as if it were
   * unreachable. Stored, so it survives eviction; refused unless DEV_AUTH is on.
   */
  async failNextHandoffs(n: number): Promise<void> {
    if (this.env.DEV_AUTH !== "true") throw new Error("fault injection is for tests only");
    this.setMeta("fail_handoffs", String(n));
  }

  private injectFault(): void {
    if (this.env.DEV_AUTH !== "true") return;
    const left = Number(this.meta("fail_handoffs") ?? "0");
    if (left > 0) {
      this.setMeta("fail_handoffs", String(left - 1));
      throw new Error("injected hand-off failure");
    }
  }

  // ---- alarm ---------------------------------------------------------------

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    for (const ws of this.ctx.getWebSockets()) {
      const a = attachmentOf(ws);
      if (a && a.expiresAt <= now) safeClose(ws, CLOSE.tokenExpired, "token expired");
    }
    const due = Number(this.meta("housekeeping_at") ?? "0");
    if (due <= now) {
      this.ctx.storage.transactionSync(() => {
        this.inbox.purgeExpired(now);
        this.chat.purgeExpired(now);
        this.setMeta("housekeeping_at", String(now + HOUSEKEEPING_INTERVAL_MS));
      });
    }
    await this.outbox.drain();
    this.scheduleAlarm();
  }

  /** Sets the alarm to the earliest thing that needs it. */
  private scheduleAlarm(): void {
    const candidates: number[] = [];
    const outboxDue = this.outbox.nextDueAt();
    // A fresh row is drained at once by wake(); the alarm is only the backstop
    // for an eviction in the middle of that drain.
    if (outboxDue !== null) candidates.push(Math.max(outboxDue, Date.now() + OUTBOX_RETRY_BASE_MS));
    for (const ws of this.ctx.getWebSockets()) {
      const a = attachmentOf(ws);
      if (a) candidates.push(a.expiresAt);
    }
    if (!this.inbox.isEmpty() || this.chat.hasState()) {
      const due = this.meta("housekeeping_at");
      if (due === null) this.setMeta("housekeeping_at", String(Date.now() + HOUSEKEEPING_INTERVAL_MS));
      candidates.push(Number(due ?? Date.now() + HOUSEKEEPING_INTERVAL_MS));
    }
    if (candidates.length === 0) return;
    const next = Math.min(...candidates);
    if (this.alarmAt === null || next < this.alarmAt) {
      this.alarmAt = next;
      void this.ctx.storage.setAlarm(next);
    }
  }

  /** Something was queued: set the backstop alarm, then drain now. */
  private wake(): void {
    this.scheduleAlarm();
    void this.outbox.drain().then(() => this.scheduleAlarm());
  }

  // ---- plumbing ----------------------------------------------------------

  private async handoffTo(target: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    const sep = target.indexOf(":");
    const kind = target.slice(0, sep);
    const id = target.slice(sep + 1);
    const from = `user:${this.self()}`;
    if (kind === "user") return this.env.USERS.getByName(id).handoff(id, from, items);
    if (kind === "group") return this.env.GROUPS.getByName(id).handoff(id, from, items);
    throw new Error(`unknown outbox target ${target}`);
  }

  private push(json: string, exceptDevice?: string): void {
    for (const ws of this.ctx.getWebSockets()) {
      const a = attachmentOf(ws);
      if (a && a.device !== exceptDevice) safeSend(ws, json);
    }
  }

  private sendTo(device: string, json: string): void {
    for (const ws of this.ctx.getWebSockets(device)) safeSend(ws, json);
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

function refOf(raw: unknown): string | undefined {
  if (raw && typeof raw === "object") {
    const r = raw as Record<string, unknown>;
    if (typeof r.id === "string" && r.id.length <= 64) return r.id;
    if (typeof r.msg === "string" && r.msg.length <= 64) return r.msg;
  }
  return undefined;
}

function parseFrame(raw: unknown): ClientFrame {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new AppError("bad_frame", "frame: must be a JSON object");
  const type = (raw as Record<string, unknown>).type;
  if (typeof type !== "string") throw new AppError("bad_frame", "type: required");
  if (!(CLIENT_FRAME_TYPES as readonly string[]).includes(type)) throw new AppError("bad_frame", `type: unknown frame type "${type.slice(0, 32)}"`);
  const parsed = ClientFrame.safeParse(raw);
  if (!parsed.success) throw new AppError("bad_frame", describeIssues(parsed.error));
  return parsed.data;
}

export type { Chat };
