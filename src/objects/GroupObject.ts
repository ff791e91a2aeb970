// One Durable Object per group. Groups are not built yet (issue 4): until they
// are, every post is refused as to a group that does not exist.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import type { HandoffResult, OutboxItem } from "../outbox";

export class GroupObject extends DurableObject<Env> {
  async handoff(_to: string, _from: string, items: OutboxItem[]): Promise<HandoffResult[]> {
    return items.map(() => ({ ok: false, code: "not_member", message: "no such group" }));
  }
}
