// The client library (src/client) against the real server, inside workerd: its
// socket factory upgrades through worker.fetch, and a tap on every
// socket lets the tests close it mid-stream like a network failure would.
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ApiError, ChatClient, MemoryStore, backoffDelay, multipartUpload, singleUpload, type ClientStore, type MessageStatus, type SocketLike } from "../src/client";
import { BASE, connect, token, uid } from "./helpers";

// Typed here: Cloudflare.Exports only knows `default` once `wrangler types` has run.
const worker = (exports as unknown as { default: { fetch(req: Request): Promise<Response> } }).default;

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
    const res = await worker.fetch(new Request(u.toString(), { headers: { Upgrade: "websocket" } }));
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
    fetch: (req) => worker.fetch(req),
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

// ---- the parts of the protocol this server does not send yet --------------------
// A scripted server behind a fake socket: the client is the real one, the frames
// are what PROTOCOL.md says groups, presence, typing, edits and retention send.

class FakeSocket implements SocketLike {
  readyState = 1;
  readonly sent: Array<Record<string, unknown> | string> = [];
  private readonly listeners: Record<string, Array<(ev: never) => void>> = {};
  constructor(private readonly onAccept: (s: FakeSocket) => void) {}
  addEventListener(type: string, fn: (ev: never) => void): void {
    (this.listeners[type] ??= []).push(fn);
  }
  accept(): void {
    queueMicrotask(() => this.onAccept(this));
  }
  send(data: string): void {
    this.sent.push(data === "ping" ? data : (JSON.parse(data) as Record<string, unknown>));
  }
  close(code = 1000): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    for (const fn of this.listeners.close ?? []) (fn as (ev: { code: number; reason: string }) => void)({ code, reason: "" });
  }
  push(frame: Record<string, unknown>): void {
    for (const fn of this.listeners.message ?? []) (fn as (ev: { data: string }) => void)({ data: JSON.stringify(frame) });
  }
  frames(type: string): Array<Record<string, unknown>> {
    return this.sent.filter((f): f is Record<string, unknown> => typeof f === "object" && f.type === type);
  }
}

function scripted(
  user: string,
  opts: { head?: number; ephemeral?: ConstructorParameters<typeof ChatClient>[0]["ephemeral"]; store?: ClientStore; replay?: () => Array<Record<string, unknown>> } = {},
) {
  const sockets: FakeSocket[] = [];
  const client = new ChatClient({
    baseUrl: BASE,
    user,
    token: "not-checked-by-the-fake",
    device: "web",
    store: opts.store ?? new MemoryStore(),
    fetch: async () => new Response(JSON.stringify({ error: { code: "not_found", message: "no such route" } }), { status: 404 }),
    backoff: { baseMs: 10, maxMs: 50 },
    ackDelayMs: 5,
    ...(opts.ephemeral ? { ephemeral: opts.ephemeral } : {}),
    socketFactory: () => {
      const s = new FakeSocket((sock) => {
        sock.push({ type: "hello", protocol: 1, user, device: "web", head: opts.head ?? 0, serverTime: Date.now() });
        for (const f of opts.replay?.() ?? []) sock.push(f);
        sock.push({ type: "synced", head: opts.head ?? 0 });
      });
      sockets.push(s);
      return s;
    },
  });
  return { client, sockets, sock: () => sockets.at(-1)! };
}

describe("client library with a scripted server (frames of features still being built)", () => {
  it("group messages, receipts without `by`, renames, edits, deletes and retention changes are applied", async () => {
    const { client, sock } = scripted("alice");
    await client.start();
    await online(client);
    const g = { group: "g_1" };
    sock().push({ type: "event", seq: 1, chat: g, event: { kind: "created", by: "carol", name: "Trip" }, ts: 1000 });
    sock().push({ type: "message", seq: 2, msg: "0000001000000aaa", id: "c1", from: "carol", chat: g, ts: 1001, text: "hi all" });
    const mine = client.send(g, { text: "hello group" });
    await until("send on the wire", () => sock().frames("send").length === 1);
    sock().push({ type: "sent", id: mine.id, msg: "0000001002000bbb", ts: 1002 });
    sock().push({ type: "receipt", seq: 3, chat: g, msgs: ["0000001002000bbb"], status: "delivered", ts: 1003 });
    sock().push({ type: "event", seq: 4, chat: g, event: { kind: "renamed", by: "carol", name: "Trip 2027" }, ts: 1004 });
    sock().push({ type: "event", seq: 5, chat: g, event: { kind: "edited", msg: "0000001000000aaa", text: "hi everyone" }, ts: 1005 });
    sock().push({ type: "event", seq: 6, chat: g, event: { kind: "retention_changed", by: "carol", retention: "permanent", disappearAfterSeconds: 86400 }, ts: 1006 });
    sock().push({ type: "receipt", seq: 7, chat: g, msgs: ["0000001002000bbb"], status: "read", ts: 1007 });
    sock().push({ type: "event", seq: 8, chat: g, event: { kind: "deleted", msg: "0000001000000aaa" }, ts: 1008 });
    await until("acked through 8", () => sock().frames("ack").some((a) => a.seq === 8));

    const conv = client.conversation(g);
    expect(conv).toMatchObject({ title: "Trip 2027", retention: "permanent", disappearAfterSeconds: 86400, unread: 1 });
    const list = client.messages(g);
    expect(list.filter((m) => m.system).map((m) => m.system!.kind)).toEqual(["created", "renamed", "retention_changed"]);
    const carol = list.find((m) => m.from === "carol" && !m.system)!;
    expect(carol).toMatchObject({ deleted: true, edited: true });
    expect(carol.text).toBeUndefined();
    expect(client.message(mine.key)?.status).toBe("read");
    // Acks are batched: fewer ack frames than entries.
    expect(sock().frames("ack").length).toBeLessThan(8);
    await client.stop();
  });

  it("a message whose media has no signed url yet is kept (not dropped as outside the protocol)", async () => {
    const { client, sock } = scripted("alice");
    await client.start();
    await online(client);
    const media = { id: "med_1", type: "image/jpeg", size: 1234, caption: "beach" };
    sock().push({ type: "message", seq: 1, msg: "0000006000000aaa", id: "p1", from: "bob", chat: { user: "bob" }, ts: 6000, media });
    await until("held", () => client.messages({ user: "bob" }).length === 1);
    expect(client.messages({ user: "bob" })[0]!.media).toEqual(media);
    await until("acked", () => sock().frames("ack").some((a) => a.seq === 1));
    await client.stop();
  });

  it("a refused group post turns the message from sent to failed", async () => {
    const { client, sock } = scripted("alice");
    await client.start();
    await online(client);
    const m = client.send({ group: "g_x" }, { text: "let me in" });
    await until("on the wire", () => sock().frames("send").length === 1);
    sock().push({ type: "sent", id: m.id, msg: "0000002000000ccc", ts: 2000 });
    await until("sent", () => client.message(m.key)?.status === "sent");
    sock().push({ type: "error", code: "not_member", message: "you are not a member of this group", ref: m.id });
    await until("failed", () => client.message(m.key)?.status === "failed");
    expect(client.message(m.key)?.error?.code).toBe("not_member");
    await client.stop();
  });

  it("presence is watched and renewed while a chat is open, and active beats while in the foreground", async () => {
    const { client, sock } = scripted("alice", { ephemeral: { watchRenewMs: 40, activeIntervalMs: 30 } });
    await client.start();
    await online(client);
    client.openChat({ user: "bob" });
    await until("renewed twice", () => sock().frames("watch").length >= 3);
    expect(sock().frames("watch")[0]).toEqual({ type: "watch", users: ["bob"] });
    sock().push({ type: "presence", user: "bob", online: false, lastSeen: 1_700_000_000_000 });
    await until("presence applied", () => client.presenceOf("bob")?.lastSeen === 1_700_000_000_000);
    client.closeChat();
    const watches = sock().frames("watch").length;
    client.setForeground(true);
    await until("active beats", () => sock().frames("active").length >= 3);
    client.setForeground(false);
    const actives = sock().frames("active").length;
    await new Promise((r) => setTimeout(r, 120));
    expect(sock().frames("watch").length).toBe(watches);
    expect(sock().frames("active").length).toBe(actives);
    await client.stop();
  });

  it("typing goes on once per burst, off by itself, and someone else's typing expires", async () => {
    const { client, sock } = scripted("alice", { ephemeral: { typingIdleMs: 40, typingRepeatMs: 10_000, typingExpireMs: 60 } });
    await client.start();
    await online(client);
    const bob = { user: "bob" };
    client.typing(bob);
    client.typing(bob);
    client.typing(bob);
    await until("auto off", () => sock().frames("typing").length === 2);
    expect(sock().frames("typing").map((f) => f.on)).toEqual([true, false]);
    sock().push({ type: "typing", user: "bob", chat: bob, on: true });
    await until("bob typing", () => client.typingIn(bob).includes("bob"));
    await until("bob's typing expired", () => client.typingIn(bob).length === 0, 1000);
    // A server without typing says so once; the client then stops sending it.
    sock().push({ type: "error", code: "bad_frame", message: 'type: "typing" is not supported by this server yet' });
    await new Promise((r) => setTimeout(r, 10));
    client.typing(bob);
    client.stopTyping(bob);
    expect(sock().frames("typing").length).toBe(2);
    await client.stop();
  });

  it("disappearing messages leave the conversation and the store when they expire", async () => {
    const store = new MemoryStore();
    const { client, sock } = scripted("alice", { store });
    await client.start();
    await online(client);
    sock().push({ type: "message", seq: 1, msg: "0000003000000ddd", id: "b1", from: "bob", chat: { user: "bob" }, ts: Date.now(), text: "self-destructs", expiresAt: Date.now() + 80 });
    await until("held", () => client.messages({ user: "bob" }).length === 1);
    await until("gone", () => client.messages({ user: "bob" }).length === 0, 2000);
    await client.flush();
    expect((await store.loadAll()).filter(([k]) => k.startsWith("msg:"))).toEqual([]);
    await client.stop();
  });

  it("an entry the server replays after a lost ack is dropped by seq, even one the client no longer holds", async () => {
    // The server never saw the ack, so every connect replays seq 1: a message that disappeared meanwhile.
    const entry = { type: "message", seq: 1, msg: "0000004000000eee", id: "b9", from: "bob", chat: { user: "bob" }, ts: Date.now(), text: "gone soon", expiresAt: Date.now() + 60 };
    const { client, sockets, sock } = scripted("alice", { head: 1, replay: () => [entry] });
    let added = 0;
    client.on("message", () => added++);
    await client.start();
    await online(client);
    expect(added).toBe(1);
    await until("expired", () => client.messages({ user: "bob" }).length === 0, 2000);
    sock().close(1006);
    await until("reconnected", () => sockets.length === 2 && client.connectionState === "online");
    expect(client.messages({ user: "bob" })).toEqual([]);
    expect(added).toBe(1);
    expect(client.lastSeq).toBe(1);
    await client.stop();
  });

  it("nothing is acknowledged, and no send goes out, until the store has written it", async () => {
    class FlakyStore extends MemoryStore {
      broken = true;
      override async write(puts: Array<[string, unknown]>, deletes: string[]): Promise<void> {
        if (this.broken) throw new Error("disk full");
        return super.write(puts, deletes);
      }
    }
    const store = new FlakyStore();
    const { client, sock } = scripted("alice", { store });
    await client.start();
    await online(client);
    sock().push({ type: "message", seq: 1, msg: "0000005000000fff", id: "b1", from: "bob", chat: { user: "bob" }, ts: Date.now(), text: "keep me" });
    client.send({ user: "bob" }, { text: "and me" });
    await new Promise((r) => setTimeout(r, 150));
    expect(sock().frames("ack")).toEqual([]);
    expect(sock().frames("send")).toEqual([]);
    store.broken = false;
    await until("acked and sent once stored", () => sock().frames("ack").length === 1 && sock().frames("send").length === 1, 3000);
    expect(sock().frames("ack")[0]).toEqual({ type: "ack", seq: 1 });
    const stored = new Map(await store.loadAll());
    expect(stored.get("meta")).toMatchObject({ lastSeq: 1 });
    expect([...stored.keys()].filter((k) => k.startsWith("msg:"))).toHaveLength(2);
    await client.stop();
  });

  it("a connection replaced by another tab (4000) stops instead of fighting it", async () => {
    const { client, sockets, sock } = scripted("alice");
    await client.start();
    await online(client);
    sock().close(4000);
    await until("replaced", () => client.connectionState === "replaced");
    await new Promise((r) => setTimeout(r, 150));
    expect(sockets.length).toBe(1);
    await client.stop();
  });

  it("media: raw upload with progress, multipart in parts, and the MediaRef with hints in the send frame", async () => {
    const requests: Array<{ method: string; path: string; type: string | null; bytes: number }> = [];
    const sha = "a".repeat(64);
    const fakeFetch = async (req: Request) => {
      const bytes = (await req.arrayBuffer()).byteLength;
      const path = new URL(req.url).pathname;
      requests.push({ method: req.method, path, type: req.headers.get("content-type"), bytes });
      if (path === "/v1/media/uploads") return Response.json({ uploadId: "up1", partSize: 4 }, { status: 201 });
      if (path.includes("/parts/")) return Response.json({ ok: true });
      return Response.json({ id: "med_1", type: "image/png", size: 10, sha256: sha }, { status: 201 });
    };
    const ctx = { url: (p: string) => BASE + p, token: async () => "t", fetch: fakeFetch };
    const file = new Blob([new Uint8Array(10)], { type: "image/png" });
    const progress: number[] = [];
    const ref = await singleUpload(file, { type: "image/png", onProgress: (p) => progress.push(p.loaded) }, ctx);
    expect(ref).toEqual({ id: "med_1", type: "image/png", size: 10, sha256: sha });
    expect(requests[0]).toEqual({ method: "POST", path: "/v1/media", type: "image/png", bytes: 10 });
    expect(progress).toEqual([0, 10]);

    requests.length = 0;
    progress.length = 0;
    await multipartUpload(file, { type: "image/png", onProgress: (p) => progress.push(p.loaded) }, ctx);
    expect(requests.map((r) => `${r.method} ${r.path} ${r.bytes}`)).toEqual([
      "POST /v1/media/uploads 30",
      "PUT /v1/media/uploads/up1/parts/1 4",
      "PUT /v1/media/uploads/up1/parts/2 4",
      "PUT /v1/media/uploads/up1/parts/3 2",
      "POST /v1/media/uploads/up1/complete 0",
    ]);
    expect(progress).toEqual([0, 4, 8, 10]);

    const sockets: FakeSocket[] = [];
    const client = new ChatClient({
      baseUrl: BASE,
      user: "alice",
      token: "t",
      device: "web",
      fetch: fakeFetch,
      uploader: async (f, o, c) => singleUpload(f, o, c),
      socketFactory: () => {
        const s = new FakeSocket((sock) => {
          sock.push({ type: "hello", protocol: 1, user: "alice", device: "web", head: 0, serverTime: Date.now() });
          sock.push({ type: "synced", head: 0 });
        });
        sockets.push(s);
        return s;
      },
    });
    await client.start();
    await online(client);
    const m = await client.sendMedia({ user: "bob" }, file, { caption: "look", width: 2, height: 5 });
    await until("send on the wire", () => sockets[0]!.frames("send").length === 1);
    expect(sockets[0]!.frames("send")[0]).toEqual({ type: "send", id: m.id, to: { user: "bob" }, media: { id: "med_1", type: "image/png", size: 10, sha256: sha, caption: "look", width: 2, height: 5 } });
    await client.stop();
  });
});
