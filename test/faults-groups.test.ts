// Written against PROTOCOL.md: POST /v1/groups {name, members} -> 201 {id}; a post is `send`
// with to: {group}; members get `message` with chat: {group}; the sender gets
// one `delivered` receipt (without `by`) once every member has a device that
// acknowledged it.
//
// Evictions and hard resets between every step of a 200-member fan-out: every
// member gets the post exactly once and the sender one `delivered`.
import { abortAllDurableObjects, evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, sleep, token, uid, waitOutboxesEmpty } from "./helpers";
import { ReliableDevice, until } from "./reliable";

const MEMBERS = 200;

const STEPS = [
  "before the post",
  "right after the post is written",
  "after `sent` arrived",
  "after the first member got it",
  "after every member got it",
  "after `delivered` reached the sender",
] as const;
type Fault = "evict the group's object" | "evict a member's object" | "hard-reset every object";
const FAULTS: Fault[] = ["evict the group's object", "evict a member's object", "hard-reset every object"];

describe("evictions between every step of a 200-member fan-out", () => {
  // One group and 200 connected devices for every case (connecting 200 sockets
  // is the slow part); each case posts its own message.
  let groupId = "";
  let users: string[] = [];
  let devices: ReliableDevice[] = [];
  beforeAll(async () => {
    users = Array.from({ length: MEMBERS }, (_, i) => uid(`m${i}`));
    const tokens = await Promise.all(users.map((u) => token(u)));
    const res = await call("/v1/groups", { method: "POST", token: tokens[0], json: { name: "fan-out under faults", members: users.slice(1) } });
    expect(res.status).toBe(201);
    groupId = ((await res.json()) as { id: string }).id;
    devices = users.map((u, i) => new ReliableDevice(u, "phone", tokens[i]!));
    for (const d of devices) await d.connect();
  }, 120_000);
  afterAll(async () => {
    for (const d of devices) d.close();
    // The members' last receipts are still on their way to the group: the file
    // ends once every outbox is empty, not with hand-offs cut off mid-flight.
    await waitOutboxesEmpty([env.GROUPS.getByName(groupId), ...users.map((u) => env.USERS.getByName(u))], 30_000);
  }, 60_000);

  let n = 0;
  for (const fault of FAULTS) {
    for (let at = 0; at < STEPS.length; at++) {
      it(`${fault} ${STEPS[at]}: every member gets the post once, the sender one delivered`, async () => {
        const [sender, ...members] = devices;
        const id = `p${++n}`;
        const key = `${users[0]}|${id}`;
        const inject = async (i: number) => {
          if (i !== at) return;
          if (fault === "evict the group's object") await evictDurableObject(env.GROUPS.getByName(groupId));
          else if (fault === "evict a member's object") await evictDurableObject(env.USERS.getByName(users[MEMBERS - 1]!));
          else await abortAllDurableObjects();
        };

        await inject(0);
        sender!.send({ group: groupId }, id, `to everyone, once (${id})`);
        await inject(1);
        await until(devices, () => sender!.sent.has(id), "sent", 30_000);
        await inject(2);
        await until(devices, () => members.some((m) => m.seen.has(key)), "the first member", 30_000);
        await inject(3);
        await until(devices, () => members.every((m) => m.seen.has(key)), "every member", 60_000);
        await inject(4);
        const msg = sender!.sent.get(id)!;
        await until(devices, () => sender!.delivered.has(msg), "delivered at the sender", 60_000);
        await inject(5);

        // Reconnect the sender and every tenth member with the same app state
        // and look again: a replay must not add a copy under a new seq.
        await sleep(300);
        const sample = devices.filter((_, i) => i % 10 === 0);
        for (const d of sample) {
          d.ws?.close(1000, "reconnect");
          d.closed = true;
        }
        await until(devices, () => devices.every((d) => d.synced), "reconnected", 60_000);
        await sleep(300);
        for (const m of members) expect(m.seen.get(key), `${m.user}`).toBe(1);
        expect(sender!.delivered.get(msg)).toBe(1);
        for (const d of devices) {
          expect(d.violations).toEqual([]);
          expect(d.errors).toEqual([]);
        }
      }, 180_000);
    }
  }
});
