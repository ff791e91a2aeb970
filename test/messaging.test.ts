// One-to-one chat as a client sees it: delivery, receipts, devices, replay.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { UserObject } from "../src/objects/UserObject";
import { call, connect, open, sleep, token, uid } from "./helpers";

describe("one-to-one chat", () => {
  it("two connected users exchange messages and the sender sees sent, delivered, read in that order", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const b = await connect(bob);
    a.send({ type: "send", id: "m1", to: { user: bob }, text: "hello bob" });
    const sent = await a.next("sent");
    expect(sent.id).toBe("m1");
    const msg = await b.next("message");
    expect(msg).toMatchObject({ msg: sent.msg, id: "m1", from: alice, chat: { user: alice }, text: "hello bob", ts: sent.ts });
    b.send({ type: "ack", seq: msg.seq });
    const delivered = await a.next("receipt");
    expect(delivered).toMatchObject({ status: "delivered", msgs: [sent.msg], chat: { user: bob }, by: bob });
    b.send({ type: "read", chat: { user: alice }, upTo: msg.msg });
    const read = await a.next("receipt", (r) => r.status === "read");
    expect(read.msgs).toEqual([sent.msg]);
    expect(read.seq).toBeGreaterThan(delivered.seq);

    // And back the other way.
    b.send({ type: "send", id: "r1", to: { user: alice }, text: "hi alice" });
    await b.next("sent");
    const reply = await a.next("message");
    expect(reply).toMatchObject({ from: bob, chat: { user: bob }, text: "hi alice" });
  });

  it("20 messages to an offline user arrive in order when they connect, then synced", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      a.send({ type: "send", id: `m${i}`, to: { user: bob }, text: `message ${i}` });
      sent.push((await a.next("sent", (f) => f.id === `m${i}`)).msg);
    }
    await sleep(100); // let the outbox hand them over
    const b = await open(bob, "phone");
    const hello = await b.next("hello");
    expect(hello.head).toBe(20);
    const got = [];
    for (let i = 0; i < 20; i++) got.push(await b.next("message"));
    expect(got.map((m) => m.text)).toEqual(sent.map((_, i) => `message ${i}`));
    expect(got.map((m) => m.msg)).toEqual(sent);
    expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const synced = await b.next("synced");
    expect(synced.head).toBe(20);
    // synced comes after every replayed entry
    expect(b.frames.length).toBe(0);
  });

  it("a resend after a dropped socket is stored and delivered once", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const b = await connect(bob);
    const a1 = await connect(alice);
    a1.send({ type: "send", id: "dup-1", to: { user: bob }, text: "once" });
    a1.close(); // dropped before reading `sent`
    const a2 = await connect(alice);
    a2.send({ type: "send", id: "dup-1", to: { user: bob }, text: "once" });
    const sent = await a2.next("sent");
    const first = await b.next("message");
    expect(first.msg).toBe(sent.msg);
    await sleep(300);
    expect(b.all("message")).toHaveLength(0);
    // A third try after the fact answers the same sent frame.
    a2.send({ type: "send", id: "dup-1", to: { user: bob }, text: "once" });
    expect(await a2.next("sent")).toEqual(sent);
  });

  it("reusing a client id for other content is an id_conflict and stores nothing", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const b = await connect(bob);
    a.send({ type: "send", id: "x", to: { user: bob }, text: "first" });
    await a.next("sent");
    a.send({ type: "send", id: "x", to: { user: bob }, text: "second" });
    const err = await a.next("error");
    expect(err).toMatchObject({ code: "id_conflict", ref: "x" });
    await b.next("message", (m) => m.text === "first");
    await sleep(200);
    expect(b.all("message")).toHaveLength(0);
  });

  it("a send written behind one the server did not take (after) is refused out_of_order, stores nothing, and is taken once it comes again", async () => {
    // Addition (docs/PROTOCOL.md): without `after`, a send pipelined behind one that drew an
    // error the client retries was taken first, and the chat showed them swapped.
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const b = await connect(bob);
    a.send({ type: "send", id: "o1", to: { user: bob }, media: { id: "no-such-upload", type: "image/jpeg", size: 10 } });
    expect(await a.next("error")).toMatchObject({ code: "bad_media", ref: "o1" });
    a.send({ type: "send", id: "o2", to: { user: bob }, text: "second", after: "o1" });
    const refused = await a.next("error");
    expect(refused).toMatchObject({ code: "out_of_order", ref: "o2" });
    expect(refused.message).toContain("o1");
    // o1 failed for good: o2 comes again without it, then o3 behind o2, which is taken now.
    a.send({ type: "send", id: "o2", to: { user: bob }, text: "second" });
    const sent2 = await a.next("sent");
    a.send({ type: "send", id: "o3", to: { user: bob }, text: "third", after: "o2" });
    const sent3 = await a.next("sent");
    expect([sent2.id, sent3.id]).toEqual(["o2", "o3"]);
    // A stored send sent again is answered as before, whatever it names in `after`.
    a.send({ type: "send", id: "o3", to: { user: bob }, text: "third", after: "never-sent" });
    expect(await a.next("sent")).toEqual(sent3);
    a.send({ type: "send", id: "o4", to: { user: bob }, text: "self", after: "o4" });
    const self = await a.next("error");
    expect(self).toMatchObject({ code: "bad_frame", ref: "o4" });
    expect(self.message).toContain("after");
    expect((await b.next("message")).id).toBe("o2");
    expect((await b.next("message")).id).toBe("o3");
    await sleep(200);
    expect(b.all("message")).toHaveLength(0);
  });

  it("two devices of the recipient both get everything and acks are per device", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const phone = await connect(bob, "phone");
    const laptop = await connect(bob, "laptop");
    for (let i = 0; i < 3; i++) a.send({ type: "send", id: `m${i}`, to: { user: bob }, text: `t${i}` });
    const onPhone = [await phone.next("message"), await phone.next("message"), await phone.next("message")];
    const onLaptop = [await laptop.next("message"), await laptop.next("message"), await laptop.next("message")];
    expect(onPhone.map((m) => m.seq)).toEqual(onLaptop.map((m) => m.seq));
    // The phone acks everything, the laptop only the first.
    phone.send({ type: "ack", seq: onPhone[2]!.seq });
    laptop.send({ type: "ack", seq: onLaptop[0]!.seq });
    // The first device to ack makes each message delivered, once.
    const receipt = await a.next("receipt");
    expect(receipt.msgs).toEqual(onPhone.map((m) => m.msg));
    await sleep(200);
    phone.close();
    laptop.close();
    // On reconnect the laptop is replayed what it did not ack; the phone nothing.
    const laptop2 = await open(bob, "laptop");
    await laptop2.next("hello");
    const replayed = [await laptop2.next("message"), await laptop2.next("message")];
    expect(replayed.map((m) => m.text)).toEqual(["t1", "t2"]);
    await laptop2.next("synced");
    const phone2 = await open(bob, "phone");
    await phone2.next("hello");
    await phone2.next("synced");
    expect(phone2.all("message")).toHaveLength(0);
    // No second delivered receipt came from the laptop's later acks.
    laptop2.send({ type: "ack", seq: replayed[1]!.seq });
    await sleep(200);
    expect(a.all("receipt")).toHaveLength(0);
  });

  it("the sender's second device sees its own sends, and the sending device does not get them back", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const phone = await connect(alice, "phone");
    const laptop = await connect(alice, "laptop");
    phone.send({ type: "send", id: "own-1", to: { user: bob }, text: "from my phone" });
    const sent = await phone.next("sent");
    const copy = await laptop.next("message");
    expect(copy).toMatchObject({ msg: sent.msg, id: "own-1", from: alice, chat: { user: bob }, text: "from my phone" });
    await sleep(200);
    expect(phone.all("message")).toHaveLength(0);
    // A device that was offline gets the copy on connect too.
    const tablet = await open(alice, "tablet");
    await tablet.next("hello");
    expect((await tablet.next("message")).msg).toBe(sent.msg);
    await tablet.next("synced");
  });

  it("receipts reach every device of the sender and each status is reported once", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a1 = await connect(alice, "phone");
    const a2 = await connect(alice, "laptop");
    const b = await connect(bob);
    a1.send({ type: "send", id: "m", to: { user: bob }, text: "x" });
    const sent = await a1.next("sent");
    const m = await b.next("message");
    b.send({ type: "read", chat: { user: alice }, upTo: m.msg });
    b.send({ type: "ack", seq: m.seq });
    b.send({ type: "read", chat: { user: alice }, upTo: m.msg });
    for (const dev of [a1, a2]) {
      const r = await dev.next("receipt");
      expect(r).toMatchObject({ status: "read", msgs: [sent.msg] });
    }
    await sleep(300);
    // read implies delivered: no delivered receipt after it, and no second read.
    expect(a1.all("receipt")).toHaveLength(0);
    expect(a2.all("receipt")).toHaveLength(0);
  });

  it("reading on one device tells the user's other devices", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const phone = await connect(bob, "phone");
    const laptop = await connect(bob, "laptop");
    a.send({ type: "send", id: "m", to: { user: bob }, text: "x" });
    const m = await phone.next("message");
    await laptop.next("message");
    phone.send({ type: "read", chat: { user: alice }, upTo: m.msg });
    const ev = await laptop.next("event");
    expect(ev).toMatchObject({ chat: { user: alice }, event: { kind: "read", upTo: m.msg } });
    await sleep(200);
    expect(phone.all("event")).toHaveLength(0);
  });

  it("ping is answered with pong", async () => {
    const s = await connect(uid("pinger"));
    s.send("ping");
    const deadline = Date.now() + 2000;
    while (!s.raw.includes("pong") && Date.now() < deadline) await sleep(20);
    expect(s.raw).toContain("pong");
  });

  it("a second socket for the same device replaces the first with 4000", async () => {
    const alice = uid("alice");
    const first = await connect(alice, "phone");
    const second = await connect(alice, "phone");
    expect((await first.waitClosed()).code).toBe(4000);
    second.send("ping");
    expect(second.closed).toBeNull();
  });

  it("a late attempt its client already gave up (a lower conn) is closed with 4000 and the live socket keeps the device", async () => {
    // Found by faults/flaky-library.test.mjs: an upgrade the client abandoned before its hello
    // reached the server after the client's next socket and replaced it there (docs/PROTOCOL.md).
    const alice = uid("alice");
    const bob = uid("bob");
    const b = await connect(bob);
    const live = await open(alice, "phone", undefined, {}, { conn: "1700000000002" });
    await live.next("synced");
    const late = await open(alice, "phone", undefined, {}, { conn: "1700000000001" });
    expect(await late.waitClosed()).toEqual({ code: 4000, reason: "a newer connection of this device is open" });
    expect(late.all("hello")).toHaveLength(0);
    live.send({ type: "send", id: "after-late", to: { user: bob }, text: "still here" });
    await live.next("sent", (f) => f.id === "after-late");
    expect((await b.next("message")).text).toBe("still here");
    expect(live.closed).toBeNull();
    // A higher number (the client's next socket, or another tab) replaces it as before,
    // and so does an attempt without one (a client that does not send it).
    const next = await open(alice, "phone", undefined, {}, { conn: "1700000000003" });
    await next.next("synced");
    expect((await live.waitClosed()).code).toBe(4000);
    const plain = await connect(alice, "phone");
    expect((await next.waitClosed()).code).toBe(4000);
    plain.send("ping");
    expect(plain.closed).toBeNull();
    for (const bad of ["x", "-1", "1.5", "12345678901234567"]) {
      const res = await call(`/v1/connect?device=phone&conn=${encodeURIComponent(bad)}`, { token: await token(alice), headers: { Upgrade: "websocket" } });
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "bad_frame", message: expect.stringContaining("conn") });
    }
    expect(plain.closed).toBeNull();
  });

  it("frames a replaced socket delivers late are dropped, so resends on the new socket keep their order", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const b = await connect(bob);
    await connect(alice, "phone");
    // Keep the server side of the first socket, as the runtime would hand it a straggling frame.
    const stale = await runInDurableObject(env.USERS.getByName(alice), (_obj, state) => state.getWebSockets("phone")[0]!);
    const fresh = await connect(alice, "phone"); // replaces the first socket (closed by the server with 4000)
    fresh.send({ type: "send", id: "late-1", to: { user: bob }, text: "first" });
    await fresh.next("sent", (f) => f.id === "late-1");
    // A frame the client wrote on the old socket before it noticed arrives now.
    const taken = await runInDurableObject(env.USERS.getByName(alice), async (obj: UserObject, state) => {
      expect(state.getWebSockets("phone")).not.toContain(stale);
      await obj.webSocketMessage(stale, JSON.stringify({ type: "send", id: "late-2", to: { user: bob }, text: "second" }));
      return state.storage.sql.exec("SELECT id FROM sent_ids ORDER BY ts").toArray().map((r) => r.id);
    });
    expect(taken).toEqual(["late-1"]);
    fresh.send({ type: "send", id: "late-2", to: { user: bob }, text: "second" });
    await fresh.next("sent", (f) => f.id === "late-2");
    expect([(await b.next("message")).text, (await b.next("message")).text]).toEqual(["first", "second"]);
    await sleep(200);
    expect(b.all("message")).toHaveLength(0);
  });

  it("a sixth device at once is refused with 4009 while the five keep working", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const devices = [];
    for (let i = 0; i < 5; i++) devices.push(await connect(alice, `d${i}`));
    const sixth = await open(alice, "d5");
    expect((await sixth.waitClosed()).code).toBe(4009);
    const b = await connect(bob);
    b.send({ type: "send", id: "hi", to: { user: alice }, text: "hi" });
    for (const d of devices) expect((await d.next("message")).text).toBe("hi");
  });
});
