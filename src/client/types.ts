// Public types of the client library: what a chat app reads (conversations,
// messages with their status, presence) and the events it subscribes to. Wire
// frames come from src/protocol.ts; these are the app-facing shapes built from them.
import type { z } from "zod";
import type { Chat, EventFrame, MediaRef, ReceiptFrame, SignedMedia } from "../protocol";

export type { Chat, MediaRef };
export type SignedMediaRef = z.infer<typeof SignedMedia>;

/**
 * Status of a message this user sent. Ordered: a status only ever moves right,
 * except `failed` (the server refused it for good; see `error`).
 */
export type MessageStatus = "pending" | "sent" | "delivered" | "read" | "failed";
export const STATUS_RANK: Record<MessageStatus, number> = { pending: 0, sent: 1, delivered: 2, read: 3, failed: -1 };

export interface ChatMessage {
  /** Stable local key: `<chatKey>|<from>|<id>` (client ids are unique per sender). */
  key: string;
  chatKey: string;
  chat: Chat;
  /** Client message id (made by the sending client). */
  id: string;
  /** Server message id; absent while pending. */
  msg?: string;
  from: string;
  /** Server time of acceptance; local time while pending. */
  ts: number;
  text?: string;
  /**
   * As sent (own messages) or as received (signed `url`, `urlExpiresAt`). An
   * end-to-end encrypted file has `key` (and its plaintext `type`, `size`,
   * `sha256`); `mediaUrl()` downloads and decrypts it.
   */
  media?: MediaRef & { url?: string; urlExpiresAt?: number; key?: string };
  replyTo?: string;
  expiresAt?: number;
  /** True for messages this user sent (from any of its devices). */
  mine: boolean;
  /** Own messages only. */
  status?: MessageStatus;
  error?: { code: string; message: string };
  edited?: boolean;
  deleted?: boolean;
  /** Local send order (own messages), to keep a burst in order before the server stamps it. */
  order?: number;
  /** A group/chat event shown in the conversation ("Alice added Bob"). */
  system?: { kind: string; [field: string]: unknown };
  /** True when the message travelled end-to-end encrypted; false when it went in the clear. */
  encrypted?: boolean;
  /**
   * Set when an encrypted message could not be read on this device: the e2ee
   * error code (`no_sender_key` while a group sender's key is still on its way,
   * `not_for_device` for messages from before this device existed, ...).
   */
  undecryptable?: string;
  /** A group message kept sealed until its sender's key arrives. */
  sealed?: { sender: string; senderKeyCiphertext: string; attachments?: string[] };
}

export interface Conversation {
  key: string;
  chat: Chat;
  /** Display name: the peer's display name or the group's name, when known. */
  title?: string;
  /** Incoming messages after `readUpTo`. */
  unread: number;
  /** Newest incoming `msg` this user has read (sent as `read`). */
  readUpTo?: string;
  /** The `readUpTo` last handed to an open socket. */
  readSent?: string;
  /** Newest activity (ms), for ordering the chat list. */
  lastActivity: number;
  lastMessageKey?: string;
  retention?: "temporary" | "permanent";
  disappearAfterSeconds?: number | null;
  /** Set when the server answered that there is no older history. */
  historyComplete?: boolean;
  /** Where the next older history page starts (the server's `nextBefore`). */
  historyBefore?: string;
  /**
   * End-to-end encryption of this chat as last seen: "on" when messages are
   * encrypted, "off" when they go in the clear (`encryptionNote` says why).
   */
  encryption?: "on" | "off";
  encryptionNote?: string;
  /** The peer's devices or keys changed since the last look at the safety number. */
  securityChanged?: boolean;
  /**
   * Groups: this user left or was removed (its own member_left / member_removed
   * event). The group takes no more posts from it; cleared when it is added again
   * (member_added) or a group message comes through the inbox. Checked against
   * the server's list of the user's groups once per store and after a gap (which
   * may have taken such an event away).
   */
  left?: boolean;
}

export interface PresenceInfo {
  user: string;
  online: boolean;
  /** null when the user hides it. */
  lastSeen: number | null;
}

export type ConnectionState = "idle" | "connecting" | "syncing" | "online" | "offline" | "replaced" | "stopped";

/** Events a client emits; subscribe with `client.on(name, fn)`. */
export interface ClientEvents {
  /** Connection state changes; `retryInMs` is set while waiting to reconnect. */
  connection: { state: ConnectionState; attempt: number; retryInMs?: number; closeCode?: number };
  /** The server's replay after a connect is finished and applied. */
  synced: { head: number };
  /** A message was added to a conversation (received, from another own device, own send, or history). */
  message: { message: ChatMessage; conversation: Conversation; source: "live" | "own" | "history" };
  /** A message changed: status, edit, delete, failure, media url refresh. */
  messageUpdated: { message: ChatMessage; previousStatus?: MessageStatus };
  /** Anything about a conversation changed (unread, title, settings, typing, last message). */
  conversation: Conversation;
  receipt: ReceiptFrame;
  event: EventFrame;
  presence: PresenceInfo;
  typing: { chat: Chat; chatKey: string; user: string; on: boolean };
  /** Inbox entries purged before this device got them (retention); they cannot be recovered. */
  gap: { from: number; to: number };
  /**
   * An error frame from the server, or a failure the client handled. `send`: what
   * the client did with the queued send the error names: "retried" (it goes again
   * by itself) or "failed" (the message turned failed; a `messageUpdated` with
   * `previousStatus` follows). An app says "not sent" there, not here.
   */
  error: { code: string; message: string; ref?: string; send?: "retried" | "failed" };
  /** A contact's devices or identity keys changed: their safety number is different now. */
  identityChanged: { user: string };
}

export type ClientEventName = keyof ClientEvents;
