// One Durable Object per group (env.GROUPS.getByName(groupId), ids from
// newGroupId()): the roster and roles, the group log, the fan-out of every
// message and roster event to each member's UserObject through the group's own
// durable outbox, and receipt aggregation. The class does lifecycle, dispatch
// and the alarm; the policy lives in src/group/*.ts.
//
// Every RPC does its checks and writes in ONE synchronous transaction with no
// await inside: the object runs one such call at a time, so concurrent adds
// cannot pass the member cap and a post is checked against the roster as it is
// at that moment. Expected refusals cross RPC as Result values (thrown errors
// lose their class there).
import { DurableObject } from "cloudflare:workers";
import { AlarmClock } from "../alarm";
import { AppError, fail, type Result } from "../errors";
import type { Env } from "../env";
import { GroupLog } from "../group/log";
import { GroupMedia, HISTORY_HOLDER } from "../group/media";
import { MEDIA_RELEASE, type MediaReleasePayload } from "../user/media-holds";
import { GroupReceipts, type MemberStatus } from "../group/receipts";
import { GroupRetention } from "../group/retention";
import { signFrame } from "../media/url";
import type { Amendment, HistoryPage } from "../user/retention";
import { Roster } from "../group/roster";
import { GROUP_MIGRATIONS } from "../group/schema";
import type { PostPayload } from "../group/handoff";
import type { ReceiptPayload } from "../user/chat";
import { HOUSEKEEPING_INTERVAL_MS, MAX_GROUP_MEMBERS } from "../limits";
import { Outbox, type HandoffResult, type OutboxItem } from "../outbox";
import type { ChatSettings, ChatSettingsBody, GroupView } from "../protocol";
import { migrate } from "../sqlite";
import { TaskPool } from "../user/taskpool";
import { Stubs } from "./stubs";

interface QueuedHandoff {
  user: string;
  items: OutboxItem[];
  done: (results: HandoffResult[]) => void;
  failed: (err: unknown) => void;
}

export class GroupObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly outbox: Outbox;
  private readonly log: GroupLog;
  /** meta.id once read (groupId()). */
  private id: string | null = null;
  private readonly roster: Roster;
  private readonly receipts: GroupReceipts;
  private readonly retention: GroupRetention;
  private readonly media: GroupMedia;
  /** Typing relays: a few at a time, at most one round for the whole roster queued. */
  private readonly typingRelays = new TaskPool("group typing", 6, MAX_GROUP_MEMBERS);
  private readonly clock: AlarmClock;
  private readonly userStubs = new Stubs(this.env.USERS);
  /** Members' hand-offs waiting for the next group commit (see handoff()). */
  private readonly handoffQueue: QueuedHandoff[] = [];
  private committingHandoffs = false;
  /** Test-only failure injection (see failNextHandoffs); in memory on purpose: eviction clears it. */
  private readonly failures = new Map<string, { count: number; when: "before" | "after" }>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    migrate(this.sql, GROUP_MIGRATIONS);
    this.outbox = new Outbox(
      this.sql,
      (target, items) => this.handoffTo(target, items),
      // Members' objects accept every group op; a refusal means a bug, not a user error.
      (target, item, result) => console.error("group hand-off refused", target, item.op, result.code, result.message),
    );
    this.log = new GroupLog(this.sql, this.outbox);
    this.roster = new Roster(this.sql, this.log);
    this.media = new GroupMedia(this.sql, this.outbox);
    this.retention = new GroupRetention(this.sql, this.log, this.roster, (msgs, now) => this.media.released(HISTORY_HOLDER, msgs, now));
    this.receipts = new GroupReceipts(this.sql, this.outbox, () => this.groupId());
    this.clock = new AlarmClock(ctx.storage);
    void ctx.blockConcurrencyWhile(() => this.clock.load());
  }

  // ---- RPC: the Worker's group routes ----------------------------------------

  async create(id: string, creator: string, name: string, members: string[]): Promise<Result<GroupView>> {
    return this.change(() => this.roster.create(id, creator, name, members, Date.now()));
  }

  async view(caller: string): Promise<Result<GroupView>> {
    return this.run(() => {
      this.roster.requireMember(caller);
      return this.roster.view();
    });
  }

  async rename(caller: string, name: string | undefined): Promise<Result<GroupView>> {
    return this.change(() => {
      if (name === undefined) this.roster.requireAdmin(caller);
      else this.roster.rename(caller, name, Date.now());
    });
  }

  async addMembers(caller: string, users: string[]): Promise<Result<GroupView>> {
    return this.change(() => this.roster.add(caller, users, Date.now()));
  }

  /** An admin removes `user`, or a member leaves (`user === caller`). */
  async removeMember(caller: string, user: string): Promise<Result<GroupView>> {
    return this.change(() => {
      const now = Date.now();
      this.roster.remove(caller, user, now);
      this.receipts.forget(user, now);
    });
  }

  async grantAdmin(caller: string, user: string): Promise<Result<GroupView>> {
    return this.change(() => this.roster.grantAdmin(caller, user, Date.now()));
  }

  /** The per-member detail of a message, for its sender (a current member). */
  async messageReceipts(caller: string, msg: string): Promise<Result<MemberStatus[]>> {
    return this.run(() => {
      this.roster.requireMember(caller);
      const detail = this.receipts.detail(msg);
      if (!detail) throw new AppError("not_found", "no such message in this group");
      if (detail.sender !== caller) throw new AppError("forbidden", "only the sender sees a message's receipts");
      return detail.members;
    });
  }

  // ---- RPC: the Worker's chat routes (settings and history) ----------------------

  async chatSettings(caller: string): Promise<Result<ChatSettings>> {
    return this.run(() => {
      this.roster.requireMember(caller);
      return this.retention.settings(this.groupId());
    });
  }

  async changeChatSettings(caller: string, body: ChatSettingsBody): Promise<Result<ChatSettings>> {
    return this.run(() => {
      // Checked before the group's id is read: a group never created is not_found, not a failure.
      this.roster.requireAdmin(caller);
      return this.transaction(() => this.retention.change(this.groupId(), caller, body, Date.now()));
    });
  }

  async chatHistory(caller: string, before?: string, limit?: number): Promise<Result<HistoryPage>> {
    return this.run(() => {
      const page = this.retention.history(caller, before, limit);
      // Media URLs are signed for this read.
      const now = Date.now();
      return { ...page, frames: page.frames.map((f) => signFrame(f, this.env, now)) };
    });
  }

  /**
   * A member is typing: relayed to every other member's object, best-effort
   * (never stored, never retried, dropped when the relay queue is full).
   */
  async typing(from: string, on: boolean): Promise<void> {
    if (!this.roster.exists() || this.roster.roleOf(from) === null) return;
    const group = this.groupId();
    for (const member of this.roster.users()) {
      if (member === from) continue;
      this.typingRelays.submit(() => this.userStubs.call(member, (stub) => stub.typingRelay(member, from, { group }, on)));
    }
  }

  // ---- RPC: members' objects hand things over ----------------------------------

  /**
   * Posts and receipts from members' outboxes, in order. Idempotent per item.
   *
   * Group commit: a post to 200 members brings 199 receipt hand-offs, and each
   * used to be its own transaction and disk commit. Calls that arrive while
   * the previous batch is being made durable wait and go into the next
   * transaction together; every call is answered after its batch is durable
   * (the output gate would hold the answer anyway). One call that throws does
   * not fail the others: the batch is then redone one call per transaction.
   */
  async handoff(_to: string, from: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    if (!from.startsWith("user:")) return items.map(() => fail("bad_frame", `unknown sender ${from}`));
    const user = from.slice("user:".length);
    return new Promise((done, failed) => {
      this.handoffQueue.push({ user, items, done, failed });
      if (!this.committingHandoffs) void this.commitHandoffs();
    });
  }

  private async commitHandoffs(): Promise<void> {
    this.committingHandoffs = true;
    try {
      while (this.handoffQueue.length > 0) {
        const applied = this.applyBatch(this.handoffQueue.splice(0), Date.now());
        try {
          await this.ctx.storage.sync();
          for (const [h, results] of applied) h.done(results);
        } catch (err) {
          for (const [h] of applied) h.failed(err);
        }
      }
    } finally {
      this.committingHandoffs = false;
    }
  }

  /**
   * The batch in one transaction; if a call throws, again one transaction per
   * call, and only the call that throws fails. Returns the calls written.
   */
  private applyBatch(batch: QueuedHandoff[], now: number): Array<[QueuedHandoff, HandoffResult[]]> {
    try {
      const results = this.transaction(() => this.applyCalls(batch, now));
      return batch.map((h, i) => [h, results[i]!]);
    } catch {
      return batch.flatMap((h): Array<[QueuedHandoff, HandoffResult[]]> => {
        try {
          return [[h, this.transaction(() => this.applyCalls([h], now))[0]!]];
        } catch (err) {
          h.failed(err);
          return [];
        }
      });
    }
  }

  /**
   * Applies calls inside the caller's transaction. The messages their receipts
   * touched are settled once, at the end: settling reads every member's status
   * of a message, so settling after each of a post's 199 receipts made the
   * group's work per post grow with the square of its members.
   */
  private applyCalls(calls: QueuedHandoff[], now: number): HandoffResult[][] {
    const touched = new Set<string>();
    const results = calls.map((h) => this.applyHandoff(h.user, h.items, now, touched));
    this.receipts.settle(touched, now);
    return results;
  }

  private applyHandoff(user: string, items: OutboxItem[], now: number, touched: Set<string>): HandoffResult[] {
    return items.map((item): HandoffResult => {
      if (item.op === "post") return this.post(user, item.payload as PostPayload, now);
      if (item.op === "amend") {
        // Only a member changes its messages: one removed since cannot keep editing
        // them for everyone. A group never created refused the post itself. Both are
        // refused for good, so the sender's outbox does not retry them.
        if (!this.roster.exists() || this.roster.roleOf(user) === null) return fail("not_member", "you are not a member of this group");
        this.retention.amend(this.groupId(), user, item.payload as Amendment, now);
        return { ok: true };
      }
      if (item.op === MEDIA_RELEASE) {
        // A member's object (or a former member's) no longer holds these messages.
        this.media.released(`user:${user}`, (item.payload as MediaReleasePayload).msgs, now);
        return { ok: true };
      }
      if (item.op === "receipt") {
        const r = item.payload as ReceiptPayload;
        // Only the calling member's own status (`by` in the payload is not trusted);
        // a former member's counts no longer (record()).
        if (this.receipts.record(user, r.msgs, r.status, r.ts)) for (const msg of r.msgs) touched.add(msg);
        return { ok: true };
      }
      return fail("bad_frame", `unknown hand-off ${item.op}`);
    });
  }

  private post(user: string, p: PostPayload, now: number): HandoffResult {
    // Dedup first: a retried post whose sender has left since is still the same, accepted post.
    if (this.receipts.isPosted(p.msg)) return { ok: true };
    if (p.from !== user) return fail("bad_frame", "from: not the posting user");
    if (!this.roster.exists() || this.roster.roleOf(user) === null) return fail("not_member", "you are not a member of this group");
    const members = this.roster.users();
    this.retention.stamp(this.groupId(), p);
    const seq = this.log.append({ kind: "message", message: p }, members, now);
    this.media.posted(p, members);
    this.receipts.posted(
      p.msg,
      seq,
      user,
      p.ts,
      members.filter((m) => m !== user),
    );
    return { ok: true };
  }

  // ---- test hook -----------------------------------------------------------------

  /**
   * TEST ONLY, refused unless DEV_AUTH is "true" (never in production): the next
   * `count` hand-offs to `user`'s object fail, either before the call or after
   * it returned (as if the reply was lost), so tests can drive retries.
   */
  async failNextHandoffs(user: string, count: number, when: "before" | "after" = "before"): Promise<boolean> {
    if (this.env.DEV_AUTH !== "true") return false;
    this.failures.set(`user:${user}`, { count, when });
    return true;
  }

  // ---- alarm ------------------------------------------------------------------

  override async alarm(): Promise<void> {
    this.clock.fired();
    const now = Date.now();
    if (Number(this.log.meta("housekeeping_at") ?? "0") <= now) {
      this.transaction(() => {
        this.receipts.purgeExpired(now);
        this.log.setMeta("housekeeping_at", String(now + HOUSEKEEPING_INTERVAL_MS));
      });
    }
    const expiry = this.retention.nextExpiry();
    if (expiry !== null && expiry <= now) this.transaction(() => this.retention.purgeDisappeared(now));
    await this.drain();
  }

  /** Sets the one alarm to the earliest thing that needs it: an outbox retry or housekeeping. */
  private scheduleAlarm(): void {
    const candidates: number[] = [];
    const outboxAt = this.outbox.alarmAt(Date.now());
    if (outboxAt !== null) candidates.push(outboxAt);
    const expiry = this.retention.nextExpiry();
    if (expiry !== null) candidates.push(expiry);
    if (this.receipts.hasState()) {
      let due = this.log.meta("housekeeping_at");
      if (due === null) {
        due = String(Date.now() + HOUSEKEEPING_INTERVAL_MS);
        this.log.setMeta("housekeeping_at", due);
      }
      candidates.push(Number(due));
    }
    this.clock.request(candidates);
  }

  /** Something was queued: set the backstop alarm, then drain now. */
  private wake(): void {
    this.scheduleAlarm();
    // The backstop alarm set above drains again.
    this.drain().catch((err: unknown) => console.warn("outbox drain failed; the alarm retries", String(err)));
  }

  /** Hands over what is due, then, in one commit, drops the rows handed over and the log entries they held. */
  private async drain(): Promise<void> {
    await this.outbox.drain();
    this.outbox.settle();
    this.log.purgeDelivered();
    this.scheduleAlarm();
  }

  // ---- plumbing ----------------------------------------------------------

  private async handoffTo(target: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    if (!target.startsWith("user:")) throw new Error(`unknown outbox target ${target}`);
    const user = target.slice("user:".length);
    const group = this.groupId();
    const resolved = this.log.resolve(group, items);
    const handOver = () => this.userStubs.call(user, (stub) => stub.handoff(user, `group:${group}`, resolved));
    const failure = this.failures.get(target);
    if (failure && failure.count > 0) {
      failure.count--;
      if (failure.when === "before") throw new Error(`injected failure before hand-off to ${target}`);
      await handOver();
      throw new Error(`injected failure after hand-off to ${target}`);
    }
    return handOver();
  }

  /** One write transaction; what it queued in the outbox is drained once it committed. */
  private transaction<T>(fn: () => T): T {
    return this.outbox.transaction(this.ctx.storage, fn, () => this.wake());
  }

  private groupId(): string {
    // Asked once per member's hand-off: kept once read (a group's id is its object's name, and never changes).
    this.id ??= this.log.meta("id");
    if (this.id === null) throw new Error("group object used before it was created");
    return this.id;
  }

  /** Runs a read; AppError becomes a Result. */
  private run<T>(fn: () => T): Result<T> {
    try {
      return { ok: true, value: fn() };
    } catch (err) {
      if (err instanceof AppError) return fail(err.code, err.message);
      throw err;
    }
  }

  /** Runs a change in one transaction (a refusal writes nothing), then fans it out; answers with the group. */
  private change(fn: () => void): Result<GroupView> {
    return this.run(() =>
      this.transaction(() => {
        fn();
        return this.roster.view();
      }),
    );
  }
}
