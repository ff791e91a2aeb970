// The member side of groups, in the user's object: what a GroupObject hands
// over (messages, roster events, the sender's aggregated receipts) becomes
// inbox entries, and the `groups` table remembers which groups the user is in
// (GET /v1/groups). Called from ChatService.accept inside its transaction.
//
// Dedup: a group hands its log entries to one member in group-sequence order
// (its outbox drains each target in order), so `last_seq` per group is enough
// to drop a retried hand-off, events included (they have no msg id).
import type { GroupEventItem, GroupMessageItem, GroupReceiptItem } from "../group/handoff";
import { GROUP_OPS } from "../group/handoff";
import type { HandoffResult, OutboxItem } from "../outbox";
import type { GroupEvent } from "../protocol";
import { applyReceipt, carriesDeadline, messageFrame, type ChatDeps } from "./chat";
import { grantMedia, mediaIdsOf } from "./media";
import { MEDIA_RELEASE, holdMedia, type MediaReleasePayload } from "./media-holds";
import type { Amendment } from "./retention";

/** Queues a frame for the user's devices but `except`, sent after the transaction. */
export type Push = (json: string, except?: string) => void;

export function acceptGroupItem(d: ChatDeps, from: string, item: OutboxItem, now: number, push: Push): HandoffResult {
  switch (item.op) {
    case GROUP_OPS.message:
      return groupMessage(d, from, item.payload as GroupMessageItem, now, push);
    case GROUP_OPS.event:
      return groupEvent(d, from, item.payload as GroupEventItem, now, push);
    case GROUP_OPS.receipt:
      return groupReceipt(d, from, item.payload as GroupReceiptItem, now, push);
    default:
      return { ok: false, code: "bad_frame", message: `unknown hand-off ${item.op} from ${from}` };
  }
}

/** Whether accepting a group's item can store a deadline (mayAddDeadlines in chat.ts): its receipts and plain messages cannot. */
export function groupItemMayAddDeadline(item: OutboxItem): boolean {
  if (item.op === GROUP_OPS.receipt) return false;
  if (item.op === GROUP_OPS.message) return carriesDeadline((item.payload as GroupMessageItem).message);
  return true;
}

/** The groups the user is a member of, as its object learned from their events. */
export function listGroups(sql: SqlStorage): Array<{ id: string; name: string; role: "admin" | "member" }> {
  return sql
    .exec<{ id: string; name: string; role: "admin" | "member" }>("SELECT id, name, role FROM groups WHERE role IS NOT NULL ORDER BY name, id")
    .toArray();
}

function groupMessage(d: ChatDeps, from: string, p: GroupMessageItem, now: number, push: Push): HandoffResult {
  if (!advance(d.sql, p.group, p.gseq, now)) return { ok: true };
  const { device, deleted, ...envelope } = p.message;
  if (deleted) {
    // Deleted for everyone (or disappeared) before it reached this member:
    // nothing to deliver, and no copy here that would hold its media.
    d.outbox.enqueue(from, MEDIA_RELEASE, { msgs: [envelope.msg] } satisfies MediaReleasePayload, now);
    return { ok: true };
  }
  const frame = messageFrame(envelope, { group: p.group });
  const opts = { msg: envelope.msg, ts: now, expiresAt: envelope.expiresAt };
  const mediaIds = mediaIdsOf(envelope);
  // The group learns when this copy is gone (temporary chats: src/user/media-holds.ts).
  const held = mediaIds.length > 0 && !envelope.permanent;
  if (envelope.from === d.self()) {
    // The group decided the message's lifetime: remember it for later edits.
    d.sql.exec("UPDATE outgoing SET expires_at = ? WHERE msg = ?", envelope.expiresAt ?? null, envelope.msg);
    // The sender's own message: for its OTHER devices only (if it has any), and no receipts from them.
    const appended = d.inbox.appendOwn(from, frame, { ...opts, origin: device });
    if (appended) {
      if (held) holdMedia(d.sql, envelope.msg, from);
      push(appended.json, device);
    } else if (held) {
      // No copy here: the group hears at once that this member holds none.
      d.outbox.enqueue(from, MEDIA_RELEASE, { msgs: [envelope.msg] } satisfies MediaReleasePayload, now);
    }
    return { ok: true };
  }
  if (held) holdMedia(d.sql, envelope.msg, from);
  for (const media of mediaIds) grantMedia(d.sql, media, now);
  const appended = d.inbox.append("message", from, frame, opts);
  // The `received` row makes ack/read queue delivered/read receipts to the group (chat key group:<id>).
  // Messages of different senders reach the group out of msg id order: one arriving after
  // the user read past its id counts as read, and the ack that delivers it sends `read`.
  d.sql.exec(
    `INSERT INTO received (msg, chat, sender, seq, ts, expires_at, read)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, EXISTS (SELECT 1 FROM read_marks WHERE chat = ?2 AND up_to >= ?1)) ON CONFLICT(msg) DO NOTHING`,
    envelope.msg,
    from,
    envelope.from,
    appended.seq,
    now,
    envelope.expiresAt ?? null,
  );
  push(appended.json);
  return { ok: true };
}

function groupEvent(d: ChatDeps, from: string, p: GroupEventItem, now: number, push: Push): HandoffResult {
  if (!advance(d.sql, p.group, p.gseq, now)) return { ok: true };
  // An edit emptied by a delete that follows it (src/group/log.ts scrubEdits): nothing to apply.
  if (p.event.kind === "edited" && p.event.text === undefined && p.event.e2ee === undefined) return { ok: true };
  applyToMembership(d.sql, d.self(), p.group, p.event);
  const expiresAt = applyToRetention(d, from, p);
  const frame = { type: "event", chat: { group: p.group }, event: p.event, ts: p.ts };
  // An edit names its message, so a later delete removes its text with the message.
  const msg = p.event.kind === "edited" || p.event.kind === "deleted" ? { msg: p.event.msg } : {};
  push(d.inbox.append("event", from, frame, { ...msg, ts: now, expiresAt }).json);
  return { ok: true };
}

function groupReceipt(d: ChatDeps, from: string, r: GroupReceiptItem, now: number, push: Push): HandoffResult {
  const applied = applyReceipt(d, from, r.msgs, r.status, r.ts);
  if (applied === null) return { ok: true };
  // In a group the receipt is the whole group's: no `by`.
  const frame = { type: "receipt", chat: { group: r.group }, msgs: applied.msgs, status: applied.status, ts: r.ts };
  push(d.inbox.append("receipt", from, frame, { ts: now }).json);
  return { ok: true };
}

/** Edits, deletions and settings changes also change what this object holds. */
function applyToRetention(d: ChatDeps, from: string, p: GroupEventItem): number | undefined {
  const e = p.event;
  if (e.kind === "edited" || e.kind === "deleted") {
    // Entries not yet acknowledged by every device carry the new text, or go.
    const a: Amendment = { kind: e.kind, msg: e.msg, by: e.by, ts: p.ts };
    if (e.kind === "edited" && e.text !== undefined) a.text = e.text;
    if (e.kind === "edited" && e.e2ee !== undefined) a.e2ee = e.e2ee;
    return d.retention.amend(from, a).expiresAt;
  } else if (e.kind === "retention_changed") {
    // This object's copy, used when its user sends to the group (media lifetime).
    d.retention.apply(from, { retention: e.retention, disappearAfterSeconds: e.disappearAfterSeconds, changedAt: p.ts, changedBy: e.by });
  }
  return undefined;
}

/**
 * Moves the group's high-water mark; false if this entry was already applied.
 * One statement (it runs once per member of every post): an entry at or below
 * the mark writes nothing, which rowsWritten tells.
 */
function advance(sql: SqlStorage, group: string, gseq: number, now: number): boolean {
  const moved = sql.exec(
    `INSERT INTO groups (id, name, role, last_seq, updated_at) VALUES (?, '', NULL, ?, ?)
     ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at
     WHERE excluded.last_seq > groups.last_seq`,
    group,
    gseq,
    now,
  );
  return moved.rowsWritten > 0;
}

/** Keeps the user's view of its groups (name, role, membership) in step with the events. */
function applyToMembership(sql: SqlStorage, self: string, group: string, e: GroupEvent): void {
  const set = (role: string | null) => sql.exec("UPDATE groups SET role = ? WHERE id = ?", role, group);
  const name = (n: string) => sql.exec("UPDATE groups SET name = ? WHERE id = ?", n, group);
  switch (e.kind) {
    case "created":
      name(e.name);
      set(e.members.find((m) => m.user === self)?.role ?? null);
      return;
    case "member_added":
      name(e.name);
      // Re-added after leaving: a member again. An existing member keeps its role.
      if (e.users.includes(self)) sql.exec("UPDATE groups SET role = COALESCE(role, 'member') WHERE id = ?", group);
      return;
    case "member_removed":
    case "member_left":
      if (e.user === self) set(null);
      return;
    case "admin_granted":
      if (e.user === self) set("admin");
      return;
    case "renamed":
      name(e.name);
      return;
  }
}
