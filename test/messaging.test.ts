import { describe, expect, it } from "vitest";
import { connect, uid } from "./helpers";

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
    expect(delivered).toMatchObject({ status: "delivered", msgs: [sent.msg], chat: { user: bob } });
    b.send({ type: "read", chat: { user: alice }, upTo: msg.msg });
    const read = await a.next("receipt", (r) => r.status === "read");
    expect(read.msgs).toEqual([sent.msg]);
    expect(read.seq).toBeGreaterThan(delivered.seq);
  });
});
