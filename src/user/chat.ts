// What a user's object does with chat frames and hand-offs: send (idempotent on
// the client id), deliver (idempotent on msg), ack (moves the device's
// position, emits delivered receipts), read (emits read receipts) and incoming
// receipts. Every state change and the outbox rows it causes are written in
// one synchronous transaction before anything is acknowledged.
import { AppError } from "../errors";
import { GROUP_ID, digest, newMsgId } from "../ids";
import { RETENTION_MS } from "../limits";
import type { HandoffResult, Outbox, OutboxItem } from "../outbox";
import { chatFromKey, chatKey, e2eeShapeProblem, type Chat, type ChatSettings, type ChatSettingsBody, type ClientFrame, type SendFrame } from "../protocol";
import { checkRecipients, recipientsOf } from "./e2ee";
import type { E2eeSend } from "../protocol";
import { acceptGroupItem, groupItemMayAddDeadline } from "./groups";
import type { Inbox } from "./inbox";
import { recordAmendment, type Amendment, type Retention, type RetentionFields, type SettingsChange } from "./retention";
import { checkAttachments, checkSendable, grantMedia, mediaIdsOf, referenceMedia, releaseRefs } from "./media";
import { MEDIA_RELEASE, expectHolders, holdMedia, holderReleased, type MediaReleasePayload } from "./media-holds";
import { errorFrame, safeSend } from "./sockets";

export interface ChatDeps {
  sql: SqlStorage;
  /**
   * ctx.storage.transactionSync: all of fn is durable, or none of it.
   * `storesDeadlines`, asked once fn committed: false when fn stored no expiry
   * (disappearing message, media), so the alarm look after the rows it queued
   * skips the deadline query. A send says so by carriesDeadline, a hand-off by
   * mayAddDeadlines, an ack or a read never stores one.
   */
  transaction<T>(fn: () => T, storesDeadlines?: () => boolean): T;
  inbox: Inbox;
  outbox: Outbox;
  retention: Retention;
  self(): string;
  /** Sends to every connected device but `except`. */
  push(json: string, except?: string): void;
  sendTo(device: string, json: string): void;
  /** Privacy: false = this user sends no read receipts and is shown none. */
  readReceipts(): boolean;
  /** The current e2ee devices of a user (this user's from its key directory, others' by RPC). */
  keyDevices(user: string): Promise<string[]>;
}

/** A message as it travels between objects. */
export interface Envelope extends RetentionFields {
  msg: string;
  id: string;
  from: string;
  ts: number;
  text?: string;
  media?: unknown;
  replyTo?: string;
  /** End-to-end encrypted content (src/user/e2ee.ts): this user's devices' part of the map. */
  e2ee?: unknown;
}

export interface ReceiptPayload {
  msgs: string[];
  status: "delivered" | "read";
  by: string;
  ts: number;
}

/** Most msgs in one receipt frame. */
const RECEIPT_CHUNK = 500;

export class ChatService {
  constructor(private readonly d: ChatDeps) {}

  async handle(frame: ClientFrame, device: string, ws: WebSocket, now: number): Promise<void> {
    // One-to-one and group alike: receivers look up the sender's session or sender key by it.
    if ((frame.type === "send" || frame.type === "edit") && frame.e2ee !== undefined && frame.e2ee.sender !== device) {
      throw new AppError("bad_frame", "e2ee.sender: must be the device that sends the frame");
    }
    // An edit changes the text: its media stays the message's own (only a send's is checked and granted).
    if (frame.type === "edit" && (frame.e2ee?.attachments?.length ?? 0) > 0) {
      throw new AppError("bad_frame", "e2ee.attachments: an edit cannot add attachments");
    }
    switch (frame.type) {
      case "send": {
        // A resend of a stored id is answered as before, whatever it waits for (send()).
        const known = (id: string) => this.d.sql.exec("SELECT 1 FROM sent_ids WHERE id = ?", id).toArray().length > 0;
        // `after`: the client wrote this send behind one it has no `sent` for yet. Taking it
        // before that one would reorder the chat (the earlier one drew an error the client
        // retries, or a rate limit): refused, stored nowhere, and sent again behind it. The
        // device's frames are handled in order, so the earlier one is settled by now.
        if (frame.after !== undefined && !known(frame.after) && !known(frame.id)) {
          throw new AppError("out_of_order", `the send ${frame.after} (after) has not been accepted; send this again once it is`);
        }
        if (frame.e2ee && "user" in frame.to) {
          // The device lists are checked BEFORE the send's transaction (an RPC
          // to the peer's object); a resend of a stored id skips the check and
          // is answered as before. Nothing awaits between the transaction and `sent`.
          const self = this.d.self();
          if (frame.to.user !== self && !known(frame.id)) {
            const [own, peer] = await Promise.all([this.d.keyDevices(self), this.d.keyDevices(frame.to.user)]);
            checkRecipients(frame.e2ee, device, self, own, frame.to.user, peer);
            now = Date.now();
          }
        }
        return this.send(frame, device, ws, now);
      }
      case "ack":
        return this.ack(frame.seq, device, now);
      case "read":
        return this.read(frame.chat, frame.upTo, device, now);
      case "edit": {
        if (frame.e2ee === undefined) return this.amendOwn({ kind: "edited", msg: frame.msg, text: frame.text }, now);
        // An encrypted edit carries a new map: checked against the device lists like a send.
        const key = this.d.retention.checkOwn(frame.msg, "edited", now, true);
        // The same shape as a send to that chat: the edit frame names no chat, so checked here.
        const problem = e2eeShapeProblem(frame.e2ee, key.startsWith("user:") ? "user" : "group");
        if (problem) throw new AppError("bad_frame", `${["e2ee", ...problem.path].join(".")}: ${problem.message}`);
        if (key.startsWith("user:")) {
          const self = this.d.self();
          const peer = key.slice("user:".length);
          const [own, theirs] = await Promise.all([this.d.keyDevices(self), this.d.keyDevices(peer)]);
          checkRecipients(frame.e2ee, device, self, own, peer, theirs);
          now = Date.now();
        }
        return this.amendOwn({ kind: "edited", msg: frame.msg, e2ee: frame.e2ee }, now);
      }
      case "delete":
        return this.amendOwn({ kind: "deleted", msg: frame.msg }, now);
      default:
        // typing, active and watch are presence frames: the UserObject hands them to PresenceService.
        throw new Error(`frame type ${frame.type} reached the chat service`);
    }
  }

  // ---- send ----------------------------------------------------------------

  private send(frame: SendFrame, device: string, ws: WebSocket, now: number): void {
    const { sql, inbox, outbox } = this.d;
    const self = this.d.self();
    if ("user" in frame.to && frame.to.user === self) throw new AppError("bad_frame", "to: cannot send a message to yourself");
    // An id the server never made names no group: refused without waking an object.
    if ("group" in frame.to && !GROUP_ID.test(frame.to.group)) throw new AppError("not_member", "you are not a member of this group");
    const fields = [frame.to, frame.text ?? null, frame.media ?? null, frame.replyTo ?? null];
    // e2ee joins the digest only when present, so digests of plaintext sends stay as they were.
    const content = digest(JSON.stringify(frame.e2ee ? [...fields, frame.e2ee] : fields));
    const msg = newMsgId(now);
    const key = chatKey(frame.to);
    let ownCopy: string | null = null;
    let deadlines = false;
    // The dedup on the client id is the transaction's first statement: a stored id
    // ends it with nothing written (and is answered below), a new one is taken
    // unless a later check throws and rolls it back. No read comes before it.
    const fresh = this.d.transaction(() => {
      const taken = sql
        .exec("INSERT INTO sent_ids (id, msg, ts, digest) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING RETURNING 1", frame.id, msg, now, content)
        .toArray().length;
      if (taken === 0) return false;
      // Only this user's own complete uploads travel.
      const media = frame.media === undefined ? undefined : checkSendable(sql, frame.media);
      const attachments = frame.e2ee?.attachments ?? [];
      checkAttachments(sql, attachments);
      const envelope: Envelope = { msg, id: frame.id, from: self, ts: now };
      if (frame.text !== undefined) envelope.text = frame.text;
      if (media !== undefined) envelope.media = media;
      if (frame.replyTo !== undefined) envelope.replyTo = frame.replyTo;
      // One-to-one: each inbox keeps only its own user's devices' ciphertexts. Groups: one blob, unchanged.
      let ownE2ee: unknown;
      if (frame.e2ee && "user" in frame.to) {
        envelope.e2ee = recipientsOf(frame.e2ee, frame.to.user);
        ownE2ee = recipientsOf(frame.e2ee, self);
      } else if (frame.e2ee) envelope.e2ee = frame.e2ee;
      Object.assign(envelope, this.d.retention.forNewMessage(key, now));
      sql.exec(
        "INSERT INTO outgoing (msg, chat, ts, expires_at, encrypted) VALUES (?, ?, ?, ?, ?)",
        msg,
        key,
        now,
        envelope.expiresAt ?? null,
        frame.e2ee ? 1 : 0,
      );
      // A group decides a message's lifetime itself (and may know better than this
      // object's copy of its settings): it reports when its copies are gone.
      const until = "user" in frame.to ? (envelope.expiresAt ?? null) : null;
      const mediaIds = media !== undefined ? [media.id, ...attachments] : attachments;
      for (const id of mediaIds) referenceMedia(sql, id, msg, key, now, until);
      deadlines = carriesDeadline(envelope);
      // Temporary: the media lives while any copy does (src/user/media-holds.ts).
      const counted = mediaIds.length > 0 && !("user" in frame.to && envelope.permanent);
      if ("user" in frame.to) {
        // The sender's other devices see the message as an entry of their own inbox (if it has any).
        const own = messageFrame(ownE2ee === undefined ? envelope : { ...envelope, e2ee: ownE2ee }, frame.to);
        ownCopy = inbox.appendOwn(key, own, { msg, origin: device, ts: now, expiresAt: envelope.expiresAt })?.json ?? null;
        if (counted) expectHolders(sql, msg, ownCopy !== null ? [`user:${self}`, key] : [key]);
        if (counted && ownCopy !== null) holdMedia(sql, msg, `user:${self}`);
        this.d.retention.keep(key, msg, own, now, envelope);
        outbox.enqueue(key, "deliver", envelope, now);
      } else {
        if (counted) expectHolders(sql, msg, [key]);
        // The group decides membership and fans out, the sender's other devices included.
        outbox.enqueue(key, "post", { ...envelope, device }, now);
      }
      return true;
    }, () => deadlines);
    if (!fresh) {
      // A resend of a stored id is answered as before, whatever it waits for.
      const existing = sql.exec<{ msg: string; ts: number; digest: string }>("SELECT msg, ts, digest FROM sent_ids WHERE id = ?", frame.id).one();
      if (existing.digest !== content) throw new AppError("id_conflict", `id ${frame.id} was already used for another message`);
      safeSend(ws, JSON.stringify({ type: "sent", id: frame.id, msg: existing.msg, ts: existing.ts }));
      return;
    }
    // The output gate holds these frames until the transaction above is durable.
    safeSend(ws, JSON.stringify({ type: "sent", id: frame.id, msg, ts: now }));
    if (ownCopy !== null) this.d.push(ownCopy, device);
  }

  // ---- ack and read ----------------------------------------------------------

  private ack(seq: number, device: string, now: number): void {
    const { sql, inbox } = this.d;
    if (seq > inbox.head) throw new AppError("bad_ack", `seq ${seq} is past the head ${inbox.head}`);
    this.d.transaction(() => {
      const prev = inbox.ack(device, seq, now);
      if (prev === null) return;
      // The messages among the entries this ack covers (still here: the purge below
      // runs after). RETURNING gives rows in no set order, and `delivered` as it was
      // before the ack (0).
      const rows = sql
        .exec<{ msg: string; chat: string; read: number; delivered: number; seq: number }>(
          `UPDATE received SET delivered = 1
           WHERE msg IN (SELECT msg FROM inbox WHERE seq > ? AND seq <= ? AND msg IS NOT NULL) AND delivered = 0
           RETURNING msg, chat, read, 0 AS delivered, seq`,
          prev,
          seq,
        )
        .toArray()
        .sort((a, b) => a.seq - b.seq);
      if (rows.length > 0) {
        // Read already (a group message that arrived after a read covering it): `read` now.
        const read = rows.filter((r) => r.read === 1);
        if (read.length > 0) this.queueReceipts(read, "read", now);
        if (read.length < rows.length) this.queueReceipts(rows.filter((r) => r.read === 0), "delivered", now);
      }
      inbox.purgeAcknowledged(seq, now);
      // No deadline: media whose last copy the purge removed is rescheduled there (mediaCopiesRemoved).
    }, () => false);
  }

  private read(chat: Chat, upTo: string, device: string, now: number): void {
    const { sql, inbox } = this.d;
    const key = chatKey(chat);
    let sync: string | null = null;
    this.d.transaction(() => {
      // A group's messages come from many senders' objects, and one accepted earlier
      // may arrive later: kept, so that it counts as read when it comes (groups.ts).
      if ("group" in chat) {
        sql.exec("INSERT INTO read_marks (chat, up_to) VALUES (?, ?) ON CONFLICT(chat) DO UPDATE SET up_to = MAX(up_to, excluded.up_to)", key, upTo);
      }
      // msg ids sort by time of acceptance, so "up to" is a string comparison.
      const rows = sql
        .exec<{ msg: string; chat: string; delivered: number }>(
          "SELECT msg, chat, delivered FROM received WHERE chat = ? AND msg <= ? AND read = 0 ORDER BY msg",
          key,
          upTo,
        )
        .toArray();
      if (rows.length === 0) return;
      // A read implies delivered: no separate delivered receipt follows.
      sql.exec("UPDATE received SET read = 1, delivered = 1 WHERE chat = ? AND msg <= ? AND read = 0", key, upTo);
      this.queueReceipts(rows, "read", now);
      // The user's other devices learn the chat was read (unread counts stay in sync).
      const event = { type: "event", chat, event: { kind: "read", upTo }, ts: now };
      sync = inbox.append("event", key, event, { origin: device, ts: now }).json;
    }, () => false);
    if (sync !== null) this.d.push(sync, device);
  }

  /** Queues receipts to each chat's sender side (the peer's object, or the group's). */
  private queueReceipts(rows: Array<{ msg: string; chat: string; delivered?: number }>, status: "delivered" | "read", now: number): void {
    if (status === "read" && !this.d.readReceipts()) {
      // Read receipts off (privacy): none is sent, but delivered still flows for what no device acked yet.
      rows = rows.filter((r) => r.delivered === 0);
      status = "delivered";
    }
    const byChat = new Map<string, string[]>();
    for (const r of rows) {
      const list = byChat.get(r.chat) ?? [];
      list.push(r.msg);
      byChat.set(r.chat, list);
    }
    const by = this.d.self();
    for (const [chat, msgs] of byChat) {
      for (let i = 0; i < msgs.length; i += RECEIPT_CHUNK) {
        const payload: ReceiptPayload = { msgs: msgs.slice(i, i + RECEIPT_CHUNK), status, by, ts: now };
        this.d.outbox.enqueue(chat, "receipt", payload, now);
      }
    }
  }

  // ---- hand-offs from other objects ---------------------------------------------

  accept(from: string, items: OutboxItem[], now: number): HandoffResult[] {
    const pushes: string[] = [];
    const groupPushes: Array<[string, string | undefined]> = [];
    const results = this.d.transaction(() =>
      items.map((item) => {
        if (item.op === MEDIA_RELEASE) {
          const r = item.payload as MediaReleasePayload;
          holderReleased(this.d.sql, from, r.msgs, now, r.expiresAt);
          return { ok: true as const };
        }
        if (from.startsWith("group:")) return acceptGroupItem(this.d, from, item, now, (json, except) => groupPushes.push([json, except]));
        if (from.startsWith("user:") && item.op === "deliver") return this.deliver(from, item.payload as Envelope, now, pushes);
        if (from.startsWith("user:") && item.op === "receipt") return this.receipt(from, item.payload as ReceiptPayload, now, pushes);
        if (from.startsWith("user:") && item.op === "settings") return this.settingsFromPeer(from, item.payload as SettingsChange, now, pushes);
        if (from.startsWith("user:") && item.op === "amend") return this.amendFromPeer(from, item.payload as Amendment, now, pushes);
        return { ok: false as const, code: "bad_frame", message: `unknown hand-off ${item.op} from ${from}` };
      }),
      () => mayAddDeadlines(from, items),
    );
    for (const json of pushes) this.d.push(json);
    for (const [json, except] of groupPushes) this.d.push(json, except);
    return results;
  }

  private deliver(from: string, e: Envelope, now: number, pushes: string[]): HandoffResult {
    const { sql, inbox } = this.d;
    // The row the message's inbox entry (next) will have; a retried hand-off finds it stored once.
    const seq = inbox.head + 1;
    const stored = sql
      .exec(
        "INSERT INTO received (msg, chat, sender, seq, ts, expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(msg) DO NOTHING RETURNING 1",
        e.msg,
        from,
        e.from,
        seq,
        now,
        e.expiresAt ?? null,
      )
      .toArray().length;
    if (stored === 0) return { ok: true };
    const chat = { user: e.from };
    const mediaIds = mediaIdsOf(e);
    for (const media of mediaIds) grantMedia(sql, media, now);
    // The sender learns when this copy is gone (temporary chats: src/user/media-holds.ts).
    if (mediaIds.length > 0 && !e.permanent) holdMedia(sql, e.msg, from);
    const frame = messageFrame(e, chat);
    const appended = inbox.append("message", from, frame, { msg: e.msg, ts: now, expiresAt: e.expiresAt });
    if (appended.seq !== seq) throw new Error(`inbox entry ${appended.seq} is not the received row's ${seq}`);
    this.d.retention.keep(from, e.msg, frame, now, e);
    pushes.push(appended.json);
    return { ok: true };
  }

  private receipt(from: string, r: ReceiptPayload, now: number, pushes: string[]): HandoffResult {
    const applied = applyReceipt(this.d, from, r.msgs, r.status, r.ts);
    if (applied === null) return { ok: true };
    const frame = { type: "receipt", chat: { user: r.by }, msgs: applied.msgs, status: applied.status, by: r.by, ts: r.ts };
    pushes.push(this.d.inbox.append("receipt", from, frame, { ts: now }).json);
    return { ok: true };
  }

  // ---- retention, edit and delete -------------------------------------------------

  /** The user changes a chat's settings (HTTP): recorded, told to its devices and to the peer. */
  changeSettings(key: string, body: ChatSettingsBody, now: number): ChatSettings {
    const { retention, inbox, outbox } = this.d;
    // Always told, also when this side's copy already reads the same: the peer's newer change
    // may be on its way here, and this one, newer still, must win on both sides (last writer
    // wins by changedAt). Repeats are bounded by the HTTP write limit. (A group's object is
    // the one authority on its settings: there a no-op tells nobody.)
    const change = retention.changeFor(key, body, now);
    let json = "";
    this.d.transaction(() => {
      retention.apply(key, change);
      json = inbox.append("event", key, settingsEvent(key, change), { ts: now }).json;
      if (key.startsWith("user:")) outbox.enqueue(key, "settings", change, now);
    });
    this.d.push(json);
    return retention.settings(key);
  }

  private settingsFromPeer(from: string, change: SettingsChange, now: number, pushes: string[]): HandoffResult {
    // An older change that lost to a newer one is not shown: both sides end on the newest.
    if (this.d.retention.apply(from, change)) pushes.push(this.d.inbox.append("event", from, settingsEvent(from, change), { ts: now }).json);
    return { ok: true };
  }

  /**
   * The sender edits or deletes its own message. The event is appended for all
   * the sender's devices, the one that asked included: it is the confirmation.
   */
  private amendOwn(change: { kind: "edited" | "deleted"; msg: string; text?: string; e2ee?: E2eeSend }, now: number): void {
    const { retention, inbox, outbox } = this.d;
    const key = retention.checkOwn(change.msg, change.kind, now, change.kind === "edited" ? change.e2ee !== undefined : undefined);
    const self = this.d.self();
    const amendment: Amendment = { ...change, by: self, ts: now };
    let json: string | null = null;
    this.d.transaction(() => {
      // Counted, so a receiver can tell a retried hand-off from a new change;
      // checked again here, as another device may have deleted it meanwhile.
      const counted = this.d.sql
        .exec<{ n: number }>(
          "UPDATE outgoing SET amended_n = amended_n + 1, deleted = MAX(deleted, ?) WHERE msg = ? AND deleted = 0 RETURNING amended_n AS n",
          change.kind === "deleted" ? 1 : 0,
          change.msg,
        )
        .toArray()[0];
      if (!counted) throw new AppError("not_found", `message ${change.msg} was deleted for everyone`);
      amendment.n = counted.n;
      // In a group the event comes back through the group's log, to every device
      // of every member (this user's included), in order with the messages.
      if (key.startsWith("user:")) {
        // Each side keeps only its own devices' part of an encrypted edit.
        const mine = change.e2ee ? { ...amendment, e2ee: recipientsOf(change.e2ee, self) } : amendment;
        if (change.e2ee) amendment.e2ee = recipientsOf(change.e2ee, key.slice("user:".length));
        const { event, expiresAt } = retention.amend(key, mine);
        json = inbox.append("event", key, event, { msg: change.msg, ts: now, expiresAt }).json;
      }
      // Deleted for everyone: its media goes too.
      if (change.kind === "deleted") releaseRefs(this.d.sql, change.msg, now);
      outbox.enqueue(key, "amend", amendment, now);
    });
    if (json !== null) this.d.push(json);
  }

  private amendFromPeer(from: string, a: Amendment, now: number, pushes: string[]): HandoffResult {
    // Only the message's own sender may change it, in the chat it was sent to.
    const own = this.d.sql
      .exec<{ amended_n: number; deleted: number }>("SELECT amended_n, deleted FROM received WHERE msg = ? AND chat = ? AND sender = ?", a.msg, from, a.by)
      .toArray()[0];
    if (!own || from !== `user:${a.by}` || !recordAmendment(this.d.sql, "received", own, a)) return { ok: true };
    const { event, expiresAt } = this.d.retention.amend(from, a);
    pushes.push(this.d.inbox.append("event", from, event, { msg: a.msg, ts: now, expiresAt }).json);
    return { ok: true };
  }

  /** A hand-off the callee refused for good (e.g. a post to a group the sender is not in). */
  refused(target: string, item: OutboxItem, result: { code: string; message: string }): void {
    const payload = item.payload as Partial<Envelope & { device: string }>;
    console.warn("hand-off refused", target, item.op, result.code);
    if (item.op === "post" && typeof payload.msg === "string") {
      // Posted nowhere: no copy will ever release its media, which goes now.
      const now = Date.now();
      holderReleased(this.d.sql, target, [payload.msg], now, now);
    }
    if (item.op === "post" && typeof payload.device === "string") {
      this.d.sendTo(payload.device, errorFrame(result.code, result.message, payload.id));
    }
  }

  // ---- housekeeping ------------------------------------------------------------

  purgeExpired(now: number): void {
    const cutoff = now - RETENTION_MS;
    this.d.sql.exec("DELETE FROM sent_ids WHERE ts < ?", cutoff);
    this.d.sql.exec("DELETE FROM outgoing WHERE ts < ?", cutoff);
    this.d.sql.exec("DELETE FROM received WHERE ts < ?", cutoff);
  }

  hasState(): boolean {
    return (
      this.d.sql.exec<{ n: number }>(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM sent_ids LIMIT 1)) + (SELECT COUNT(*) FROM (SELECT 1 FROM received LIMIT 1)) AS n",
      ).one().n > 0
    );
  }
}

/**
 * A receipt for messages this user sent into chat `key` (from the peer's object,
 * or the group's aggregate): records each status once and returns the messages
 * that newly reached it, or null when none did. Only messages this user sent
 * into that very chat count, so nobody can tick someone else's. With read
 * receipts off, a read is recorded and shown as the delivered it implies.
 */
export function applyReceipt(
  d: Pick<ChatDeps, "sql" | "readReceipts">,
  key: string,
  msgs: string[],
  reported: "delivered" | "read",
  ts: number,
): { msgs: string[]; status: "delivered" | "read" } | null {
  const { sql } = d;
  const status = reported === "read" && !d.readReceipts() ? "delivered" : reported;
  const fresh: string[] = [];
  for (const msg of msgs) {
    // Only a message of this chat whose status is new here changes, and is reported.
    const changed =
      status === "read"
        ? sql.exec("UPDATE outgoing SET read_at = ?, delivered_at = COALESCE(delivered_at, ?) WHERE msg = ? AND chat = ? AND read_at IS NULL RETURNING 1", ts, ts, msg, key)
        : sql.exec("UPDATE outgoing SET delivered_at = ? WHERE msg = ? AND chat = ? AND delivered_at IS NULL RETURNING 1", ts, msg, key);
    if (changed.toArray().length > 0) fresh.push(msg);
  }
  if (fresh.length === 0) return null;
  return { msgs: fresh, status };
}

/**
 * Whether accepting these hand-offs can have stored a deadline (a disappearing
 * message, media to expire). Receipts and deliveries of messages with neither
 * cannot, one-to-one or from a group; anything else may. The owner then skips
 * the deadline query of its alarm look.
 */
export function mayAddDeadlines(from: string, items: readonly OutboxItem[]): boolean {
  if (from.startsWith("group:")) return items.some(groupItemMayAddDeadline);
  if (!from.startsWith("user:")) return true;
  return items.some((item) => item.op !== "receipt" && (item.op !== "deliver" || carriesDeadline(item.payload as Envelope)));
}

/** Whether a message stores a deadline where it is kept: it disappears, or holds media. */
export function carriesDeadline(e: Envelope): boolean {
  return e.expiresAt !== undefined || mediaIdsOf(e).length > 0;
}

function settingsEvent(key: string, c: SettingsChange): Record<string, unknown> {
  const event = { kind: "retention_changed", retention: c.retention, disappearAfterSeconds: c.disappearAfterSeconds, by: c.changedBy };
  return { type: "event", chat: chatFromKey(key), event, ts: c.changedAt };
}

/** The `message` frame (without seq) for a chat as the reader names it. */
export function messageFrame(e: Envelope, chat: { user: string } | { group: string }): Record<string, unknown> {
  const f: Record<string, unknown> = { type: "message", msg: e.msg, id: e.id, from: e.from, chat, ts: e.ts };
  if (e.text !== undefined) f.text = e.text;
  if (e.media !== undefined) f.media = e.media;
  if (e.replyTo !== undefined) f.replyTo = e.replyTo;
  if (e.expiresAt !== undefined) f.expiresAt = e.expiresAt;
  if (e.e2ee !== undefined) f.e2ee = e.e2ee;
  return f;
}
