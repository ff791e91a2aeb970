// The client library (src/client) against the real server, inside workerd: its
// socket factory upgrades through exports.default.fetch, and a tap on every
// socket lets the tests close it mid-stream like a network failure would.
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ApiError, ChatClient, MemoryStore, backoffDelay, type ClientStore, type MessageStatus, type SocketLike } from "../src/client";
import { BASE, connect, token, uid } from "./helpers";

interface Tapped {
  sockets: WebSocket[];
  frames: string[];
  offline: boolean;
}

function socketFactory(tap: Tapped) {
  return async (url: string): Promise<SocketLike> => {
    if (tap.offline) throw new Error("offline");
    const u = new URL(url);
    u.protocol = "https:";
    const res = await exports.default.fetch(new Request(u.toString(), { headers: { Upgrade: "websocket" } }));
    if (res.status !== 101 || !res.webSocket) throw new Error(`connect failed: ${res.status}`);
    const ws = res.webSocket;
    tap.sockets.push(ws);
    // Attached before the client's listeners and before accept(): sees every frame.
    ws.addEventListener("message", (ev: MessageEvent) => {
      tap.frames.push(ev.data as string);
    });
    return ws as unknown as SocketLike;
  };
}

async function makeClient(user: string, opts: { store?: ClientStore; device?: string; offline?: boolean; ackDelayMs?: number } = {}) {
  const tap: Tapped = { sockets: [], frames: [], offline: opts.offline ?? false };
  const tok = await token(user);
  const client = new ChatClient({
    baseUrl: BASE,
    user,
    token: tok,
    device: opts.device ?? "web",
    store: opts.store ?? new MemoryStore(),
    socketFactory: socketFactory(tap),
    fetch: (req) => exports.default.fetch(req),
    backoff: { baseMs: 20, maxMs: 200 },
    ...(opts.ackDelayMs !== undefined ? { ackDelayMs: opts.ackDelayMs } : {}),
  });
  return { client, tap };
}

async function until(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function online(c: ChatClient): Promise<void> {
  await until(`${c.user} online`, () => c.connectionState === "online");
}

describe("client library", () => {
  it("a socket closed in the middle of 50 sends loses and duplicates nothing, on either side", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    // A second device of Bob that never acks: it sees every stored copy exactly as the server holds it.
    const audit = await connect(bob, "audit");
    const A = await makeClient(alice);
    const B = await makeClient(bob);
    await A.client.start();
    await B.client.start();
    await online(A.client);
    await online(B.client);

    let bobDropped = false;
    B.client.on("message", () => {
      if (!bobDropped && B.client.messages({ user: alice }).length === 10) {
        bobDropped = true;
        B.tap.sockets.at(-1)!.close(1000, "network went away");
      }
    });
    for (let i = 0; i < 50; i++) {
      A.client.send({ user: bob }, { text: `m${i}` });
      await A.client.flush(); // on the wire now, so the close below lands mid-stream
      if (i === 25) A.tap.sockets.at(-1)!.close(1000, "network went away");
    }

    await until("all 50 sent", () => A.client.pendingSends().length === 0 && A.client.messages({ user: bob }).every((m) => m.status !== "pending"));
    await until("bob has 50", () => B.client.messages({ user: alice }).length === 50);
    await until("audit device has 50", () => audit.all("message").length >= 50);
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would show up by now

    expect(A.tap.sockets.length).toBeGreaterThanOrEqual(2);
    expect(B.tap.sockets.length).toBeGreaterThanOrEqual(2);
    expect(bobDropped).toBe(true);
    const texts = B.client.messages({ user: alice }).map((m) => m.text);
    expect(texts).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    const mine = A.client.messages({ user: bob });
    expect(mine.map((m) => m.text)).toEqual(texts);
    expect(new Set(mine.map((m) => m.msg)).size).toBe(50);
    // Stored once each: the never-acking device got exactly 50 message frames, in order.
    const stored = audit.all("message");
    expect(stored.map((m) => m.text)).toEqual(texts);
    expect(stored.map((m) => m.msg)).toEqual(mine.map((m) => m.msg));
    await A.client.stop();
    await B.client.stop();
    audit.close();
  });

  it("an own message goes pending, sent, delivered, read as Bob comes online and opens the chat", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await makeClient(alice);
    const B = await makeClient(bob);
    await A.client.start();
    await online(A.client);

    const seen: MessageStatus[] = [];
    A.client.on("messageUpdated", ({ message }) => {
      if (message.status && seen.at(-1) !== message.status) seen.push(message.status);
    });
    const m = A.client.send({ user: bob }, { text: "are you there?" });
    seen.push(m.status!);
    await until("sent", () => seen.includes("sent"));
    expect(A.client.message(m.key)?.msg).toMatch(/^[0-9a-z]+$/);

    await B.client.start(); // Bob was offline: the replay delivers it and his ack ticks it twice
    await until("delivered", () => seen.includes("delivered"));
    expect(B.client.conversation({ user: alice }).unread).toBe(1);
    expect(B.client.messages({ user: alice })[0]).toMatchObject({ text: "are you there?", msg: A.client.message(m.key)!.msg, mine: false });

    B.client.openChat({ user: alice });
    await until("read", () => seen.includes("read"));
    expect(seen).toEqual(["pending", "sent", "delivered", "read"]);
    expect(B.client.conversation({ user: alice }).unread).toBe(0);
    await A.client.stop();
    await B.client.stop();
  });

  it("sends made offline are kept in the store across a restart and flushed, in order, once connected", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const store = new MemoryStore();
    const A = await makeClient(alice, { store, offline: true });
    const states: string[] = [];
    A.client.on("connection", (e) => states.push(e.state));
    await A.client.start();
    const queued = ["one", "two", "three"].map((text) => A.client.send({ user: bob }, { text }));
    await A.client.flush();
    await until("a few failed attempts", () => states.filter((s) => s === "offline").length >= 3);
    expect(queued.map((m) => A.client.message(m.key)?.status)).toEqual(["pending", "pending", "pending"]);
    await A.client.stop();

    // A reload: a new client on the same store still holds the queue.
    const A2 = await makeClient(alice, { store, offline: true });
    await A2.client.start();
    expect(A2.client.pendingSends()).toEqual(queued.map((m) => m.id));
    expect(A2.client.messages({ user: bob }).map((m) => m.text)).toEqual(["one", "two", "three"]);

    const B = await makeClient(bob);
    await B.client.start();
    A2.tap.offline = false;
    A2.client.reconnectNow();
    await until("queue flushed", () => A2.client.pendingSends().length === 0);
    await until("bob has them", () => B.client.messages({ user: alice }).length === 3);
    expect(B.client.messages({ user: alice }).map((m) => m.text)).toEqual(["one", "two", "three"]);
    expect(A2.client.messages({ user: bob }).map((m) => m.status)).toEqual(["sent", "sent", "sent"]);
    await A2.client.stop();
    await B.client.stop();
  });

  it("a restarted client that never acked gets the server's replay and shows no duplicates", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const store = new MemoryStore();
    const A = await makeClient(alice);
    // A long ack delay: Bob's client stores the messages but is stopped before it acks.
    const B = await makeClient(bob, { store, ackDelayMs: 60_000 });
    await A.client.start();
    await B.client.start();
    await online(A.client);
    await online(B.client);
    for (const text of ["a", "b", "c"]) A.client.send({ user: bob }, { text });
    await until("bob has 3", () => B.client.messages({ user: alice }).length === 3);
    await B.client.stop();
    expect(B.tap.frames.some((f) => f.includes('"type":"ack"'))).toBe(false);

    const B2 = await makeClient(bob, { store });
    let added = 0;
    B2.client.on("message", () => added++);
    await B2.client.start();
    await online(B2.client);
    const replayed = B2.tap.frames.filter((f) => f.startsWith('{"type":"message"'));
    expect(replayed.length).toBe(3); // the server did replay them...
    expect(added).toBe(0); // ...and the client dropped them by seq
    expect(B2.client.messages({ user: alice }).map((m) => m.text)).toEqual(["a", "b", "c"]);
    expect(B2.client.lastSeq).toBe(3);
    await A.client.stop();
    await B2.client.stop();
  });

  it("calls whose server side may be missing fail as ApiError and leave the client working", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await makeClient(alice);
    const B = await makeClient(bob);
    await A.client.start();
    await B.client.start();
    await online(A.client);
    await online(B.client);
    A.client.setForeground(true);
    A.client.openChat({ user: bob });
    A.client.typing({ user: bob });
    A.client.stopTyping({ user: bob });
    const group = await A.client.createGroup("trip", [bob]).then(
      (g) => g.id,
      (e: unknown) => e,
    );
    if (typeof group !== "string") expect(group).toBeInstanceOf(ApiError);
    const page = await A.client.loadOlder({ user: bob });
    expect(page.complete).toBe(true);
    expect(await A.client.api.me()).toMatchObject({ id: alice });
    // Still online, and messages still flow both ways.
    A.client.send({ user: bob }, { text: "still here" });
    await until("bob got it", () => B.client.messages({ user: alice }).length === 1);
    expect(A.client.connectionState).toBe("online");
    await A.client.stop();
    await B.client.stop();
  });

  it("reconnect delays double with jitter and stay under the cap", () => {
    const o = { baseMs: 100, maxMs: 5_000 };
    expect(backoffDelay(0, o, () => 0)).toBe(50);
    expect(backoffDelay(0, o, () => 1)).toBe(100);
    expect(backoffDelay(3, o, () => 0)).toBe(400);
    expect(backoffDelay(3, o, () => 1)).toBe(800);
    expect(backoffDelay(20, o, () => 1)).toBe(5_000);
    expect(backoffDelay(20, o, () => 0)).toBe(2_500);
  });
});
