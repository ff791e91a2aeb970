// What a GroupObject hands to its members' UserObjects (through its outbox) and
// what it accepts from them. Shared by src/objects/GroupObject.ts (sender) and
// src/user/groups.ts (receiver), so both sides agree on one shape.
import type { Envelope } from "../user/chat";
import type { GroupEvent } from "../protocol";

/** Hand-off ops from a group to a member's object. */
export const GROUP_OPS = { message: "group_message", event: "group_event", receipt: "group_receipt" } as const;

/**
 * An entry of the group log as a member's object receives it. `gseq` is the
 * group's sequence: entries reach each member in gseq order (the outbox drains
 * one target in order), so the member's object dedups with a high-water mark.
 */
export interface GroupLogItem {
  group: string;
  gseq: number;
  ts: number;
}
export interface GroupMessageItem extends GroupLogItem {
  /** The message; `device` is the sending device (it does not get its own message back). */
  message: Envelope & { device: string; deleted?: true };
}
export interface GroupEventItem extends GroupLogItem {
  event: GroupEvent;
}
/** The sender's aggregated receipt: every counted member reached `status`. */
export interface GroupReceiptItem {
  group: string;
  msgs: string[];
  status: "delivered" | "read";
  ts: number;
}

/** The post a sender's object hands to the group (see src/user/chat.ts send). */
export type PostPayload = Envelope & { device: string };
