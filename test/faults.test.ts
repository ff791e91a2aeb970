// Evictions and hard resets injected between every step of a one-to-one send:
// the message, its `sent` and its `delivered` each reach the client exactly
// once. The client is a careful app (test/reliable.ts): it reconnects, resends
// unconfirmed sends with the same id and re-sends its ack position.
import { abortAllDurableObjects, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sleep, token, uid, waitOutboxesEmpty } from "./helpers";
import { ReliableDevice, until } from "./reliable";

const STEPS = [
  "before the send",
  "right after the send is written",
  "after `sent` arrived",
  "after the message reached Bob",
  "right after Bob's ack is written",
  "after `delivered` reached Alice",
  "right after Alice acks the receipt",
] as const;

type Fault = "evict Alice's object" | "evict Bob's object" | "evict both objects" | "hard-reset every object";
const FAULTS: Fault[] = ["evict Alice's object", "evict Bob's object", "evict both objects", "hard-reset every object"];

async function inject(fault: Fault, alice: string, bob: string): Promise<void> {
  const a = env.USERS.getByName(alice);
  const b = env.USERS.getByName(bob);
  if (fault === "evict Alice's object") await evictDurableObject(a);
  else if (fault === "evict Bob's object") await evictDurableObject(b);
  else if (fault === "evict both objects") {
    await evictDurableObject(a);
    await evictDurableObject(b);
  } else await abortAllDurableObjects();
}

const rowCount = (user: string, sql: string, ...binds: unknown[]) =>
  runInDurableObject(env.USERS.getByName(user), (_o, state) => state.storage.sql.exec(sql, ...binds).toArray().length);

describe("evictions between every step of a one-to-one send", () => {
  for (const fault of FAULTS) {
    for (let at = 0; at < STEPS.length; at++) {
      it(`${fault} ${STEPS[at]}: message, sent and delivered arrive exactly once`, async () => {
        const aliceId = uid("alice");
        const bobId = uid("bob");
        const alice = new ReliableDevice(aliceId, "phone", await token(aliceId), false);
        const bob = new ReliableDevice(bobId, "phone", await token(bobId), false);
        const both = [alice, bob];
        await alice.connect();
        await bob.connect();
        const step = async (i: number) => {
          if (i === at) await inject(fault, aliceId, bobId);
        };
        const key = `${aliceId}|m1`;

        await step(0);
        alice.send({ user: bobId }, "m1", "exactly once, please");
        await step(1);
        await until(both, () => alice.sent.has("m1"), "sent");
        await step(2);
        await until(both, () => bob.seen.has(key), "the message at Bob");
        await step(3);
        bob.ack();
        await step(4);
        const msg = alice.sent.get("m1")!;
        await until(both, () => alice.delivered.has(msg), "delivered at Alice");
        await step(5);
        alice.ack();
        await step(6);

        // Settle, then reconnect both devices (the same app state: seqs held are
        // dropped on replay, as the protocol asks) and look again.
        await until(both, () => both.every((d) => !d.closed), "sockets back");
        await sleep(200);
        for (const d of both) {
          d.ws?.close(1000, "reconnect");
          d.closed = true;
        }
        await until(both, () => both.every((d) => d.synced), "reconnected");
        await sleep(200);

        // Exactly once: one message entry at Bob, one delivered entry at Alice, whatever was replayed.
        expect([...bob.seen]).toEqual([[key, 1]]);
        expect([...alice.delivered]).toEqual([[msg, 1]]);
        expect(alice.sent.get("m1")).toBe(msg);
        for (const d of both) {
          expect(d.violations).toEqual([]);
          expect(d.errors).toEqual([]);
        }
        // Stored once: one received row at Bob, one delivered mark at Alice, nothing left to hand over.
        expect(await rowCount(bobId, "SELECT 1 FROM received WHERE msg = ?", msg)).toBe(1);
        expect(await rowCount(aliceId, "SELECT 1 FROM outgoing WHERE msg = ? AND delivered_at IS NOT NULL", msg)).toBe(1);
        await waitOutboxesEmpty([env.USERS.getByName(aliceId), env.USERS.getByName(bobId)], 5_000);
        for (const d of both) d.close();
      });
    }
  }
});

type OutboxRow = { target: string; op: string; payload: string };

/** The caller's pending hand-offs (held back by a failure injected at the callee). */
async function pendingHandoffs(caller: string): Promise<OutboxRow[]> {
  const deadline = Date.now() + 15_000; // generous: the whole suite shares 2 cores
  for (;;) {
    const rows = await runInDurableObject(env.USERS.getByName(caller), (_o, state) =>
      state.storage.sql.exec<OutboxRow>("SELECT target, op, payload FROM outbox ORDER BY id").toArray(),
    );
    if (rows.length > 0 || Date.now() > deadline) return rows;
    await sleep(20);
  }
}

/** The caller "forgets" it finished these hand-offs (as if reset before deleting its rows) and runs them again. */
async function repeatHandoffs(caller: string, rows: OutboxRow[]): Promise<void> {
  await runInDurableObject(env.USERS.getByName(caller), (_o, state) => {
    for (const r of rows) {
      state.storage.sql.exec("INSERT INTO outbox (target, op, payload, next_at, created_at) VALUES (?, ?, ?, 0, 0)", r.target, r.op, r.payload);
    }
  });
  await runDurableObjectAlarm(env.USERS.getByName(caller));
}

/** Alice and Bob, one connected phone each. */
async function connectedPair() {
  const aliceId = uid("alice");
  const bobId = uid("bob");
  const alice = new ReliableDevice(aliceId, "phone", await token(aliceId));
  const bob = new ReliableDevice(bobId, "phone", await token(bobId));
  await alice.connect();
  await bob.connect();
  return { aliceId, bobId, alice, bob };
}

describe("hand-offs repeated after the caller lost track of them", () => {
  it("a message handed to Bob's object twice is stored and shown once", async () => {
    const { aliceId, bobId, alice, bob } = await connectedPair();
    await env.USERS.getByName(bobId).failNextHandoffs(1);
    alice.send({ user: bobId }, "m1", "twice handed, once shown");
    const rows = await pendingHandoffs(aliceId);
    expect(rows.map((r) => r.op)).toEqual(["deliver"]);
    await until([alice, bob], () => bob.seen.has(`${aliceId}|m1`), "the message (after the retry)", 15_000);
    await repeatHandoffs(aliceId, rows);
    await sleep(300);
    expect([...bob.seen]).toEqual([[`${aliceId}|m1`, 1]]);
    expect(await rowCount(bobId, "SELECT 1 FROM inbox WHERE msg = ?", alice.sent.get("m1"))).toBeLessThanOrEqual(1);
    expect(await rowCount(bobId, "SELECT 1 FROM received")).toBe(1);
    // ...and the repeated hand-off was accepted (not left failing in Alice's outbox).
    expect(await rowCount(aliceId, "SELECT 1 FROM outbox")).toBe(0);
    alice.close();
    bob.close();
  });

  it("a delivered receipt handed to Alice's object twice is reported once", async () => {
    const { aliceId, bobId, alice, bob } = await connectedPair();
    alice.send({ user: bobId }, "m1", "one tick, then two, once");
    await until([alice, bob], () => alice.sent.has("m1"), "sent");
    await env.USERS.getByName(aliceId).failNextHandoffs(1);
    await until([alice, bob], () => bob.seen.has(`${aliceId}|m1`), "the message"); // Bob acks it at once
    const rows = await pendingHandoffs(bobId);
    expect(rows.map((r) => r.op)).toEqual(["receipt"]);
    const msg = alice.sent.get("m1")!;
    await until([alice, bob], () => alice.delivered.has(msg), "delivered (after the retry)", 15_000);
    await repeatHandoffs(bobId, rows);
    await sleep(300);
    expect([...alice.delivered]).toEqual([[msg, 1]]);
    // The row handed over is deleted with Bob's next write or by his backstop alarm (5 s):
    // at once when the alarm did the retry, up to 5 s later when a drain of his own did it.
    for (let i = 0; i < 80 && (await rowCount(bobId, "SELECT 1 FROM outbox")) > 0; i++) await sleep(100);
    expect(await rowCount(bobId, "SELECT 1 FROM outbox")).toBe(0);
    expect([...alice.delivered]).toEqual([[msg, 1]]);
    alice.close();
    bob.close();
  });
});
