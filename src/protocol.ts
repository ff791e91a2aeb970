// The wire format, version 1: every socket frame and HTTP body as a zod schema.
// The one place the format is defined; the Worker, the objects, the client
// library and the tests all import it. See docs/PROTOCOL.md.
import { z } from "zod";
import {
  MAX_DISAPPEAR_AFTER_SECONDS,
  HISTORY_PAGE_MAX,
  ID_PATTERN,
  ID_RULE,
  PATH_ID_PATTERN,
  PATH_ID_RULE,
  MAX_DISPLAY_NAME_CHARS,
  MAX_GROUP_BATCH_USERS,
  MAX_GROUP_NAME_CHARS,
  MAX_TEXT_CHARS,
  MAX_THUMB_BYTES,
  MAX_WATCHED_USERS,
} from "./limits";
import { E2eeDelivered, E2eeSend, checkE2eeSend } from "./e2ee-protocol";
// The e2ee schemas live in their own module (one section of the format); all are re-exported here.
export * from "./e2ee-protocol";

export const PROTOCOL_VERSION = 1;

export const Id = z.string().regex(ID_PATTERN, ID_RULE);

/** A lone UTF-16 surrogate: not text. Storage turns it into U+FFFD, so the name read back would differ. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** C0 and C1 controls, DEL, and the line and paragraph separators: no part of a one-line name. */
const NAME_CONTROL = /[\u0000-\u001F\u007F-\u009F\u2028\u2029]/;
/**
 * Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069):
 * they reorder the text after them, so a name could show as someone else's or
 * spill into what follows it. The direction marks (U+200E, U+200F, U+061C) stay.
 */
const NAME_BIDI_CONTROL = /[\u202A-\u202E\u2066-\u2069]/;
/** What shows nothing: spaces and the default-ignorable characters (zero-width space, joiners, marks). */
const INVISIBLE = /[\p{White_Space}\p{Default_Ignorable_Code_Point}]/gu;
/**
 * A display or group name: trimmed, 1 to `max` characters of well-formed text,
 * no control or bidirectional control characters, and something visible.
 */
function Name(max: number) {
  return z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((s) => !LONE_SURROGATE.test(s), "must be well-formed Unicode (no lone surrogates)")
    .refine((s) => !NAME_CONTROL.test(s), "must not contain control characters")
    .refine((s) => !NAME_BIDI_CONTROL.test(s), "must not contain bidirectional override or isolate characters (U+202A-U+202E, U+2066-U+2069)")
    .refine((s) => s.replace(INVISIBLE, "") !== "", "must contain a visible character");
}
/** An id that goes into URL paths: never "." or "..". */
const PathId = z.string().regex(PATH_ID_PATTERN, PATH_ID_RULE);
/** User ids go into paths (/v1/users/:user, group members). */
export const UserId = PathId;
/** A device id in a path (/v1/keys/:device). */
export const PathDeviceId = PathId;
export const DeviceId = Id;
export const GroupId = Id;
/** Server message ids: opaque, sortable by time of acceptance. */
export const MsgId = Id;

export const UserChat = z.object({ user: UserId }).strict();
export const GroupChat = z.object({ group: GroupId }).strict();
export const Chat = z.union([UserChat, GroupChat]);
export type Chat = z.infer<typeof Chat>;

/** The media object of a message: what POST /v1/media returned, plus display hints. */
export const MediaRef = z.object({
  id: Id,
  type: z.string().max(100),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  caption: z.string().max(MAX_TEXT_CHARS).optional(),
  width: z.number().int().positive().max(100_000).optional(),
  height: z.number().int().positive().max(100_000).optional(),
  durationMs: z.number().int().nonnegative().optional(),
  thumb: z
    .string()
    .max(Math.ceil(MAX_THUMB_BYTES / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, "must be base64")
    .refine((t) => t.length % 4 !== 1 && base64Bytes(t) <= MAX_THUMB_BYTES, `must be base64 of at most ${MAX_THUMB_BYTES} bytes`)
    .optional(),
});
export type MediaRef = z.infer<typeof MediaRef>;
/** Decoded size of a base64 string (padded or not). */
function base64Bytes(b64: string): number {
  const pad = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return Math.floor(((b64.length - pad) * 3) / 4);
}
/** Media as a device receives it: signed for that reader. */
export const SignedMedia = MediaRef.extend({ url: z.string(), urlExpiresAt: z.number().int() });

const Text = z.string().max(MAX_TEXT_CHARS, `must be at most ${MAX_TEXT_CHARS} characters`);

// ---- client to server --------------------------------------------------

export const SendFrame = z
  .object({
    type: z.literal("send"),
    id: Id,
    to: Chat,
    text: Text.optional(),
    media: MediaRef.optional(),
    replyTo: MsgId.optional(),
    e2ee: E2eeSend.optional(),
    // Addition: accept only once the send with this id is accepted (out_of_order otherwise).
    after: Id.optional(),
  })
  .refine((f) => f.after !== f.id, { message: "cannot name the send itself", path: ["after"] })
  // An empty text is no content: "" alone would be a blank bubble in every client.
  .refine((f) => (f.text !== undefined && f.text !== "") || f.media !== undefined || f.e2ee !== undefined, {
    message: "a message needs text (at least one character) or media",
    path: ["text"],
  })
  .superRefine(checkE2eeSend);
export const AckFrame = z.object({ type: z.literal("ack"), seq: z.number().int().nonnegative() });
export const ReadFrame = z.object({ type: z.literal("read"), chat: Chat, upTo: MsgId });
export const TypingFrame = z.object({ type: z.literal("typing"), chat: Chat, on: z.boolean() });
export const ActiveFrame = z.object({ type: z.literal("active") });
export const WatchFrame = z.object({ type: z.literal("watch"), users: z.array(UserId).max(MAX_WATCHED_USERS) });
export const EditFrame = z
  .object({ type: z.literal("edit"), msg: MsgId, text: Text.optional(), e2ee: E2eeSend.optional() })
  .refine((f) => (f.text === undefined) !== (f.e2ee === undefined), { message: "an edit carries text or e2ee", path: ["text"] });
export const DeleteFrame = z.object({ type: z.literal("delete"), msg: MsgId });

export const ClientFrame = z.discriminatedUnion("type", [
  SendFrame,
  AckFrame,
  ReadFrame,
  TypingFrame,
  ActiveFrame,
  WatchFrame,
  EditFrame,
  DeleteFrame,
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type SendFrame = z.infer<typeof SendFrame>;
export const CLIENT_FRAME_TYPES = ["send", "ack", "read", "typing", "active", "watch", "edit", "delete"] as const;
/** Frames that count as user activity for last seen. */
export const USER_DRIVEN_TYPES: ReadonlySet<string> = new Set(["send", "read", "typing", "active", "edit", "delete"]);

// ---- server to client --------------------------------------------------

export const HelloFrame = z.object({
  type: z.literal("hello"),
  protocol: z.literal(PROTOCOL_VERSION),
  user: UserId,
  device: DeviceId,
  head: z.number().int().nonnegative(),
  serverTime: z.number().int(),
});
export const SentFrame = z.object({ type: z.literal("sent"), id: Id, msg: MsgId, ts: z.number().int() });
export const MessageFrame = z.object({
  type: z.literal("message"),
  seq: z.number().int().positive(),
  msg: MsgId,
  id: Id,
  from: UserId,
  chat: Chat,
  ts: z.number().int(),
  text: z.string().optional(),
  media: SignedMedia.optional(),
  replyTo: MsgId.optional(),
  expiresAt: z.number().int().optional(),
  /** Set when the sender edited the message before this copy was delivered or read from history. */
  editedAt: z.number().int().optional(),
  e2ee: E2eeDelivered.optional(),
});
export const ReceiptStatus = z.enum(["delivered", "read"]);
export const ReceiptFrame = z.object({
  type: z.literal("receipt"),
  seq: z.number().int().positive(),
  chat: Chat,
  msgs: z.array(MsgId).min(1),
  status: ReceiptStatus,
  by: UserId.optional(),
  ts: z.number().int(),
});
export const EventFrame = z.object({
  type: z.literal("event"),
  seq: z.number().int().positive(),
  chat: Chat,
  event: z.object({ kind: z.string() }).passthrough(),
  ts: z.number().int(),
});
export const SyncedFrame = z.object({ type: z.literal("synced"), head: z.number().int().nonnegative() });
export const GapFrame = z.object({
  type: z.literal("gap"),
  from: z.number().int().positive(),
  to: z.number().int().positive(),
  reason: z.literal("expired"),
});
export const PresenceFrame = z.object({
  type: z.literal("presence"),
  user: UserId,
  online: z.boolean(),
  lastSeen: z.number().int().nullable(),
});
export const TypingRelayFrame = z.object({ type: z.literal("typing"), user: UserId, chat: Chat, on: z.boolean() });
export const ErrorFrame = z.object({
  type: z.literal("error"),
  code: z.string(),
  message: z.string(),
  ref: z.string().optional(),
  /** devices_changed: device addresses ("user/device") the e2ee map lacks, and those it should not have. */
  missing: z.array(z.string()).optional(),
  extra: z.array(z.string()).optional(),
});

export const ServerFrame = z.discriminatedUnion("type", [
  HelloFrame,
  SentFrame,
  MessageFrame,
  ReceiptFrame,
  EventFrame,
  SyncedFrame,
  GapFrame,
  PresenceFrame,
  TypingRelayFrame,
  ErrorFrame,
]);
export type ServerFrame = z.infer<typeof ServerFrame>;
export type MessageFrame = z.infer<typeof MessageFrame>;
export type ReceiptFrame = z.infer<typeof ReceiptFrame>;
export type EventFrame = z.infer<typeof EventFrame>;
/** Frames that are inbox entries (carry a seq). */
export type InboxFrame = MessageFrame | ReceiptFrame | EventFrame;

// ---- HTTP bodies -------------------------------------------------------

export const DevTokenBody = z.object({
  user: UserId,
  ttlSeconds: z.number().int().positive().optional(),
});
/** GET /v1/me/privacy, and the answer of PUT. */
export const PrivacySettings = z.object({
  lastSeen: z.enum(["everyone", "nobody"]),
  readReceipts: z.boolean(),
});
export type PrivacySettings = z.infer<typeof PrivacySettings>;
/** PUT /v1/me/privacy: either field may be left out (it keeps its value). */
export const PrivacyBody = PrivacySettings.partial()
  .strict()
  .refine((b) => b.lastSeen !== undefined || b.readReceipts !== undefined, { message: "give lastSeen or readReceipts" });
export type PrivacyBody = z.infer<typeof PrivacyBody>;
/** GET /v1/users/:user/presence. */
export const PresenceBody = z.object({ user: UserId, online: z.boolean(), lastSeen: z.number().int().nullable() });

export const ProfileBody = z.object({
  displayName: Name(MAX_DISPLAY_NAME_CHARS),
});
export const Profile = z.object({ id: UserId, displayName: z.string() });

export const Retention = z.enum(["temporary", "permanent"]);
export type Retention = z.infer<typeof Retention>;
/** Off is null or 0; otherwise that many seconds (a whole number, at most a year). Omitted = unchanged. */
export const DisappearAfter = z
  .union([z.null(), z.number().int().min(0).max(MAX_DISAPPEAR_AFTER_SECONDS, `must be at most ${MAX_DISAPPEAR_AFTER_SECONDS} seconds (a year)`)])
  .transform((v) => (v === 0 ? null : v));
export const ChatSettingsBody = z
  .object({ retention: Retention.optional(), disappearAfterSeconds: DisappearAfter.optional() })
  .refine((b) => b.retention !== undefined || b.disappearAfterSeconds !== undefined, {
    message: "give retention and/or disappearAfterSeconds",
    path: ["retention"],
  });
export type ChatSettingsBody = z.infer<typeof ChatSettingsBody>;
export const ChatSettings = z.object({
  chat: z.string(),
  retention: Retention,
  disappearAfterSeconds: z.number().int().nullable(),
  changedAt: z.number().int().nullable(),
  changedBy: z.string().nullable(),
});
export type ChatSettings = z.infer<typeof ChatSettings>;
export const HistoryQuery = z.object({
  before: MsgId.optional(),
  limit: z.coerce.number().int().min(1).max(HISTORY_PAGE_MAX).optional(),
});
/** POST /v1/media (and the multipart complete) answers this; a send's `media` starts from it. */
export const MediaUploaded = z.object({ id: Id, type: z.string(), size: z.number().int(), sha256: z.string() });
/** POST /v1/media/uploads: start a multipart upload. */
export const MediaUploadBody = z.object({
  type: z.string().max(100),
  size: z.number().int().positive(),
  partSize: z.number().int().positive().optional(),
});
/** A multipart upload as GET /v1/media/uploads/:uploadId and its creation describe it. */
export const MediaUploadState = z.object({
  uploadId: Id,
  id: Id,
  type: z.string(),
  size: z.number().int(),
  partSize: z.number().int(),
  parts: z.number().int(),
  received: z.array(z.number().int()),
  expiresAt: z.number().int(),
});
export type MediaUploadState = z.infer<typeof MediaUploadState>;
/** GET /v1/media/:id/url */
export const MediaUrl = z.object({ url: z.string(), urlExpiresAt: z.number().int() });
// ---- groups (docs/PROTOCOL.md, "Groups") ---------------------------------

export const GroupRole = z.enum(["admin", "member"]);
export const GroupName = Name(MAX_GROUP_NAME_CHARS);
export const GroupMember = z.object({ user: UserId, role: GroupRole });
export const CreateGroupBody = z.object({ name: GroupName, members: z.array(UserId).max(MAX_GROUP_BATCH_USERS) });
export const RenameGroupBody = z.object({ name: GroupName.optional() });
export const AddMembersBody = z.object({ users: z.array(UserId).min(1).max(MAX_GROUP_BATCH_USERS) });
export const GrantAdminBody = z.object({ user: UserId });
export const GroupView = z.object({
  id: GroupId,
  name: z.string(),
  members: z.array(GroupMember),
  createdAt: z.number().int(),
  retention: z.enum(["temporary", "permanent"]),
});
export type GroupView = z.infer<typeof GroupView>;
/** GET /v1/groups: the caller's groups as its own object knows them. */
export const GroupSummary = z.object({ id: GroupId, name: z.string(), role: GroupRole });
export const GroupList = z.object({ groups: z.array(GroupSummary) });
/** GET /v1/groups/:id/messages/:msg/receipts: one row per member the message counts for. */
export const MemberReceipt = z.object({
  user: UserId,
  deliveredAt: z.number().int().optional(),
  readAt: z.number().int().optional(),
});
/** The `event` of an event frame in a group chat (carried by EventFrame.event). */
export const GroupEvent = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("created"), by: UserId, name: z.string(), members: z.array(GroupMember), retention: z.string() }),
  z.object({ kind: z.literal("member_added"), by: UserId, users: z.array(UserId), name: z.string() }),
  z.object({ kind: z.literal("member_removed"), by: UserId, user: UserId }),
  z.object({ kind: z.literal("member_left"), user: UserId }),
  /** Without `by` when automatic: the last admin left and the longest-standing member took over. */
  z.object({ kind: z.literal("admin_granted"), user: UserId, by: UserId.optional() }),
  z.object({ kind: z.literal("renamed"), by: UserId, name: z.string() }),
  z.object({
    kind: z.literal("retention_changed"),
    by: UserId,
    retention: z.enum(["temporary", "permanent"]),
    disappearAfterSeconds: z.number().int().nullable(),
  }),
  z.object({ kind: z.literal("edited"), by: UserId, msg: MsgId, text: z.string().optional(), e2ee: z.unknown().optional() }),
  z.object({ kind: z.literal("deleted"), by: UserId, msg: MsgId }),
]);
export type GroupEvent = z.infer<typeof GroupEvent>;

/** Chats in URLs: `user:bob` or `group:g_1`. */
export function parseChatParam(value: string): Chat | null {
  const m = /^(user|group):(.+)$/.exec(value);
  if (!m) return null;
  const parsed = Chat.safeParse(m[1] === "user" ? { user: m[2] } : { group: m[2] });
  return parsed.success ? parsed.data : null;
}
export function chatKey(chat: Chat): string {
  return "user" in chat ? `user:${chat.user}` : `group:${chat.group}`;
}
export function chatFromKey(key: string): Chat {
  const chat = parseChatParam(key);
  if (!chat) throw new Error(`bad chat key ${key}`);
  return chat;
}

/** Human-readable summary of a zod failure that names the offending field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join(".") : "frame"}: ${i.message}`)
    .join("; ");
}
