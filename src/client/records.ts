// The shapes of what a client stores (see store.ts for the key layout) and how
// messages sort: the send queue's entries, the meta record, a message as the
// model takes it in, and the helpers ChatState (state.ts) uses on them.
import type { Chat, E2eeSend, MessageFrame } from "../protocol";
import type { ChatMessage, MessageStatus } from "./types";

/** A send waiting for its `sent` frame: re-sent with the same id after every reconnect. */
export interface OutgoingEntry {
  id: string;
  /** Local order of sends (kept across reloads). */
  order: number;
  frame: { type: "send"; id: string; to: Chat; text?: string; media?: ChatMessage["media"]; replyTo?: string; e2ee?: E2eeSend };
  /**
   * End-to-end encryption: "pending" until the frame is sealed (nothing goes on
   * the wire before, and later sends wait behind it), then "sealed", or "plain"
   * when it had to go in the clear. Absent: sent as it is.
   */
  seal?: "pending" | "sealed" | "plain";
  /** The content of a sealed send, kept on the device to encrypt it for devices that appear later. */
  plain?: SealedContent;
  /** A sender-key hand-over: sent like a message, shown nowhere. */
  control?: boolean;
  /** The server answered devices_changed: encrypt for `missing`, drop `extra`, send again with the same id. */
  repair?: { missing: string[]; extra: string[] };
  repairs?: number;
}

/** What an encrypted send carries inside its ciphertext (src/client/e2ee/content.ts). */
export interface SealedContent {
  text?: string;
  media?: ChatMessage["media"];
  replyTo?: string;
  senderKey?: unknown;
}

export interface Meta {
  user: string;
  device: string;
  /** Highest inbox seq applied (and, once written, acknowledged). */
  lastSeq: number;
  nextOrder: number;
  /**
   * Receipts for a `msg` this device does not know yet: after a reconnect the
   * replay can bring a send's receipt before the resent send's `sent`. Applied
   * by markSent; stored with the seq that acknowledges them.
   */
  earlyReceipts?: Record<string, "delivered" | "read">;
  /** Groups' `left` flags were checked against the server's list (GET /v1/groups) once. */
  membershipChecked?: boolean;
  /** The `conn` of this device's last connection attempt: the next, after a reload too, sends a higher one, whatever the clock did. */
  lastConn?: number;
}

export type MessageInput = Omit<MessageFrame, "type" | "seq" | "media"> & {
  media?: ChatMessage["media"];
} & Pick<ChatMessage, "encrypted" | "undecryptable" | "sealed">;

export function messageKey(chatKeyValue: string, from: string, id: string): string {
  return `${chatKeyValue}|${from}|${id}`;
}

export function byTime(a: ChatMessage, b: ChatMessage): number {
  // Pending messages (no server time yet) go last, in the order they were sent;
  // the rest by server time, then by msg (which sorts by acceptance).
  const pa = a.status === "pending" || (a.status === "failed" && !a.msg);
  const pb = b.status === "pending" || (b.status === "failed" && !b.msg);
  if (pa !== pb) return pa ? 1 : -1;
  if (pa && pb) return (a.order ?? 0) - (b.order ?? 0);
  if (a.ts !== b.ts) return a.ts - b.ts;
  if (a.msg && b.msg) return a.msg < b.msg ? -1 : a.msg > b.msg ? 1 : 0;
  return (a.order ?? 0) - (b.order ?? 0);
}

export function historyStatus(input: unknown): MessageStatus {
  const h = input as { readAt?: unknown; deliveredAt?: unknown; status?: unknown };
  if (h.status === "read" || typeof h.readAt === "number") return "read";
  if (h.status === "delivered" || typeof h.deliveredAt === "number") return "delivered";
  return "sent";
}

export function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
