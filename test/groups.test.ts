// Groups of up to 200: roster and roles over HTTP, messages fanned out by the
// group's object in one order to every member, roster events, aggregated
// receipts, and delivery that survives eviction and failing members' objects.
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_GROUP_MEMBERS } from "../src/limits";
import { GroupEvent, GroupList, GroupView, MemberReceipt } from "../src/protocol";
import { GroupReceipts } from "../src/group/receipts";
import { Outbox } from "../src/outbox";
import { call, connect, outboxRows, sleep, token, uid, waitOutboxesEmpty, type TestSocket } from "./helpers";

async function createGroup(tok: string, name: string, members: string[]): Promise<GroupView> {
  const res = await call("/v1/groups", { method: "POST", token: tok, json: { name, members } });
  expect(res.status).toBe(201);
  return GroupView.parse(await res.json());
}

async function getGroup(tok: string, id: string): Promise<GroupView> {
  const res = await call(`/v1/groups/${id}`, { token: tok });
  expect(res.status).toBe(200);
  return GroupView.parse(await res.json());
}

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** Waits for the next n messages of this group on a socket, in arrival order. */
async function groupMessages(s: TestSocket, group: string, n: number, timeoutMs = 5000) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await s.next("message", (m) => "group" in m.chat && m.chat.group === group, timeoutMs));
  return out;
}

async function groupEvent(s: TestSocket, group: string, kind: string) {
  const frame = await s.next("event", (e) => "group" in e.chat && e.chat.group === group && e.event.kind === kind);
  return { frame, event: GroupEvent.parse(frame.event) };
}

function users(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${uid(prefix)}-${i}`);
}

/** Waits until the group has handed everything over. */
function waitDrained(id: string, timeoutMs = 8000): Promise<void> {
  return waitOutboxesEmpty([env.GROUPS.getByName(id)], timeoutMs);
}

describe("groups", () => {
  it("members create a group and post; everyone, the sender's second device included, receives every message in one order", async () => {
    const [alice, bob, carol] = [uid("alice"), uid("bob"), uid("carol")];
    const aPhone = await connect(alice, "phone");
    const aLaptop = await connect(alice, "laptop");
    const b = await connect(bob);
    const c = await connect(carol);
    const tok = await token(alice);
    const group = await createGroup(tok, "Hikers", [bob, carol, bob]);
    expect(group).toMatchObject({ name: "Hikers", retention: "temporary" });
    expect(group.members).toEqual([
      { user: alice, role: "admin" },
      { user: bob, role: "member" },
      { user: carol, role: "member" },
    ]);
    for (const s of [aPhone, aLaptop, b, c]) {
      const { event } = await groupEvent(s, group.id, "created");
      expect(event).toMatchObject({ kind: "created", by: alice, name: "Hikers", members: group.members });
    }

    // Three senders at once: the group's order is the one order everyone sees.
    aPhone.send({ type: "send", id: "a1", to: { group: group.id }, text: "a1" });
    b.send({ type: "send", id: "b1", to: { group: group.id }, text: "b1" });
    c.send({ type: "send", id: "c1", to: { group: group.id }, text: "c1" });
    aPhone.send({ type: "send", id: "a2", to: { group: group.id }, text: "a2" });
    const sentA1 = await aPhone.next("sent", (f) => f.id === "a1");
    await aPhone.next("sent", (f) => f.id === "a2");

    const order = (ms: Array<{ text?: string }>) => ms.map((m) => m.text);
    const onLaptop = await groupMessages(aLaptop, group.id, 4);
    const onBob = await groupMessages(b, group.id, 3);
    const onCarol = await groupMessages(c, group.id, 3);
    const onPhone = await groupMessages(aPhone, group.id, 2);
    expect(order(onLaptop).sort()).toEqual(["a1", "a2", "b1", "c1"]);
    // Each sending device gets everything but its own messages, in the group's one order.
    expect(order(onBob)).toEqual(order(onLaptop).filter((t) => t !== "b1"));
    expect(order(onCarol)).toEqual(order(onLaptop).filter((t) => t !== "c1"));
    expect(order(onPhone)).toEqual(order(onLaptop).filter((t) => t === "b1" || t === "c1"));
    expect(onLaptop.find((m) => m.text === "a1")).toMatchObject({ msg: sentA1.msg, id: "a1", from: alice, chat: { group: group.id } });
    await sleep(100);
    for (const s of [aPhone, aLaptop, b, c]) expect(s.all("message")).toEqual([]);
    // Nor on replay: the phone reconnects without having acked anything.
    aPhone.close();
    const again = await connect(alice, "phone");
    expect(order(again.all("message"))).toEqual(order(onPhone));

    expect(await getGroup(await token(bob), group.id)).toEqual(group);
    const list = GroupList.parse(await (await call("/v1/groups", { token: await token(bob) })).json());
    expect(list.groups).toContainEqual({ id: group.id, name: "Hikers", role: "member" });
  });

  it("a lone sender's own post coming back from the group spends no inbox entry in its object", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await connect(alice);
    const b = await connect(bob);
    const group = await createGroup(await token(alice), "Solo", [bob]);
    await waitDrained(group.id);
    const head = () =>
      runInDurableObject(env.USERS.getByName(alice), (_o, state) => Number(state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'head'").one().value));
    const before = await head();
    a.send({ type: "send", id: "solo", to: { group: group.id }, text: "just me here" });
    await a.next("sent");
    expect((await groupMessages(b, group.id, 1))[0]!.text).toBe("just me here");
    await waitDrained(group.id);
    expect(await head()).toBe(before);
  });

  it("a non-member's post is refused with not_member and reaches nobody", async () => {
    const [alice, bob, mallory] = [uid("alice"), uid("bob"), uid("mallory")];
    const group = await createGroup(await token(alice), "Private", [bob]);
    const b = await connect(bob);
    const m = await connect(mallory);
    m.send({ type: "send", id: "x1", to: { group: group.id }, text: "let me in" });
    expect(await m.next("sent")).toMatchObject({ id: "x1" });
    expect(await m.next("error")).toMatchObject({ code: "not_member", ref: "x1" });

    const a = await connect(alice);
    a.send({ type: "send", id: "hi", to: { group: group.id }, text: "hi" });
    const [first] = await groupMessages(b, group.id, 1);
    expect(first!.text).toBe("hi");
    expect(b.all("message")).toEqual([]);
    const res = await call(`/v1/groups/${group.id}`, { token: await token(mallory) });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("not_member");
    const bogus = await call(`/v1/groups/g_${"0".repeat(32)}`, { token: await token(mallory) });
    expect(bogus.status).toBe(404);

    // A group that was never created (review of 2026-11-28): changing its settings is
    // not_found, not a 500, and an edit of a post it refused is refused for good
    // instead of retried by the sender's outbox forever.
    const never = `g_${"1".repeat(32)}`;
    const put = await call(`/v1/chats/group:${never}/settings`, { method: "PUT", token: await token(mallory), json: { retention: "permanent" } });
    expect(put.status).toBe(404);
    expect(await errorCode(put)).toBe("not_found");
    m.send({ type: "send", id: "x2", to: { group: never }, text: "anyone?" });
    const x2 = await m.next("sent", (f) => f.id === "x2");
    expect(await m.next("error")).toMatchObject({ code: "not_member", ref: "x2" });
    m.send({ type: "edit", msg: x2.msg, text: "anyone at all?" });
    await waitOutboxesEmpty([env.USERS.getByName(mallory)], 12_000);
  });

  it("only admins manage the group: members get not_admin, outsiders not_member, and the roster is unchanged", async () => {
    const [alice, bob, carol, eve] = [uid("alice"), uid("bob"), uid("carol"), uid("eve")];
    const tokA = await token(alice);
    const tokB = await token(bob);
    const group = await createGroup(tokA, "Club", [bob, carol]);
    const path = `/v1/groups/${group.id}`;
    const attempts: Array<[string, RequestInit & { json?: unknown }]> = [
      [path, { method: "PATCH", json: { name: "Bob's club" } }],
      [`${path}/members`, { method: "POST", json: { users: [eve] } }],
      [`${path}/admins`, { method: "POST", json: { user: bob } }],
      [`${path}/members/${carol}`, { method: "DELETE" }],
    ];
    for (const [p, init] of attempts) {
      const res = await call(p, { ...init, token: tokB });
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe("not_admin");
      const outsider = await call(p, { ...init, token: await token(eve) });
      expect(outsider.status).toBe(403);
      expect(await errorCode(outsider)).toBe("not_member");
    }
    expect(await getGroup(tokA, group.id)).toEqual(group);

    const b = await connect(bob);
    const renamed = await call(path, { method: "PATCH", token: tokA, json: { name: "Alice's club" } });
    expect(renamed.status).toBe(200);
    expect((await groupEvent(b, group.id, "renamed")).event).toEqual({ kind: "renamed", by: alice, name: "Alice's club" });
    const granted = await call(`${path}/admins`, { method: "POST", token: tokA, json: { user: bob } });
    expect(GroupView.parse(await granted.json()).members).toContainEqual({ user: bob, role: "admin" });
    expect((await groupEvent(b, group.id, "admin_granted")).event).toEqual({ kind: "admin_granted", user: bob, by: alice });
    const list = GroupList.parse(await (await call("/v1/groups", { token: tokB })).json());
    expect(list.groups).toEqual([{ id: group.id, name: "Alice's club", role: "admin" }]);
  });

  it("a removed member gets its removal, nothing posted after it, and can no longer post or read the group", async () => {
    const [alice, bob, carol] = [uid("alice"), uid("bob"), uid("carol")];
    const tokA = await token(alice);
    const group = await createGroup(tokA, "Team", [bob, carol]);
    const a = await connect(alice);
    const b = await connect(bob);
    const c = await connect(carol);
    a.send({ type: "send", id: "before", to: { group: group.id }, text: "before" });
    expect((await groupMessages(b, group.id, 1))[0]!.text).toBe("before");

    const res = await call(`/v1/groups/${group.id}/members/${bob}`, { method: "DELETE", token: tokA });
    expect(res.status).toBe(204);
    expect((await groupEvent(b, group.id, "member_removed")).event).toEqual({ kind: "member_removed", by: alice, user: bob });
    expect((await groupEvent(c, group.id, "member_removed")).event).toMatchObject({ user: bob });

    a.send({ type: "send", id: "after", to: { group: group.id }, text: "after" });
    expect((await groupMessages(c, group.id, 2)).map((m) => m.text)).toEqual(["before", "after"]);
    b.send({ type: "send", id: "still-here", to: { group: group.id }, text: "still here?" });
    expect(await b.next("error")).toMatchObject({ code: "not_member", ref: "still-here" });
    await sleep(100);
    expect(b.all("message")).toEqual([]);
    expect(c.all("message")).toEqual([]);
    const tokB = await token(bob);
    const read = await call(`/v1/groups/${group.id}`, { token: tokB });
    expect(await errorCode(read)).toBe("not_member");
    expect(GroupList.parse(await (await call("/v1/groups", { token: tokB })).json()).groups).toEqual([]);
  });

  it("a member who leaves is told, the others see member_left, and it receives nothing more", async () => {
    const [alice, bob, carol] = [uid("alice"), uid("bob"), uid("carol")];
    const group = await createGroup(await token(alice), "Book club", [bob, carol]);
    const b = await connect(bob);
    const c = await connect(carol);
    const left = await call(`/v1/groups/${group.id}/members/${bob}`, { method: "DELETE", token: await token(bob) });
    expect(left.status).toBe(204);
    expect((await groupEvent(b, group.id, "member_left")).event).toEqual({ kind: "member_left", user: bob });
    expect((await groupEvent(c, group.id, "member_left")).event).toEqual({ kind: "member_left", user: bob });
    c.send({ type: "send", id: "bye", to: { group: group.id }, text: "bye bob" });
    const a = await connect(alice);
    expect((await groupMessages(a, group.id, 1))[0]!.text).toBe("bye bob");
    await sleep(100);
    expect(b.all("message")).toEqual([]);
    expect((await getGroup(await token(carol), group.id)).members.map((m) => m.user)).toEqual([alice, carol]);
  });

  it("when the last admin leaves, the longest-standing member becomes admin", async () => {
    const [alice, bob, carol, dave] = [uid("alice"), uid("bob"), uid("carol"), uid("dave")];
    const tokA = await token(alice);
    // dave joins first, then bob and carol: dave has stood longest after alice.
    const group = await createGroup(tokA, "Relay", [dave]);
    await call(`/v1/groups/${group.id}/members`, { method: "POST", token: tokA, json: { users: [bob, carol] } });
    const c = await connect(carol);
    expect((await call(`/v1/groups/${group.id}/members/${alice}`, { method: "DELETE", token: tokA })).status).toBe(204);
    expect((await groupEvent(c, group.id, "member_left")).event).toEqual({ kind: "member_left", user: alice });
    // Automatic: no `by`.
    expect((await groupEvent(c, group.id, "admin_granted")).event).toEqual({ kind: "admin_granted", user: dave });
    const view = await getGroup(await token(carol), group.id);
    expect(view.members).toEqual([
      { user: dave, role: "admin" },
      { user: bob, role: "member" },
      { user: carol, role: "member" },
    ]);
    const byDave = await call(`/v1/groups/${group.id}`, { method: "PATCH", token: await token(dave), json: { name: "Dave's relay" } });
    expect(byDave.status).toBe(200);
  });

  it("the sender gets one delivered when the last member acks and one read when the last member reads, with the right per-member view", async () => {
    const [alice, bob, carol, dave] = [uid("alice"), uid("bob"), uid("carol"), uid("dave")];
    const tokA = await token(alice);
    const group = await createGroup(tokA, "Receipts", [bob, carol]);
    const a = await connect(alice);
    const b = await connect(bob);
    const c = await connect(carol);
    a.send({ type: "send", id: "r1", to: { group: group.id }, text: "did you get this?" });
    const { msg } = await a.next("sent");
    const detail = async () => {
      const res = await call(`/v1/groups/${group.id}/messages/${msg}/receipts`, { token: tokA });
      expect(res.status).toBe(200);
      return MemberReceipt.array().parse(await res.json());
    };
    const until = async (pred: (d: Awaited<ReturnType<typeof detail>>) => boolean) => {
      for (let i = 0; i < 100 && !pred(await detail()); i++) await sleep(20);
      return detail();
    };

    const [mb] = await groupMessages(b, group.id, 1);
    const [mc] = await groupMessages(c, group.id, 1);
    b.send({ type: "ack", seq: mb!.seq });
    const afterBob = await until((d) => d.some((r) => r.user === bob && r.deliveredAt !== undefined));
    expect(afterBob.find((r) => r.user === carol)).toEqual({ user: carol });
    await sleep(100);
    expect(a.all("receipt")).toEqual([]);

    c.send({ type: "ack", seq: mc!.seq });
    const delivered = await a.next("receipt");
    expect(delivered).toMatchObject({ chat: { group: group.id }, msgs: [msg], status: "delivered" });
    expect(delivered.by).toBeUndefined();

    // dave joins after the message: he does not count.
    await call(`/v1/groups/${group.id}/members`, { method: "POST", token: tokA, json: { users: [dave] } });
    b.send({ type: "read", chat: { group: group.id }, upTo: msg });
    await until((d) => d.some((r) => r.user === bob && r.readAt !== undefined));
    await sleep(100);
    expect(a.all("receipt")).toEqual([]);
    const view = await detail();
    expect(view.map((r) => r.user).sort()).toEqual([bob, carol].sort());
    expect(view.find((r) => r.user === bob)).toMatchObject({ deliveredAt: expect.any(Number), readAt: expect.any(Number) });
    expect(view.find((r) => r.user === carol)?.readAt).toBeUndefined();

    // carol, the last one who has not read, leaves: everyone who still counts has read it.
    await call(`/v1/groups/${group.id}/members/${carol}`, { method: "DELETE", token: await token(carol) });
    const read = await a.next("receipt");
    expect(read).toMatchObject({ chat: { group: group.id }, msgs: [msg], status: "read" });
    expect(read.by).toBeUndefined();
    expect((await detail()).map((r) => r.user)).toEqual([bob]);
    await sleep(100);
    expect(a.all("receipt")).toEqual([]);

    const notSender = await call(`/v1/groups/${group.id}/messages/${msg}/receipts`, { token: await token(bob) });
    expect(await errorCode(notSender)).toBe("forbidden");
  });

  it("a receipt changes only a counted member's status, once: what changed nothing settles nothing", async () => {
    const changed = await runInDurableObject(env.GROUPS.getByName(uid("g")), (_o, state) => {
      const sql = state.storage.sql;
      const receipts = new GroupReceipts(sql, new Outbox(sql, async () => [], () => {}), () => "g");
      receipts.posted("m1", 1, "alice", 1, ["bob", "carol"]);
      return [
        receipts.record("dave", ["m1"], "delivered", 2), // never counted (or left: leaving deletes the rows)
        receipts.record("bob", ["m1"], "delivered", 2),
        receipts.record("bob", ["m1"], "delivered", 3), // a retried hand-off
        receipts.record("bob", ["m1"], "read", 4),
        receipts.record("bob", ["m1"], "read", 5),
        receipts.record("carol", ["m1", "unknown"], "read", 6), // read implies delivered
        receipts.record("carol", ["m1"], "delivered", 7),
        sql.exec("SELECT user, delivered_at, read_at FROM msg_status ORDER BY user").toArray(),
      ];
    });
    expect(changed).toEqual([
      false,
      true,
      false,
      true,
      false,
      true,
      false,
      [
        { user: "bob", delivered_at: 2, read_at: 4 },
        { user: "carol", delivered_at: 6, read_at: 6 },
      ],
    ]);
  });

  it("a message that reaches a member after that member read past its id counts as read, and its sender still gets read", async () => {
    // Review of 2026-11-28: ids are stamped by each sender's object, so a post held up
    // in its sender's outbox reaches members after newer ones. A read that already
    // covered its id never marked it read, and its sender never got `read`.
    const [reader, carol, dave] = [uid("reader"), uid("carol"), uid("dave")];
    const group = await createGroup(await token(reader), "Late", [carol, dave]);
    const [r, c, d] = [await connect(reader), await connect(carol), await connect(dave)];
    // Dave's hand-offs to the group wait (as in a backoff after a failure): a row ahead of his post.
    const daveStub = env.USERS.getByName(dave);
    await runInDurableObject(daveStub, (_o, state) => {
      const now = Date.now();
      state.storage.sql.exec(
        "INSERT INTO outbox (target, op, payload, attempts, next_at, created_at) VALUES (?, 'media_release', '{\"msgs\":[]}', 1, ?, ?)",
        `group:${group.id}`,
        now + 60_000,
        now,
      );
    });
    d.send({ type: "send", id: "d1", to: { group: group.id }, text: "accepted first" });
    const early = await d.next("sent");
    await sleep(5);
    c.send({ type: "send", id: "c1", to: { group: group.id }, text: "accepted second" });
    const later = await c.next("sent");
    expect(early.msg < later.msg).toBe(true);
    const [first] = await groupMessages(r, group.id, 1);
    expect(first!.msg).toBe(later.msg);
    r.send({ type: "ack", seq: first!.seq });
    r.send({ type: "read", chat: { group: group.id }, upTo: later.msg });
    const readerStub = env.USERS.getByName(reader);
    const isRead = (msg: string) =>
      runInDurableObject(readerStub, (_o, state) => state.storage.sql.exec<{ read: number }>("SELECT read FROM received WHERE msg = ?", msg).toArray()[0]?.read);
    for (let i = 0; (await isRead(later.msg)) !== 1; i++) {
      if (i > 100) throw new Error("read not applied");
      await sleep(20);
    }

    await runInDurableObject(daveStub, (_o, state) => state.storage.sql.exec("UPDATE outbox SET next_at = 0"));
    await runDurableObjectAlarm(daveStub);
    const late = await r.next("message", (m) => m.msg === early.msg);
    expect(late.seq).toBeGreaterThan(first!.seq);
    r.send({ type: "ack", seq: late.seq });
    const m = await c.next("message", (f) => f.msg === early.msg);
    c.send({ type: "ack", seq: m.seq });
    c.send({ type: "read", chat: { group: group.id }, upTo: early.msg });
    expect(await d.next("receipt", (f) => f.status === "read")).toMatchObject({ msgs: [early.msg], chat: { group: group.id } });
  });

  it("members' receipts arriving together are committed together: each is answered, a hand-off that throws fails alone, the sender gets one delivered", async () => {
    const alice = uid("alice");
    const members = users("rcpt", 30);
    const group = await createGroup(await token(alice), "Group commit", members);
    const a = await connect(alice);
    a.send({ type: "send", id: "gc1", to: { group: group.id }, text: "everyone at once" });
    const { msg } = await a.next("sent");
    const stub = env.GROUPS.getByName(group.id);
    for (let i = 0; i < 100 && !(await runInDurableObject(stub, (_o, s) => s.storage.sql.exec("SELECT 1 FROM messages WHERE msg = ?", msg).toArray().length > 0)); i++) await sleep(20);
    const receipt = (user: string) => [{ op: "receipt", payload: { msgs: [msg], status: "delivered", by: user, ts: Date.now() } }];

    // The first call's commit is under way while the others arrive: they share the next batch,
    // and one of them carries a post whose payload makes the group throw.
    const first = stub.handoff(group.id, `user:${members[0]}`, receipt(members[0]!));
    const rest = members.slice(1).map((m) => stub.handoff(group.id, `user:${m}`, receipt(m)));
    const broken = stub.handoff(group.id, `user:${members[1]}`, [{ op: "post", payload: null }]);
    const settled = await Promise.allSettled([first, ...rest, broken]);
    expect(settled.slice(0, -1).map((r) => r.status === "fulfilled" && r.value)).toEqual(members.map(() => [{ ok: true }]));
    expect(settled.at(-1)).toMatchObject({ status: "rejected", reason: expect.objectContaining({ message: expect.stringContaining("null") }) });

    const delivered = await a.next("receipt");
    expect(delivered).toMatchObject({ chat: { group: group.id }, msgs: [msg], status: "delivered" });
    const res = await call(`/v1/groups/${group.id}/messages/${msg}/receipts`, { token: await token(alice) });
    const view = MemberReceipt.array().parse(await res.json());
    expect(view).toHaveLength(30);
    expect(view.every((r) => r.deliveredAt !== undefined)).toBe(true);
    await sleep(100);
    expect(a.all("receipt")).toEqual([]);
  });

  it("evicting the group object in the middle of a fan-out to offline members still delivers every message exactly once when they connect", async () => {
    const alice = uid("alice");
    const members = users("off", 20);
    const group = await createGroup(await token(alice), "Offline", members);
    await waitDrained(group.id);
    const stub = env.GROUPS.getByName(group.id);
    // Three members' objects fail their first hand-offs, so the fan-out is
    // surely unfinished when the object goes (eviction also clears the injection).
    for (const m of members.slice(0, 3)) expect(await stub.failNextHandoffs(m, 100)).toBe(true);

    const a = await connect(alice);
    const ids = ["e1", "e2", "e3", "e4", "e5"];
    for (const id of ids) a.send({ type: "send", id, to: { group: group.id }, text: id });
    for (const id of ids) await a.next("sent", (f) => f.id === id);
    for (let i = 0; ; i++) {
      const posted = await runInDurableObject(stub, (_o, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM messages").one().n);
      if (posted === ids.length) break;
      if (i > 200) throw new Error("posts did not reach the group");
      await sleep(10);
    }
    const pendingAtEviction = await outboxRows(env.GROUPS.getByName(group.id));
    expect(pendingAtEviction).toBeGreaterThan(0);
    await evictDurableObject(stub);
    await waitDrained(group.id);

    const orders = new Set<string>();
    for (const m of members) {
      const s = await connect(m);
      const got = s.all("message").filter((f) => "group" in f.chat && f.chat.group === group.id);
      expect(got.map((f) => f.text).sort()).toEqual(ids);
      expect(new Set(got.map((f) => f.msg)).size).toBe(ids.length);
      orders.add(got.map((f) => f.text).join(","));
      s.close();
    }
    expect(orders.size).toBe(1);
  });

  it("a member's object failing delivery is retried by the alarm without duplicating anyone's copy", async () => {
    const [alice, bob, carol, dave] = [uid("alice"), uid("bob"), uid("carol"), uid("dave")];
    const group = await createGroup(await token(alice), "Flaky", [bob, carol, dave]);
    await waitDrained(group.id);
    const aPhone = await connect(alice, "phone");
    const aLaptop = await connect(alice, "laptop");
    const b = await connect(bob);
    const c = await connect(carol);
    const d = await connect(dave);
    const stub = env.GROUPS.getByName(group.id);
    // carol's object is unreachable; dave's object takes the hand-off but the reply is lost.
    expect(await stub.failNextHandoffs(carol, 1, "before")).toBe(true);
    expect(await stub.failNextHandoffs(dave, 1, "after")).toBe(true);
    aPhone.send({ type: "send", id: "f1", to: { group: group.id }, text: "f1" });
    aPhone.send({ type: "send", id: "f2", to: { group: group.id }, text: "f2" });

    expect((await groupMessages(b, group.id, 2)).map((m) => m.text)).toEqual(["f1", "f2"]);
    expect(c.all("message")).toEqual([]);
    // The retry, about 1 s later, comes from the alarm: carol gets both, in order.
    expect((await groupMessages(c, group.id, 2, 10_000)).map((m) => m.text)).toEqual(["f1", "f2"]);
    await waitDrained(group.id);
    expect((await groupMessages(d, group.id, 2)).map((m) => m.text)).toEqual(["f1", "f2"]);
    expect((await groupMessages(aLaptop, group.id, 2)).map((m) => m.text)).toEqual(["f1", "f2"]);
    await sleep(100);
    for (const s of [b, c, d, aLaptop, aPhone]) expect(s.all("message")).toEqual([]);
  });

  it("a member of many groups who is offline gets every group's messages when it connects", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const tokA = await token(alice);
    const groups = [];
    for (let i = 0; i < 8; i++) groups.push(await createGroup(tokA, `g${i}`, [bob]));
    const a = await connect(alice);
    for (const g of groups) for (const n of [1, 2]) a.send({ type: "send", id: `${g.id}-${n}`, to: { group: g.id }, text: `${g.name}-${n}` });
    for (let i = 0; i < groups.length * 2; i++) await a.next("sent");
    for (const g of groups) await waitDrained(g.id);

    const b = await connect(bob);
    for (const g of groups) {
      const got = b.all("message").filter((m) => "group" in m.chat && m.chat.group === g.id);
      expect(got.map((m) => m.text)).toEqual([`${g.name}-1`, `${g.name}-2`]);
    }
    const list = GroupList.parse(await (await call("/v1/groups", { token: await token(bob) })).json());
    expect(list.groups.map((g) => g.id).sort()).toEqual(groups.map((g) => g.id).sort());
  });
  // Last: the fan-out to 200 new member objects keeps the disk busy after the test passes.
  it("the 201st member is refused, a batch across the cap is refused whole, and concurrent adds never pass 200", async () => {
    const alice = uid("alice");
    const tokA = await token(alice);
    const tooMany = await call("/v1/groups", { method: "POST", token: tokA, json: { name: "Huge", members: users("m", MAX_GROUP_MEMBERS) } });
    expect(tooMany.status).toBe(409);
    expect(await errorCode(tooMany)).toBe("group_full");

    const group = await createGroup(tokA, "Big", users("m", MAX_GROUP_MEMBERS - 3));
    expect(group.members).toHaveLength(MAX_GROUP_MEMBERS - 2);
    const add = (list: string[]) => call(`/v1/groups/${group.id}/members`, { method: "POST", token: tokA, json: { users: list } });

    const across = await add(users("n", 3));
    expect(across.status).toBe(409);
    expect(await errorCode(across)).toBe("group_full");
    expect(await getGroup(tokA, group.id)).toEqual(group);

    // Two batches of 2 race for the last 2 places: exactly one wins, whole.
    const [p, q] = [users("p", 2), users("q", 2)];
    const [r1, r2] = await Promise.all([add(p), add(q)]);
    expect([r1.status, r2.status].sort()).toEqual([200, 409]);
    const full = await getGroup(tokA, group.id);
    const winners = r1.status === 200 ? p : q;
    expect(full.members.map((m) => m.user)).toEqual([...group.members.map((m) => m.user), ...winners]);
    expect(full.members).toHaveLength(MAX_GROUP_MEMBERS);

    const the201st = await add([uid("late")]);
    expect(the201st.status).toBe(409);
    expect(await errorCode(the201st)).toBe("group_full");
    // Adding people who are already members is a no-op, even in a full group.
    const again = await add([group.members[5]!.user, alice]);
    expect(again.status).toBe(200);
    expect(GroupView.parse(await again.json())).toEqual(full);
    // Every member is told it was added; nothing is left in flight when the file's runtime stops.
    await waitDrained(group.id, 30_000);
  });
});
