// The wire format, version 1: every socket frame and HTTP body as a zod schema.
// The one place the format is defined; the Worker, the objects, the client
// library and the tests all import it. See docs/PROTOCOL.md.
import { z } from "zod";
import { ID_PATTERN, MAX_TEXT_CHARS, MAX_DISPLAY_NAME_CHARS } from "./limits";
import { E2eeDelivered, E2eeSend, checkE2eeSend } from "./e2ee-protocol";
// The e2ee schemas live in their own module (one section of the format); all are re-exported here.
export * from "./e2ee-protocol";

export const PROTOCOL_VERSION = 1;

export const Id = z.string().regex(ID_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 _ . -");
export const UserId = Id;
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
  thumb: z.string().max(Math.ceil((8 * 1024 * 4) / 3) + 4).regex(/^[A-Za-z0-9+/=]*$/, "must be base64").optional(),
});
export type MediaRef = z.infer<typeof MediaRef>;
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
  })
  .refine((f) => f.text !== undefined || f.media !== undefined || f.e2ee !== undefined, {
    message: "a message needs text or media",
    path: ["text"],
  })
  .superRefine(checkE2eeSend);
export const AckFrame = z.object({ type: z.literal("ack"), seq: z.number().int().nonnegative() });
export const ReadFrame = z.object({ type: z.literal("read"), chat: Chat, upTo: MsgId });
export const TypingFrame = z.object({ type: z.literal("typing"), chat: Chat, on: z.boolean() });
export const ActiveFrame = z.object({ type: z.literal("active") });
export const WatchFrame = z.object({ type: z.literal("watch"), users: z.array(UserId).max(100) });
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
export const ProfileBody = z.object({
  displayName: z.string().trim().min(1).max(MAX_DISPLAY_NAME_CHARS),
});
export const Profile = z.object({ id: UserId, displayName: z.string() });

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
