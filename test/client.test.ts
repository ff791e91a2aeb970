// The client library (src/client) against the real server, inside workerd: its
// socket factory upgrades through worker.fetch, and a tap on every socket
// records what goes each way and lets a test close it like a network failure
// would. End-to-end encryption is on (the default) unless a test says not.
// A scripted fake server remains only for what a real one cannot produce on
// demand: messages that expire within milliseconds, and a group message that
// overtakes its sender key.
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { ApiError, ChatClient, MemoryStore, PREKEY_REFILL_BELOW, backoffDelay, multipartUpload, singleUpload, type Chat, type ChatMessage, type ClientStore, type MessageStatus, type SocketLike } from "../src/client";
import { E2eeDevice, SenderKeys, encodeContent, type E2eeContent } from "../src/client/e2ee";
import { displayableType } from "../src/client/client";
import { applyContent } from "../src/client/secure";
import { BASE, call, connect, sleep, token, uid } from "./helpers";

// Typed here: Cloudflare.Exports only knows `default` once `wrangler types` has run.
const worker = (exports as unknown as { default: { fetch(req: Request): Promise<Response> } }).default;

interface Tapped {
  sockets: WebSocket[];
  /** Frames the server sent. */
  frames: string[];
  /** Frames the client sent. */
  sent: string[];
  offline: boolean;
  /** Loses the socket when the next `sent` arrives, before the client sees it (lost in flight). */
  dropAfterSend?: boolean;
  onServerFrame?: (data: string) => void;
  onClientFrame?: (data: string) => void;
  /** True for a frame the client writes that never reaches the server (lost, or answered by the test). */
  swallow?: (data: string) => boolean;
  /** Hands a frame to the client as if the server had sent it (set for the latest socket). */
  toClient?: (data: string) => void;
  /** The next upgrade waits for this before it reaches the server (a slow network). */
  hold?: Promise<void>;
  /** Every upgrade's URL, in the order the client asked for them. */
  urls?: string[];
}

function socketFactory(tap: Tapped) {
  return async (url: string): Promise<SocketLike> => {
    if (tap.offline) throw new Error("offline");
    tap.urls?.push(url);
    const hold = tap.hold;
    tap.hold = undefined;
    if (hold) await hold;
    const u = new URL(url);
    u.protocol = "https:";
    const res = await worker.fetch(new Request(u.toString(), { headers: { Upgrade: "websocket" } }));
    if (res.status !== 101 || !res.webSocket) throw new Error(`connect failed: ${res.status}`);
    const ws = res.webSocket;
    tap.sockets.push(ws);
    let lost = false;
    // Attached before the client's listeners and before accept(): sees every frame.
    ws.addEventListener("message", (ev: MessageEvent) => {
      tap.frames.push(ev.data as string);
      tap.onServerFrame?.(ev.data as string);
      if (tap.dropAfterSend && (ev.data as string).startsWith('{"type":"sent"')) {
        tap.dropAfterSend = false;
        tap.offline = true;
        lost = true;
        ws.close(1000, "network went away");
      }
    });
    const clientListeners: Array<(ev: never) => void> = [];
    tap.toClient = (data) => {
      for (const fn of clientListeners) fn({ data } as never);
    };
    return {
      send: (data: string) => {
        tap.sent.push(data);
        tap.onClientFrame?.(data);
        if (!tap.swallow?.(data)) ws.send(data);
      },
      close: (code?: number, reason?: string) => ws.close(code, reason),
      get readyState() {
        return ws.readyState;
      },
      addEventListener: (type: string, fn: (ev: never) => void) => {
        if (type === "message") clientListeners.push(fn);
        ws.addEventListener(type as "message", ((ev: never) => {
          if (type === "message" && lost) return; // what arrives after the loss never reaches the client
          fn(ev);
        }) as never);
      },
      accept: () => ws.accept(),
    } as SocketLike;
  };
}

interface MakeOptions {
  store?: ClientStore;
  device?: string;
  offline?: boolean;
  ackDelayMs?: number;
  e2ee?: boolean;
  ephemeral?: ConstructorParameters<typeof ChatClient>[0]["ephemeral"];
  helloTimeoutMs?: number;
}

async function makeClient(user: string, opts: MakeOptions = {}) {
  const tap: Tapped = { sockets: [], frames: [], sent: [], offline: opts.offline ?? false };
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
    ...(opts.e2ee !== undefined ? { e2ee: opts.e2ee } : {}),
    ...(opts.ephemeral ? { ephemeral: opts.ephemeral } : {}),
    ...(opts.helloTimeoutMs !== undefined ? { helloTimeoutMs: opts.helloTimeoutMs } : {}),
  });
  return { client, tap, token: tok };
}

async function until(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function online(c: ChatClient): Promise<void> {
  await until(`${c.user} online`, () => c.connectionState === "online");
}

/** Started, online, and its keys published (others can encrypt for it). */
async function started(user: string, opts: MakeOptions = {}) {
  const made = await makeClient(user, opts);
  await made.client.start();
  await online(made.client);
  if (opts.e2ee !== false) await until(`${user} keys published`, () => made.client.keysPublished);
  return made;
}

/** Frames of a type the tap recorded, parsed. */
function framesOf(list: string[], type: string): Array<Record<string, unknown>> {
  return list.filter((f) => f.startsWith("{")).map((f) => JSON.parse(f) as Record<string, unknown>).filter((f) => f.type === type);
}

/**
 * Counts, while `fn` runs, the signatures every client checked ahead natively and found good
 * (SenderKeys.checkAhead, shared by all clients of this test); `slowMs` delays each answer,
 * as a phone's or Node's thread pool would (workerd answers WebCrypto at once).
 */
async function countingNativeChecks(fn: () => Promise<void>, slowMs = 0): Promise<number> {
  const { checkAhead } = SenderKeys.prototype;
  let checked = 0;
  SenderKeys.prototype.checkAhead = async function (this: SenderKeys, ...args: Parameters<SenderKeys["checkAhead"]>) {
    const ok = await checkAhead.apply(this, args);
    if (ok) checked++;
    if (slowMs > 0) await sleep(slowMs);
    return ok;
  };
  try {
    await fn();
  } finally {
    SenderKeys.prototype.checkAhead = checkAhead;
  }
  return checked;
}

const texts = (c: ChatClient, chat: Chat) => c.messages(chat).filter((m) => !m.system).map((m) => m.text);

describe("client library: delivery", () => {
  it("a socket closed in the middle of 50 encrypted sends loses and duplicates nothing, on either side", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    // A device of Bob without keys that never acks: it sees every stored entry exactly as the server holds it.
    const audit = await connect(bob, "audit");

    let bobDropped = false;
    B.client.on("message", () => {
      if (!bobDropped && B.client.messages({ user: alice }).length === 10) {
        bobDropped = true;
        B.tap.sockets.at(-1)!.close(1000, "network went away");
      }
    });
    for (let i = 0; i < 50; i++) {
      A.client.send({ user: bob }, { text: `m${i}` });
      await A.client.flush(); // on the wire now (once sealed), so the close below lands mid-stream
      if (i === 25) A.tap.sockets.at(-1)!.close(1000, "network went away");
    }

    await until("all 50 sent", () => A.client.pendingSends().length === 0 && A.client.messages({ user: bob }).every((m) => m.status !== "pending"));
    await until("bob has 50", () => B.client.messages({ user: alice }).length === 50);
    await until("audit device has 50", () => audit.all("message").length >= 50);
    await sleep(300); // a duplicate would show up by now

    expect(A.tap.sockets.length).toBeGreaterThanOrEqual(2);
    expect(B.tap.sockets.length).toBeGreaterThanOrEqual(2);
    expect(bobDropped).toBe(true);
    const expected = Array.from({ length: 50 }, (_, i) => `m${i}`);
    expect(texts(B.client, { user: alice })).toEqual(expected);
    expect(B.client.messages({ user: alice }).every((m) => m.encrypted === true)).toBe(true);
    const mine = A.client.messages({ user: bob });
    expect(mine.map((m) => m.text)).toEqual(expected);
    expect(new Set(mine.map((m) => m.msg)).size).toBe(50);
    // Stored once each, in order, and as ciphertext: the server never saw a text.
    const stored = audit.all("message");
    expect(stored.map((m) => m.msg)).toEqual(mine.map((m) => m.msg));
    expect(stored.every((m) => m.text === undefined && m.e2ee?.sender === "web")).toBe(true);
    expect(framesOf(A.tap.sent, "send").every((f) => f.text === undefined && f.e2ee !== undefined)).toBe(true);
    await A.client.stop();
    await B.client.stop();
    audit.close();
  });

  it("an own message goes pending, sent, delivered, read as Bob comes back online and opens the chat", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const bobStore = new MemoryStore();
    const first = await started(bob, { store: bobStore });
    await first.client.stop(); // Bob has keys, and is away
    const A = await started(alice);

    const seen: MessageStatus[] = [];
    A.client.on("messageUpdated", ({ message }) => {
      if (message.status && seen.at(-1) !== message.status) seen.push(message.status);
    });
    // A blank message is refused before it is stored or sent (the server would answer bad_frame).
    expect(() => A.client.send({ user: bob }, { text: "" })).toThrow(/at least one character/);
    expect(A.client.messages({ user: bob })).toHaveLength(0);
    const m = A.client.send({ user: bob }, { text: "are you there?" });
    seen.push(m.status!);
    await until("sent", () => seen.includes("sent"));
    expect(A.client.message(m.key)?.msg).toMatch(/^[0-9a-z]+$/);
    expect(A.client.message(m.key)?.encrypted).toBe(true);

    const B = await makeClient(bob, { store: bobStore });
    await B.client.start(); // the replay delivers it and his ack ticks it twice
    await until("delivered", () => seen.includes("delivered"));
    expect(B.client.conversation({ user: alice }).unread).toBe(1);
    expect(B.client.messages({ user: alice })[0]).toMatchObject({ text: "are you there?", msg: A.client.message(m.key)!.msg, mine: false, encrypted: true });

    B.client.openChat({ user: alice });
    await until("read", () => seen.includes("read"));
    expect(seen).toEqual(["pending", "sent", "delivered", "read"]);
    expect(B.client.conversation({ user: alice }).unread).toBe(0);
    await A.client.stop();
    await B.client.stop();
  });

  it("sends made offline are sealed, kept in the store across a restart and flushed, in order, once connected", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const B = await started(bob);
    const store = new MemoryStore();
    const A = await makeClient(alice, { store, offline: true });
    const states: string[] = [];
    A.client.on("connection", (e) => states.push(e.state));
    await A.client.start();
    const queued = ["one", "two", "three"].map((text) => A.client.send({ user: bob }, { text }));
    await until("a few failed attempts", () => states.filter((s) => s === "offline").length >= 3);
    // What waits in the store becomes ciphertext (the key directory answers over HTTP).
    const queue = async () => (await store.loadAll()).filter(([k]) => k.startsWith("out:")).map(([, v]) => v as { frame: Record<string, unknown>; seal?: string });
    let waiting = await queue();
    for (let i = 0; i < 100 && !waiting.every((w) => w.seal === "sealed"); i++) waiting = (await sleep(20), await queue());
    expect(waiting.map((w) => w.seal)).toEqual(["sealed", "sealed", "sealed"]);
    expect(queued.map((m) => A.client.message(m.key)?.status)).toEqual(["pending", "pending", "pending"]);
    await A.client.stop();
    expect(waiting.every((w) => w.frame.text === undefined && w.frame.e2ee !== undefined)).toBe(true);

    // A reload: a new client on the same store still holds the queue, and sends exactly those frames.
    const A2 = await makeClient(alice, { store, offline: true });
    await A2.client.start();
    expect(A2.client.pendingSends()).toEqual(queued.map((m) => m.id));
    expect(texts(A2.client, { user: bob })).toEqual(["one", "two", "three"]);
    A2.tap.offline = false;
    A2.client.reconnectNow();
    await until("queue flushed", () => A2.client.pendingSends().length === 0);
    await until("bob has them", () => B.client.messages({ user: alice }).length === 3);
    expect(texts(B.client, { user: alice })).toEqual(["one", "two", "three"]);
    expect(A2.client.messages({ user: bob }).map((m) => m.status)).toEqual(["sent", "sent", "sent"]);
    expect(framesOf(A2.tap.sent, "send").map((f) => JSON.stringify(f.e2ee))).toEqual(waiting.map((w) => JSON.stringify(w.frame.e2ee)));
    await A2.client.stop();
    await B.client.stop();
  });

  it("a restarted client that never acked gets the server's replay and shows no duplicates", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const store = new MemoryStore();
    // A long ack delay: Bob's client stores the messages but is stopped before it acks.
    const B = await started(bob, { store, ackDelayMs: 60_000 });
    const A = await started(alice);
    for (const text of ["a", "b", "c"]) A.client.send({ user: bob }, { text });
    await until("bob has 3", () => B.client.messages({ user: alice }).length === 3);
    await B.client.stop();
    expect(B.tap.sent.some((f) => f.includes('"type":"ack"'))).toBe(false);

    const B2 = await makeClient(bob, { store });
    let added = 0;
    B2.client.on("message", () => added++);
    await B2.client.start();
    await online(B2.client);
    const replayed = B2.tap.frames.filter((f) => f.startsWith('{"type":"message"'));
    expect(replayed.length).toBe(3); // the server did replay them...
    expect(added).toBe(0); // ...and the client dropped them by seq (message keys open once)
    expect(texts(B2.client, { user: alice })).toEqual(["a", "b", "c"]);
    expect(B2.client.lastSeq).toBe(3);
    await A.client.stop();
    await B2.client.stop();
  });

  it("nothing is acknowledged, and no send goes out, until the store has written it", async () => {
    class FlakyStore extends MemoryStore {
      broken = false;
      override async write(puts: Array<[string, unknown]>, deletes: string[]): Promise<void> {
        if (this.broken) throw new Error("disk full");
        return super.write(puts, deletes);
      }
    }
    const alice = uid("alice");
    const bob = uid("bob");
    const store = new FlakyStore();
    const A = await started(alice, { store });
    const B = await started(bob);
    store.broken = true;
    B.client.send({ user: alice }, { text: "keep me" });
    await until("alice's socket got it", () => A.tap.frames.some((f) => f.startsWith('{"type":"message"')));
    A.client.send({ user: bob }, { text: "and me" });
    await sleep(200);
    expect(framesOf(A.tap.sent, "ack")).toEqual([]);
    expect(framesOf(A.tap.sent, "send")).toEqual([]);
    store.broken = false;
    await until("acked and sent once stored", () => framesOf(A.tap.sent, "ack").length >= 1 && framesOf(A.tap.sent, "send").length === 1, 5000);
    const stored = new Map(await store.loadAll());
    expect((stored.get("meta") as { lastSeq: number }).lastSeq).toBeGreaterThanOrEqual(framesOf(A.tap.sent, "ack")[0]!.seq as number);
    expect([...stored.keys()].filter((k) => k.startsWith("msg:"))).toHaveLength(2);
    await until("bob got it", () => texts(B.client, { user: alice }).includes("and me"));
    await A.client.stop();
    await B.client.stop();
  });

  it("a second connection of the same device (another tab) makes the first stop with 4000 instead of fighting it", async () => {
    const alice = uid("alice");
    const A = await started(alice, { e2ee: false });
    const other = await connect(alice, "web");
    await until("replaced", () => A.client.connectionState === "replaced");
    await sleep(200);
    expect(A.tap.sockets.length).toBe(1);
    expect(other.closed).toBeNull();
    // Review I of 2026-11-28: the stopped tab still queued sends into the shared store,
    // sealed with keys the other tab moves on from; they became undecryptable.
    expect(() => A.client.send({ user: uid("bob") }, { text: "from the old tab" })).toThrow(/another tab/);
    expect(A.client.pendingSends()).toEqual([]);
    await A.client.stop();
    other.close();
  });

  it("an upgrade the client gave up that reaches the server after its next one is refused there, and the client stays online", async () => {
    // Found by faults/flaky-library.test.mjs under load: the late upgrade replaced the live socket
    // (4000), which the client read as another tab taking over, and it stopped for good.
    const alice = uid("alice");
    const bob = uid("bob");
    const B = await started(bob, { e2ee: false });
    let release: () => void = () => {};
    const { client, tap } = await makeClient(alice, { e2ee: false, helloTimeoutMs: 300 });
    tap.urls = [];
    tap.hold = new Promise<void>((r) => (release = r));
    await client.start();
    await online(client); // the first attempt was given up after 300 ms; the second connected
    release(); // ...and now the first one's upgrade reaches the server
    await until("the late upgrade was answered", () => tap.sockets.length === 2);
    const live = tap.sockets[0]!;
    await sleep(200);
    expect(client.connectionState).toBe("online");
    expect(live.readyState).toBe(WebSocket.OPEN);
    const conns = tap.urls.map((u) => Number(new URL(u).searchParams.get("conn")));
    expect(conns).toHaveLength(2);
    expect(conns[1]).toBeGreaterThan(conns[0]!);
    client.send({ user: bob }, { text: "still the same socket" });
    await until("bob got it", () => texts(B.client, { user: alice }).includes("still the same socket"));
    expect(tap.sockets).toHaveLength(2);
    await client.stop();
    await B.client.stop();
  });

  it("a second tab of the same device, opened later, takes it over (its conn is higher) and the first stops", async () => {
    const alice = uid("alice");
    const store = new MemoryStore();
    const first = await started(alice, { e2ee: false, store });
    const second = await started(alice, { e2ee: false, store });
    await until("first replaced", () => first.client.connectionState === "replaced");
    await sleep(200);
    expect(second.client.connectionState).toBe("online");
    expect(first.tap.sockets).toHaveLength(1);
    expect(second.tap.sockets).toHaveLength(1);
    await first.client.stop();
    await second.client.stop();
  });

  it("sends written behind one that draws an `internal` arrive after it, in the order typed (after, out_of_order)", async () => {
    // crash-library.test.mjs, FAULT_SEED=52363 (CI of 2026-11-28): a send whose key lookup
    // failed with `internal` was retried after its pause, but the sends pipelined behind it
    // were taken first, and the recipient showed them swapped. Here the server's `internal`
    // for s1 is played by the tap: s1 never reaches the server, and its error comes back
    // only once s2 and s3 are on the wire.
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    let swallowed = false;
    A.tap.swallow = (data) => {
      if (swallowed || !data.includes('"id":"s1"')) return false;
      swallowed = true;
      return true;
    };
    A.tap.onClientFrame = (data) => {
      if (data.includes('"id":"s3"') && swallowed && framesOf(A.tap.sent, "send").filter((f) => f.id === "s1").length === 1) {
        setTimeout(() => A.tap.toClient?.(JSON.stringify({ type: "error", code: "internal", message: "the recipient's device list did not answer in time; try again", ref: "s1" })), 0);
      }
    };
    const errors: string[] = [];
    A.client.on("error", (e) => errors.push(`${e.code} ${e.send ?? "-"}`));
    for (const id of ["s1", "s2", "s3"]) A.client.send({ user: bob }, { text: `text ${id}` }, id);
    await until("all three sent", () => A.client.pendingSends().length === 0, 8_000);
    await until("all three at bob", () => texts(B.client, { user: alice }).length === 3);
    expect(texts(B.client, { user: alice })).toEqual(["text s1", "text s2", "text s3"]);
    // What the client wrote: s2 and s3 each named the send before them; after s1's pause s1
    // went again alone, and s2 and s3 once it was stored (s2 then had nothing to wait for).
    const writes = framesOf(A.tap.sent, "send").map((f) => `${f.id as string}<${(f.after as string | undefined) ?? ""}`);
    expect(writes.slice(0, 3)).toEqual(["s1<", "s2<s1", "s3<s2"]);
    expect(writes.slice(3)).toEqual(["s1<", "s2<", "s3<s2"]);
    const refused = framesOf(A.tap.frames, "error").map((f) => `${f.code as string} ${f.ref as string}`);
    expect(refused).toEqual(["out_of_order s2", "out_of_order s3"]);
    expect(errors).toEqual(["internal retried"]); // out_of_order is the library's own business
    expect(A.client.messages({ user: bob }).filter((m) => m.status === "failed" || m.status === "pending")).toEqual([]);
    await A.client.stop();
    await B.client.stop();
  });

  it("a send whose key lookup fails on the server (internal) is retried, and the sends written behind it still arrive after it", async () => {
    // The path the crash test's CI failure took (FAULT_SEED=52363), on the real server: the
    // object's lookup of Bob's devices throws, the send is answered `internal`.
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    A.client.send({ user: bob }, { text: "first" });
    await until("the session is up", () => texts(B.client, { user: alice }).includes("first"));
    await env.USERS.getByName(alice).failNextKeyLookups(1);
    for (const id of ["k1", "k2", "k3"]) A.client.send({ user: bob }, { text: `text ${id}` }, id);
    await until("all three at bob", () => texts(B.client, { user: alice }).length === 4, 8_000);
    expect(texts(B.client, { user: alice })).toEqual(["first", "text k1", "text k2", "text k3"]);
    const answers = framesOf(A.tap.frames, "error").map((f) => `${f.code as string} ${f.ref as string}`);
    expect(answers[0]).toBe("internal k1");
    // Whatever was written behind k1 before its answer was refused, not taken first.
    expect(answers.slice(1).every((a) => a === "out_of_order k2" || a === "out_of_order k3")).toBe(true);
    await until("all sent", () => A.client.pendingSends().length === 0);
    await A.client.stop();
    await B.client.stop();
  });

  it("150 encrypted sends at once are paced under the server's rate limit: no rate_limited, no 4008, each arrives once, in order", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    const closes: number[] = [];
    A.client.on("connection", (e) => {
      if (e.closeCode !== undefined) closes.push(e.closeCode);
    });
    const expected = Array.from({ length: 150 }, (_, i) => `burst ${i}`);
    const t0 = Date.now();
    for (const text of expected) A.client.send({ user: bob }, { text });
    await until("all 150 sent", () => A.client.pendingSends().length === 0, 20_000);
    const took = Date.now() - t0;
    await until("bob has 150", () => B.client.messages({ user: alice }).length >= 150, 20_000);
    await sleep(200); // a duplicate would show up by now

    expect(framesOf(A.tap.frames, "error").map((f) => f.code)).toEqual([]);
    expect(closes).toEqual([]);
    expect(A.tap.sockets.length).toBe(1);
    // Each went on the wire once: nothing needed a resend.
    const sent = framesOf(A.tap.sent, "send");
    expect(sent.length).toBe(150);
    expect(new Set(sent.map((f) => f.id)).size).toBe(150);
    expect(A.client.messages({ user: bob }).map((m) => m.status === "pending" || m.status === "failed")).not.toContain(true);
    expect(texts(B.client, { user: alice })).toEqual(expected);
    // Paced, not stalled: the burst goes at once, the rest at the refill rate (about 3.5 s for 150).
    expect(took).toBeLessThan(8_000);
    await A.client.stop();
    await B.client.stop();
  });

  it("media a peer describes is checked: no url of its choosing, a base64 thumb only, and an unknown type is opaque bytes", () => {
    // Review I of 2026-11-28: the sender's content went into the message as it was. A
    // "photo" of type image/svg+xml or text/html became a same-origin blob: URL whose
    // script, opened in a tab, read the session token; a thumb broke out of the CSS
    // url() and a `url` made the reader's browser fetch from the sender's server.
    const media = { id: "m_1", type: "image/svg+xml", size: 10, key: "a2V5", sha256: "a".repeat(64) };
    const m: Pick<ChatMessage, "text" | "media" | "replyTo" | "encrypted"> = {};
    applyContent(m, { text: "look", media: { ...media, url: "http://127.0.0.1:1/leak", urlExpiresAt: 9e12 } } as unknown as E2eeContent);
    expect(m.media).toEqual(media);
    expect(displayableType(m.media!.type)).toBe("application/octet-stream");
    for (const type of ["text/html", "application/javascript", "image/svg+xml; charset=utf-8", "constructor", "application/octet-stream"]) expect(displayableType(type)).toBe("application/octet-stream");
    for (const type of ["image/png", "image/jpeg", "video/mp4", "audio/ogg"]) expect(displayableType(type)).toBe(type);
    // A bad hint is dropped alone; the file stays (review J: a recorded WebM's length is
    // Infinity, sent as null, and the whole video used to vanish at the recipient).
    const open = (extra: Record<string, unknown>) => {
      const into: Pick<ChatMessage, "text" | "media" | "replyTo" | "encrypted"> = {};
      applyContent(into, { text: "t", media: JSON.parse(JSON.stringify({ ...media, type: "video/webm", ...extra })) } as unknown as E2eeContent);
      return into.media;
    };
    expect(open({ thumb: "AAAA), url(http://127.0.0.1:1/thumb", caption: "hi" })).toEqual({ ...media, type: "video/webm", caption: "hi" });
    expect(open({ durationMs: Infinity, width: 0, height: 0 })).toEqual({ ...media, type: "video/webm" });
    expect(open({ sha256: "A".repeat(64) })?.sha256).toBe("a".repeat(64));
    // Without what it takes to fetch and open it, there is no attachment.
    expect(open({ id: "bad id/.." })).toBeUndefined();
    expect(open({ key: "not base64!" })).toBeUndefined();
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

describe("client library: a socket lost at the worst moment (review of 2026-11-28)", () => {
  it("a delivered receipt replayed before the resent send's `sent` still moves the tick", async () => {
    // The receipt was dropped (no msg known yet) and its seq acked: the tick stayed at one.
    const [alice, bob] = [uid("alice"), uid("bob")];
    const B = await connect(bob, "phone");
    const A = await started(alice, { e2ee: false });
    A.tap.dropAfterSend = true; // the socket dies between `send` and `sent`
    const m = A.client.send({ user: bob }, { text: "hello?" });
    const got = await B.next("message");
    B.send({ type: "ack", seq: got.seq });
    await sleep(300);
    A.tap.offline = false;
    A.client.reconnectNow();
    await until("delivered", () => A.client.message(m.key)?.status === "delivered");
    expect(A.client.message(m.key)?.msg).toBe(got.msg);
    // The receipt came before the resend's `sent`, as the test means it to.
    const order = A.tap.frames.filter((f) => f.startsWith('{"type":"receipt"') || f.startsWith('{"type":"sent"')).map((f) => (JSON.parse(f) as { type: string }).type);
    expect(order.slice(-2)).toEqual(["receipt", "sent"]);
    await A.client.stop();
    B.close();
  });

  it("the ack at `synced` covers only what the store holds: not an entry still being written, nor a replay the store failed to keep", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    class SlowThenBrokenStore extends MemoryStore {
      gate: Promise<void> | null = null;
      release: () => void = () => {};
      broken = false;
      storedSeq = 0;
      override async write(puts: Array<[string, unknown]>, deletes: string[]): Promise<void> {
        if (this.broken) throw new Error("disk full");
        puts = JSON.parse(JSON.stringify(puts)) as Array<[string, unknown]>; // cloned at call time, as IndexedDB's put() does
        if (this.gate) await this.gate;
        await super.write(puts, deletes);
        const meta = puts.find(([k]) => k === "meta")?.[1] as { lastSeq?: number } | undefined;
        if (meta?.lastSeq !== undefined) this.storedSeq = Math.max(this.storedSeq, meta.lastSeq);
      }
    }
    const store = new SlowThenBrokenStore();
    const B = await connect(bob, "phone");
    B.send({ type: "send", id: "b1", to: { user: alice }, text: "first" });
    await B.next("sent");
    const A = await makeClient(alice, { store, e2ee: false });
    const early: Array<{ ack: number; stored: number }> = [];
    A.tap.onClientFrame = (d) => {
      if (!d.startsWith('{"type":"ack"')) return;
      const seq = (JSON.parse(d) as { seq: number }).seq;
      if (seq > store.storedSeq) early.push({ ack: seq, stored: store.storedSeq });
    };
    A.tap.onServerFrame = (d) => {
      // The write `synced` starts is slow (IndexedDB with strict durability).
      if (d.startsWith('{"type":"synced"')) store.gate = new Promise((r) => (store.release = r));
    };
    await A.client.start();
    await until("synced seen", () => A.tap.frames.some((f) => f.startsWith('{"type":"synced"')));
    B.send({ type: "send", id: "b2", to: { user: alice }, text: "second" }); // lands during that write
    await until("second applied in memory", () => A.client.lastSeq === 2);
    store.release();
    store.gate = null;
    await online(A.client);
    await sleep(300);
    // Then the store breaks (quota, disk full) and a replay comes in.
    A.tap.onServerFrame = undefined;
    A.tap.offline = true;
    A.client.dropConnection();
    B.send({ type: "send", id: "b3", to: { user: alice }, text: "third" });
    await B.next("sent", (f) => f.id === "b3");
    store.broken = true;
    A.tap.offline = false;
    A.client.reconnectNow();
    await online(A.client);
    await sleep(300);
    expect(early).toEqual([]);
    await A.client.stop();
    B.close();
  });

  it("a read the pacer still held when the socket dropped is sent on the next socket", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const A = await started(alice, { e2ee: false });
    A.tap.offline = true;
    A.client.dropConnection();
    const B = await connect(bob, "phone");
    for (let i = 0; i < 100; i++) {
      if (i === 55) await sleep(1600); // within the server's limit for sends
      B.send({ type: "send", id: `b${i}`, to: { user: alice }, text: `m${i}` });
    }
    for (let i = 0; i < 100; i++) await B.next("sent", () => true, 10_000);
    A.client.openChat({ user: bob });
    A.client.setForeground(true);
    let dropped = false;
    A.client.on("message", () => {
      if (!dropped && A.client.messages({ user: bob }).length === 100) {
        dropped = true;
        setTimeout(() => A.client.dropConnection(), 0); // the network blips right after the replay
      }
    });
    A.tap.offline = false;
    A.client.reconnectNow();
    await until("dropped", () => dropped);
    await until("online again", () => A.client.connectionState === "online" && A.tap.sockets.length >= 3);
    const last = A.client.messages({ user: bob }).at(-1)!.msg!;
    expect(A.client.conversation({ user: bob }).readUpTo).toBe(last);
    await until("the newest read on the wire", () => framesOf(A.tap.sent, "read").at(-1)?.upTo === last);
    await A.client.stop();
    B.close();
  });
});

describe("client library: end-to-end encryption", () => {
  it("a device Bob adds is encrypted for after devices_changed (same id), both sides show one safety number, and it changes", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    A.client.send({ user: bob }, { text: "hello phone" });
    await until("bob read it", () => texts(B.client, { user: alice }).includes("hello phone"));
    const before = await A.client.safetyNumber(bob);
    expect(before.digits).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect((await B.client.safetyNumber(alice)).digits).toBe(before.digits);

    const B2 = await started(bob, { device: "laptop" }); // a new device: keys published
    const changed = A.client.once("identityChanged", (e) => e.user === bob);
    const m = A.client.send({ user: bob }, { text: "hello laptop too" });
    await until("laptop read it", () => texts(B2.client, { user: alice }).includes("hello laptop too"));
    await until("phone read it", () => texts(B.client, { user: alice }).includes("hello laptop too"));
    // Alice's cached list lacked the laptop: refused, sealed again for it, sent again with the SAME id.
    const sends = framesOf(A.tap.sent, "send").filter((f) => f.id === m.id);
    expect(sends.length).toBe(2);
    expect(Object.keys((sends[0]!.e2ee as { recipients: object }).recipients)).toEqual([`${bob}/web`]);
    expect(Object.keys((sends[1]!.e2ee as { recipients: object }).recipients).sort()).toEqual([`${bob}/laptop`, `${bob}/web`]);
    expect(framesOf(A.tap.frames, "error").some((e) => e.code === "devices_changed" && e.ref === m.id)).toBe(true);
    expect(B.client.messages({ user: alice }).filter((x) => x.id === m.id)).toHaveLength(1);
    // Alice is told Bob's keys changed; the numbers still match on all three screens, and differ from before.
    await changed;
    expect(A.client.conversation({ user: bob }).securityChanged).toBe(true);
    expect(A.client.messages({ user: bob }).some((x) => x.system?.kind === "security_changed")).toBe(true);
    const after = await A.client.safetyNumber(bob);
    expect(A.client.conversation({ user: bob }).securityChanged).toBe(false);
    expect(after.digits).not.toBe(before.digits);
    expect(after.theirs).toBe(2);
    expect((await B.client.safetyNumber(alice)).digits).toBe(after.digits);
    expect((await B2.client.safetyNumber(alice)).digits).toBe(after.digits);

    // Bob's laptop answers; his phone (his other device) reads it too.
    B2.client.send({ user: alice }, { text: "from the laptop" });
    await until("alice read it", () => texts(A.client, { user: bob }).includes("from the laptop"));
    await until("bob's phone read it", () => texts(B.client, { user: alice }).includes("from the laptop"));
    expect(B.client.messages({ user: alice }).find((x) => x.text === "from the laptop")?.mine).toBe(true);
    for (const c of [A, B, B2]) await c.client.stop();
  });

  it("keys and sessions survive a reload from the store: no new keys, no new session, and the chat goes on", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const store = new MemoryStore();
    const A = await started(alice, { store });
    const B = await started(bob);
    A.client.send({ user: bob }, { text: "first" });
    await until("bob has first", () => texts(B.client, { user: alice }).includes("first"));
    B.client.send({ user: alice }, { text: "reply" }); // completes the session (no more prekey headers)
    await until("alice has reply", () => texts(A.client, { user: bob }).includes("reply"));
    await A.client.stop();
    const publishes = async () => ((await (await call(`/v1/keys/web/count`, { token: A.token })).json()) as { count: number }).count;
    const countBefore = await publishes();

    const A2 = await started(alice, { store });
    A2.client.send({ user: bob }, { text: "after the reload" });
    await until("bob has it", () => texts(B.client, { user: alice }).includes("after the reload"));
    const sent = framesOf(A2.tap.sent, "send").at(-1)!;
    expect((sent.e2ee as { recipients: Record<string, { type: string }> }).recipients[`${bob}/web`]!.type).toBe("msg");
    expect(await publishes()).toBe(countBefore); // nothing published again
    expect(texts(A2.client, { user: bob })).toEqual(["first", "reply", "after the reload"]);
    await A2.client.stop();
    await B.client.stop();
  });

  it("when Bob's app has no keys the message goes in the clear, and both chats say so", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const B = await started(bob, { e2ee: false });
    const A = await started(alice);
    expect(await A.client.checkEncryption({ user: bob })).toBe(false);
    const m = A.client.send({ user: bob }, { text: "in the clear" });
    await until("bob has it", () => texts(B.client, { user: alice }).includes("in the clear"));
    expect(framesOf(A.tap.sent, "send")[0]).toMatchObject({ text: "in the clear" });
    expect(A.client.message(m.key)?.encrypted).toBe(false);
    expect(A.client.conversation({ user: bob })).toMatchObject({ encryption: "off", encryptionNote: expect.stringContaining("has not set up encryption") });
    B.client.send({ user: alice }, { text: "me too" });
    await until("alice has it", () => texts(A.client, { user: bob }).includes("me too"));
    expect(A.client.conversation({ user: bob }).encryption).toBe("off");
    await A.client.stop();
    await B.client.stop();
  });

  it("group messages are one sender-key ciphertext; the key is handed over pairwise and renewed when a member is removed", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const carol = uid("carol");
    const A = await started(alice);
    const B = await started(bob);
    const C = await started(carol);
    const A2 = await started(alice, { device: "tablet" }); // Alice's other device reads her group messages too
    const g = await A.client.createGroup("Secret club", [bob, carol]);
    const group = { group: g.id };
    A.client.send(group, { text: "the password is swordfish" });
    for (const c of [B, C]) await until("member read it", () => texts(c.client, group).includes("the password is swordfish"));
    await until("alice's tablet read it", () => texts(A2.client, group).includes("the password is swordfish"));
    const post = framesOf(A.tap.sent, "send").find((f) => (f.to as Chat & { group?: string }).group === g.id)!;
    expect(post.text).toBeUndefined();
    expect(post.e2ee).toMatchObject({ v: 1, sender: "web", senderKeyCiphertext: expect.any(String) });
    // The hand-overs went pairwise, to Bob and to Carol, and show up nowhere.
    const handovers = framesOf(A.tap.sent, "send").filter((f) => "user" in (f.to as Chat));
    expect(handovers.map((f) => (f.to as { user: string }).user).sort()).toEqual([bob, carol].sort());
    expect(B.client.conversations().map((c) => c.key)).not.toContain(`user:${alice}`);

    B.client.send(group, { text: "bob here" });
    for (const c of [A, C]) await until("read bob", () => texts(c.client, group).includes("bob here"));

    const keyId = () => (A.client as unknown as { keyring: { device: E2eeDevice } }).keyring.device.senderKeys.distribution(g.id).keyId;
    const oldKey = keyId();
    await A.client.api.removeMember(g.id, carol);
    await until("removal seen", () => A.client.messages(group).some((m) => m.system?.kind === "member_removed"));
    A.client.send(group, { text: "carol is gone" });
    await until("bob read it", () => texts(B.client, group).includes("carol is gone"));
    expect(keyId()).not.toBe(oldKey); // a new key, handed to Bob (and Alice's tablet) only
    const renewed = framesOf(A.tap.sent, "send").filter((f) => "user" in (f.to as Chat)).slice(handovers.length);
    expect(renewed.map((f) => (f.to as { user: string }).user)).toEqual([bob]);
    expect(texts(C.client, group)).not.toContain("carol is gone");
    for (const c of [A, A2, B, C]) await c.client.stop();
  });

  it("group messages wait for their signature check (natively, ahead), and frames behind them wait too: a replay is applied in seq order, nothing dropped", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const store = new MemoryStore();
    const B = await started(bob, { store });
    const g = await A.client.createGroup("Checked", [bob]);
    const group = { group: g.id };
    A.client.send(group, { text: "g0" });
    await until("bob has the sender key", () => texts(B.client, group).includes("g0"));
    await B.client.stop();
    // Sent while Bob is away, so that his next socket gets them back to back (the replay).
    const sent = ["g1", "d1", "g2", "d2", "g3", "d3"];
    for (const t of sent) A.client.send(t.startsWith("g") ? group : { user: bob }, { text: t });
    await until("all sent", () => A.client.pendingSends().length === 0);
    const B2 = await makeClient(bob, { store });
    const seqs: number[] = [];
    B2.client.on("message", ({ message, source }) => {
      if (source === "live" && !message.system) seqs.push(B2.client.lastSeq);
    });
    const checked = await countingNativeChecks(async () => {
      await B2.client.start();
      await until("all at bob", () => texts(B2.client, group).length === 4 && texts(B2.client, { user: alice }).length === 3);
    }, 30);
    expect(texts(B2.client, group)).toEqual(["g0", "g1", "g2", "g3"]);
    expect(texts(B2.client, { user: alice })).toEqual(["d1", "d2", "d3"]);
    expect(seqs).toHaveLength(6);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(checked).toBe(3); // each group message's signature was checked natively, ahead
    await B2.client.stop();
    await A.client.stop();
  });

  it("an encrypted photo: only ciphertext reaches the server, and Bob gets back the exact bytes", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    const png = new Uint8Array(4000);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    for (let i = 8; i < png.length; i++) png[i] = (i * 7) & 0xff;
    const sent = await A.client.sendMedia({ user: bob }, new Blob([png], { type: "image/png" }), { caption: "secret view", width: 20, height: 10 });
    await until("bob has it", () => B.client.messages({ user: alice }).some((m) => m.media));
    const got = B.client.messages({ user: alice }).find((m) => m.media)!;
    expect(got.media).toMatchObject({ type: "image/png", size: png.length, caption: "secret view", width: 20, key: expect.any(String) });
    expect(await B.client.mediaBytes(got)).toEqual(png);
    // The send frame names the upload in the clear and nothing else; R2 holds ciphertext.
    const frame = framesOf(A.tap.sent, "send").find((f) => f.id === sent.id)!;
    expect(frame.media).toBeUndefined();
    expect((frame.e2ee as { attachments: string[] }).attachments).toEqual([got.media!.id]);
    expect(JSON.stringify(frame)).not.toContain("secret view");
    const object = await env.MEDIA.get(got.media!.id);
    expect(object!.httpMetadata?.contentType).toBe("application/octet-stream");
    const stored = new Uint8Array(await object!.arrayBuffer());
    expect(stored.length).toBe(png.length + 28);
    expect(stored.subarray(0, 8)).not.toEqual(png.subarray(0, 8));
    await A.client.stop();
    await B.client.stop();
  });

  it("an encrypted edit reaches Bob and Alice's other device, the editing device gets it back as confirmation; delete removes it everywhere", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const A2 = await started(alice, { device: "tablet" });
    const B = await started(bob);
    const m = A.client.send({ user: bob }, { text: "see you at 5" });
    await until("bob has it", () => texts(B.client, { user: alice }).includes("see you at 5"));
    await until("tablet has it", () => texts(A2.client, { user: bob }).includes("see you at 5"));
    const msg = A.client.message(m.key)!.msg!;
    expect(await A.client.edit(msg, "see you at 6")).toBe(true);
    const edited = (c: ChatClient) => c.messages({ user: c === B.client ? alice : bob }).find((x) => x.msg === msg);
    await until("bob sees the edit", () => edited(B.client)?.text === "see you at 6" && edited(B.client)?.edited === true);
    await until("tablet sees the edit", () => edited(A2.client)?.text === "see you at 6");
    await until("editing device confirmed", () => edited(A.client)?.edited === true);
    expect(edited(A.client)?.text).toBe("see you at 6");
    const edit = framesOf(A.tap.sent, "edit")[0]!;
    expect(edit.text).toBeUndefined();
    expect(JSON.stringify(edit)).not.toContain("see you at 6");

    // Review G of 2026-11-28: when the devices kept changing (three devices_changed in a
    // row), the edit went out in the clear. Now it is given up.
    const secure = (A.client as unknown as { secure: { sealEdit: (m: ChatMessage, text: string) => Promise<unknown> } }).secure;
    const seal = secure.sealEdit;
    secure.sealEdit = async () => ({ type: "edit", msg, e2ee: { v: 1, sender: "web", recipients: {} } });
    expect(await A.client.edit(msg, "SECRET-V3")).toBe(false);
    // Given up: the message shows what the server and Bob have (review J).
    expect(A.client.message(m.key)!.text).toBe("see you at 6");
    expect(framesOf(A.tap.sent, "edit").filter((f) => f.text !== undefined)).toEqual([]);
    expect(A.tap.sent.join("\n")).not.toContain("SECRET-V3");
    secure.sealEdit = seal;

    expect(A.client.deleteMessage(msg)).toBe(true);
    for (const c of [A.client, A2.client, B.client]) await until("deleted", () => edited(c)?.deleted === true && edited(c)?.text === undefined);
    for (const c of [A, A2, B]) await c.client.stop();
  });

  it("in a group, an encrypted edit and a delete come back through the group to every member and to the editor", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const A2 = await started(alice, { device: "tablet" });
    const B = await started(bob);
    const g = await A.client.createGroup("Plans", [bob]);
    const group = { group: g.id };
    const m = A.client.send(group, { text: "dinner at 7" });
    await until("bob has it", () => texts(B.client, group).includes("dinner at 7"));
    await until("tablet has it", () => texts(A2.client, group).includes("dinner at 7"));
    const msg = A.client.message(m.key)!.msg!;
    const at = (c: ChatClient) => c.messages(group).find((x) => x.msg === msg);
    // The edit's signature is checked ahead natively at Bob's and the tablet, like a message's.
    const checked = await countingNativeChecks(async () => {
      expect(await A.client.edit(msg, "dinner at 8")).toBe(true);
      await until("bob sees the edit", () => at(B.client)?.text === "dinner at 8" && at(B.client)?.edited === true);
      await until("tablet sees the edit", () => at(A2.client)?.text === "dinner at 8");
    });
    expect(checked).toBe(2);
    await until("the editor got the group's event", () => at(A.client)?.edited === true);
    const edit = framesOf(A.tap.sent, "edit")[0]!;
    expect(edit.e2ee).toMatchObject({ senderKeyCiphertext: expect.any(String) });
    expect(JSON.stringify(edit)).not.toContain("dinner");
    expect(framesOf(A.tap.frames, "event").some((f) => (f.event as { kind: string; msg?: string }).kind === "edited" && (f.chat as { group?: string }).group === g.id)).toBe(true);
    expect(A.client.deleteMessage(msg)).toBe(true);
    for (const c of [A.client, A2.client, B.client]) await until("deleted", () => at(c)?.deleted === true && at(c)?.text === undefined);
    for (const c of [A, A2, B]) await c.client.stop();
  });

  it("publishing the keys is stored at once, and a device that lost that record finds its keys on the server instead of failing", async () => {
    // Review I of 2026-11-28: `published` waited for the next write; a reload before any
    // message published 100 new prekeys on top of the server's 100, refused (400) on every start.
    const alice = uid("alice");
    const store = new MemoryStore();
    const A = await started(alice, { store });
    const meta = async () => (await store.loadAll()).find(([k]) => k === "e2ee:meta")?.[1] as { published?: boolean } | undefined;
    for (let i = 0; i < 100 && !(await meta())?.published; i++) await sleep(20);
    expect((await meta())?.published).toBe(true); // no message activity, no stop: stored anyway
    await A.client.stop();

    await store.write([["e2ee:meta", { ...(await meta()), published: false }]], []);
    const B = await makeClient(alice, { store });
    const errors: string[] = [];
    B.client.on("error", (e) => errors.push(`${e.code}: ${e.message}`));
    await B.client.start();
    await online(B.client);
    await until("published again", () => B.client.keysPublished);
    expect(errors).toEqual([]);
    expect(await (await call("/v1/keys/web/count", { token: B.token })).json()).toEqual({ device: "web", count: 100 });
    await B.client.stop();

    // Review J: a device that lost its keys altogether gets new ones under the same id; the
    // server drops the old identity's prekeys, and the new ones are topped up to 100.
    const C = await started(alice, { store: new MemoryStore() });
    await until("published anew", () => C.client.keysPublished);
    const count = async () => ((await (await call("/v1/keys/web/count", { token: C.token })).json()) as { count: number }).count;
    for (let i = 0; i < 100 && (await count()) < 100; i++) await sleep(20);
    expect(await count()).toBe(100);
    await C.client.stop();
  });

  it("one-time prekeys running low are topped up when the device connects", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    await A.client.stop();
    const count = async () => ((await (await call(`/v1/keys/web/count`, { token: A.token })).json()) as { count: number }).count;
    expect(await count()).toBe(100);
    // Many claimers: one caller's claims of a user's keys are limited.
    for (let i = 0; i < 100 - PREKEY_REFILL_BELOW + 5; i++) expect((await call(`/v1/users/${alice}/keys`, { token: await token(`${bob}-${i}`) })).status).toBe(200);
    expect(await count()).toBe(PREKEY_REFILL_BELOW - 5);
    await A.client.start();
    for (let i = 0; i < 200 && (await count()) < 100; i++) await sleep(20);
    expect(await count()).toBe(100);
    await A.client.stop();
  });
});

describe("client library: the rest of the server API", () => {
  it("a permanent chat's history is paged with nextBefore on a device that never saw it", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    // Plaintext clients: an encrypted history could not be read by a device added later.
    const A = await started(alice, { e2ee: false });
    const B = await started(bob, { e2ee: false });
    await A.client.setChatSettings({ user: bob }, { retention: "permanent" });
    for (let i = 0; i < 7; i++) A.client.send({ user: bob }, { text: `h${i}` });
    await until("bob has 7", () => texts(B.client, { user: alice }).filter((t) => t?.startsWith("h")).length === 7);
    B.client.openChat({ user: alice }); // read and acked: the inbox lets them go, history keeps them
    await sleep(200);
    const B2 = await started(bob, { e2ee: false, device: "new" });
    const pages: number[] = [];
    for (let i = 0; i < 5; i++) {
      const page = await B2.client.loadOlder({ user: alice }, 3);
      pages.push(page.added.length);
      if (page.complete) break;
    }
    expect(texts(B2.client, { user: alice }).filter((t) => t?.startsWith("h"))).toEqual(["h0", "h1", "h2", "h3", "h4", "h5", "h6"]);
    expect(B2.client.conversation({ user: alice }).historyComplete).toBe(true);
    expect(pages.length).toBeGreaterThanOrEqual(2);
    const requests = pages.length;
    expect(await B2.client.loadOlder({ user: alice }, 3)).toEqual({ added: [], complete: true });
    expect(pages.length).toBe(requests);
    for (const c of [A, B, B2]) await c.client.stop();
  });

  it("chat settings: the change reaches both sides, GET agrees, and later messages disappear on time", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice);
    const B = await started(bob);
    const answer = await A.client.setChatSettings({ user: bob }, { retention: "permanent", disappearAfterSeconds: 86_400 });
    expect(answer).toMatchObject({ retention: "permanent", disappearAfterSeconds: 86_400, changedBy: alice });
    await until("bob sees the change", () => B.client.conversation({ user: alice }).disappearAfterSeconds === 86_400);
    expect(B.client.conversation({ user: alice }).retention).toBe("permanent");
    expect(B.client.messages({ user: alice }).map((m) => m.system?.kind)).toEqual(["retention_changed"]);
    expect(await B.client.chatSettings({ user: alice })).toMatchObject({ retention: "permanent", disappearAfterSeconds: 86_400 });
    const m = A.client.send({ user: bob }, { text: "gone tomorrow" });
    await until("bob has it", () => texts(B.client, { user: alice }).includes("gone tomorrow"));
    const got = B.client.messages({ user: alice }).find((x) => x.text === "gone tomorrow")!;
    expect(got.expiresAt! - got.ts).toBe(86_400_000);
    expect(got.encrypted).toBe(true);
    await until("alice's copy has it too", () => A.client.message(m.key)?.status === "delivered" || A.client.message(m.key)?.status === "read");
    await A.client.setChatSettings({ user: bob }, { disappearAfterSeconds: null });
    await until("bob sees it off", () => B.client.conversation({ user: alice }).disappearAfterSeconds === null);
    await A.client.stop();
    await B.client.stop();
  });

  it("groups over HTTP: list, read, rename, add, make admin, message info, leave", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const carol = uid("carol");
    const A = await started(alice);
    const B = await started(bob);
    const g = await A.client.createGroup("Lunch", [bob]);
    expect(g.members.map((m) => [m.user, m.role])).toEqual(expect.arrayContaining([[alice, "admin"], [bob, "member"]]));
    await until("bob's object knows it", () => B.client.messages({ group: g.id }).some((m) => m.system?.kind === "created"));
    expect((await B.client.api.groups()).map((x) => x.id)).toContain(g.id);
    expect((await B.client.api.group(g.id)).name).toBe("Lunch");
    await A.client.api.renameGroup(g.id, "Lunch 2.0");
    await until("bob sees the name", () => B.client.conversation({ group: g.id }).title === "Lunch 2.0");
    await A.client.api.addMembers(g.id, [carol]);
    await A.client.api.makeAdmin(g.id, bob);
    await expect(B.client.api.messageReceipts(g.id, "0000000000000000")).rejects.toBeInstanceOf(ApiError);
    const m = A.client.send({ group: g.id }, { text: "noon?" });
    await until("bob has it", () => texts(B.client, { group: g.id }).includes("noon?"));
    B.client.openChat({ group: g.id });
    let rows: Awaited<ReturnType<ChatClient["api"]["messageReceipts"]>> = [];
    for (let i = 0; i < 100; i++) {
      rows = await A.client.api.messageReceipts(g.id, A.client.message(m.key)!.msg!);
      if (rows.find((r) => r.user === bob)?.readAt) break;
      await sleep(20);
    }
    expect(rows.map((r) => r.user).sort()).toEqual([bob, carol].sort());
    expect(rows.find((r) => r.user === bob)?.readAt).toEqual(expect.any(Number));
    expect(rows.find((r) => r.user === carol)?.readAt).toBeUndefined();
    await B.client.api.removeMember(g.id, bob); // leaves
    await expect(B.client.api.group(g.id)).rejects.toMatchObject({ code: "not_member" });
    await until("alice sees bob leave", () => A.client.messages({ group: g.id }).some((x) => x.system?.kind === "member_left"));
    await A.client.stop();
    await B.client.stop();
  });

  it("a group the user was removed from or left says so (the web app hides its composer), until the user is added again", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice, { e2ee: false });
    const B = await started(bob, { e2ee: false });
    const g = await A.client.createGroup("Book club", [bob]);
    const chat = { group: g.id };
    await until("bob has the group", () => B.client.messages(chat).some((m) => m.system?.kind === "created"));
    expect(B.client.conversation(chat).left).toBeUndefined();
    const notices = (c: ChatClient, kind: string) => c.messages(chat).filter((m) => m.system?.kind === kind).length;
    await A.client.api.removeMember(g.id, bob);
    await until("bob's chat says he was removed", () => B.client.conversation(chat).left === true);
    await until("alice has the removal too", () => notices(A.client, "member_removed") === 1);
    expect(A.client.conversation(chat).left).toBeUndefined(); // someone else's removal
    await A.client.api.addMembers(g.id, [bob]);
    await until("added again", () => B.client.conversation(chat).left === undefined);
    await B.client.api.removeMember(g.id, bob); // leaves
    await until("bob's chat says he left", () => B.client.conversation(chat).left === true);
    await until("alice has bob's leaving", () => notices(A.client, "member_left") === 1);
    expect(A.client.conversation(chat).left).toBeUndefined();
    await A.client.stop();
    await B.client.stop();
  });

  it("a post the group refuses (removed meanwhile) turns the message from sent to failed", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    // In the clear: the encrypting client would learn of the removal before sending at all.
    const A = await started(alice, { e2ee: false });
    const B = await started(bob, { e2ee: false });
    const g = await B.client.createGroup("Bob's", [alice]);
    await B.client.api.removeMember(g.id, alice);
    const seen: string[] = [];
    A.client.on("error", (e) => seen.push(`error ${e.code} ${e.send ?? "-"}`));
    A.client.on("messageUpdated", (e) => {
      if (e.message.status === "failed") seen.push(`failed, was ${e.previousStatus ?? "-"}`);
    });
    const m = A.client.send({ group: g.id }, { text: "let me in" });
    await until("failed", () => A.client.message(m.key)?.status === "failed");
    expect(framesOf(A.tap.frames, "sent").some((f) => f.id === m.id)).toBe(true);
    expect(A.client.message(m.key)?.error?.code).toBe("not_member");
    // The error event says the client turned the message failed, and the update says from what
    // (an app shows "not sent" once, from the update: web/app.ts).
    expect(seen).toEqual(["error not_member failed", "failed, was sent"]);
    await A.client.stop();
    await B.client.stop();
  });

  it("reading on one device clears the unread count on the user's other device (read event), with no line in the chat", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A1 = await started(alice);
    const A2 = await started(alice, { device: "tablet" });
    const B = await started(bob);
    B.client.send({ user: alice }, { text: "one" });
    B.client.send({ user: alice }, { text: "two" });
    for (const a of [A1, A2]) await until("unread 2", () => a.client.conversation({ user: bob }).unread === 2);
    A1.client.openChat({ user: bob });
    await until("tablet unread 0", () => A2.client.conversation({ user: bob }).unread === 0);
    expect(A2.client.conversation({ user: bob }).readUpTo).toBe(A1.client.conversation({ user: bob }).readUpTo);
    expect(A2.client.messages({ user: bob }).filter((m) => m.system)).toEqual([]);
    expect(framesOf(A2.tap.frames, "event").map((f) => (f.event as { kind: string }).kind)).toContain("read");
    for (const c of [A1, A2, B]) await c.client.stop();
  });

  it("typing in a group reaches the other members and goes off again; someone's typing expires without news", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice, { e2ee: false, ephemeral: { typingExpireMs: 600 } });
    const B = await started(bob, { e2ee: false });
    const g = await A.client.createGroup("Typists", [bob]);
    const group = { group: g.id };
    await until("bob knows the group", () => B.client.messages(group).length > 0);
    B.client.typing(group);
    await until("alice sees bob typing", () => A.client.typingIn(group).includes(bob));
    B.client.stopTyping(group);
    await until("off", () => A.client.typingIn(group).length === 0);
    // A raw device that says "on" and never "off": the client forgets it after typingExpireMs.
    const raw = await connect(bob, "raw");
    raw.send({ type: "typing", chat: { user: alice }, on: true });
    await until("typing in the one-to-one chat", () => A.client.typingIn({ user: bob }).includes(bob));
    const on = Date.now();
    await until("expired", () => A.client.typingIn({ user: bob }).length === 0, 3000);
    expect(Date.now() - on).toBeGreaterThan(400);
    raw.close();
    await A.client.stop();
    await B.client.stop();
  });

  it("presence: an open chat watches the peer, and hiding last seen reaches the watcher at once", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice, { e2ee: false });
    const B = await started(bob, { e2ee: false });
    B.client.setForeground(true);
    A.client.openChat({ user: bob });
    await until("bob online", () => A.client.presenceOf(bob)?.online === true);
    expect(framesOf(A.tap.sent, "watch")[0]).toEqual({ type: "watch", users: [bob] });
    expect(await B.client.api.setPrivacy({ lastSeen: "nobody" })).toEqual({ lastSeen: "nobody", readReceipts: true });
    await until("hidden", () => A.client.presenceOf(bob)?.online === false && A.client.presenceOf(bob)?.lastSeen === null);
    expect(await A.client.fetchPresence(bob)).toEqual({ user: bob, online: false, lastSeen: null });
    expect(await B.client.api.privacy()).toEqual({ lastSeen: "nobody", readReceipts: true });
    await A.client.stop();
    await B.client.stop();
  });

  it("media: a raw upload with progress, a multipart one in parts, and an expired URL refreshed (URLs are relative to the server)", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const A = await started(alice, { e2ee: false });
    const B = await started(bob, { e2ee: false });
    const tok = A.token;
    const ctx = { url: (p: string) => BASE + p, token: async () => tok, fetch: (r: Request) => worker.fetch(r) };
    const png = new Uint8Array(3000);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const progress: number[] = [];
    const ref = await singleUpload(new Blob([png]), { type: "image/png", onProgress: (p) => progress.push(p.loaded) }, ctx);
    expect(ref).toMatchObject({ type: "image/png", size: 3000, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(progress).toEqual([0, 3000]);

    const MiB = 1024 * 1024;
    const video = new Uint8Array(9 * MiB + 123);
    video.set([0, 0, 0, 0x18, ...[..."ftypisom"].map((ch) => ch.charCodeAt(0))]);
    for (let i = 16; i < video.length; i += 4096) video[i] = i & 0xff;
    progress.length = 0;
    const big = await multipartUpload(new Blob([video]), { type: "video/mp4", onProgress: (p) => progress.push(p.loaded) }, ctx);
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", video))].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(big).toMatchObject({ type: "video/mp4", size: video.length, sha256: digest });
    expect(progress).toEqual([0, 8 * MiB, video.length]);

    A.client.send({ user: bob }, { media: { ...ref, caption: "dot" } });
    await until("bob has it", () => B.client.messages({ user: alice }).some((m) => m.media));
    const got = B.client.messages({ user: alice }).find((m) => m.media)!;
    expect(got.media!.url).toMatch(/^\/v1\/media\//);
    expect(await B.client.mediaBytes(got)).toEqual(png);
    got.media!.urlExpiresAt = Date.now() - 1; // as if a day went by
    const old = got.media!.url;
    const url = await B.client.mediaUrl(got);
    expect(url).toMatch(new RegExp(`^${BASE}/v1/media/${ref.id}\\?`));
    expect(got.media!.urlExpiresAt).toBeGreaterThan(Date.now());
    expect(got.media!.url).toMatch(/^\/v1\/media\//);
    expect(old).toBeDefined();
    expect(new Uint8Array(await (await worker.fetch(new Request(url!))).arrayBuffer())).toEqual(png);
    await A.client.stop();
    await B.client.stop();
  });
});

// ---- a scripted server: only what a real one cannot produce on demand --------------

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
  opts: { head?: number; store?: ClientStore; replay?: () => Array<Record<string, unknown>>; e2ee?: boolean; fetch?: typeof fetch } = {},
) {
  const sockets: FakeSocket[] = [];
  const client = new ChatClient({
    baseUrl: BASE,
    user,
    token: "not-checked-by-the-fake",
    device: "web",
    store: opts.store ?? new MemoryStore(),
    fetch: opts.fetch ?? (async () => new Response(JSON.stringify({ error: { code: "not_found", message: "no such route" } }), { status: 404 })),
    backoff: { baseMs: 10, maxMs: 50 },
    ackDelayMs: 5,
    e2ee: opts.e2ee ?? false,
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

/** Alice's client, plain, against the sockets `socketFactory` makes (no store, no HTTP). */
function fakeServerClient(
  socketFactory: ConstructorParameters<typeof ChatClient>[0]["socketFactory"],
  backoff = { baseMs: 10, maxMs: 50 },
  extra: Partial<ConstructorParameters<typeof ChatClient>[0]> = {},
): ChatClient {
  return new ChatClient({
    baseUrl: BASE,
    user: "alice",
    token: "not-checked-by-the-fake",
    device: "web",
    fetch: async () => new Response("{}", { status: 404 }),
    backoff,
    e2ee: false,
    socketFactory,
    ...extra,
  });
}

describe("client library with a scripted server (what a real one cannot produce on demand)", () => {
  it("a server that says hello and then fails is retried with a growing backoff", async () => {
    // Review of 2026-11-28: the backoff started again at every hello.
    const client = fakeServerClient(
      () =>
        new FakeSocket((sock) => {
          sock.push({ type: "hello", protocol: 1, user: "alice", device: "web", head: 0, serverTime: Date.now() });
          sock.close(1011);
        }),
      { baseMs: 5, maxMs: 40 },
    );
    const attempts: number[] = [];
    client.on("connection", (c) => {
      if (c.state === "offline") attempts.push(c.attempt);
    });
    await client.start();
    await until("four failures", () => attempts.length >= 4, 5000);
    await client.stop();
    expect(attempts.slice(0, 4)).toEqual([1, 2, 3, 4]);
  });

  it("reconnectNow while a connection attempt is under way opens no second socket", async () => {
    // Found in this session (a test that failed under load): the second socket of the same
    // device replaced the first on the server, or the first the second; the client read the
    // 4000 as another tab taking over and stopped for good.
    let calls = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const client = fakeServerClient(async () => {
      calls++;
      await gate; // the network is slow to answer
      return new FakeSocket((sock) => {
        sock.push({ type: "hello", protocol: 1, user: "alice", device: "web", head: 0, serverTime: Date.now() });
        sock.push({ type: "synced", head: 0 });
      });
    });
    await client.start();
    await until("connecting", () => calls === 1);
    client.reconnectNow();
    client.reconnectNow();
    release();
    await online(client);
    await sleep(50);
    expect(calls).toBe(1);
    expect(client.connectionState).toBe("online");
    await client.stop();
  });

  it("each attempt's conn is higher than the last, also when the clock goes back, and after a reload", async () => {
    const conns: number[] = [];
    const store = new MemoryStore();
    const client = fakeServerClient(
      (url) => {
        conns.push(Number(new URL(url).searchParams.get("conn")));
        return new FakeSocket((s) => {
          s.push({ type: "hello", protocol: 1, user: "alice", device: "web", head: 0, serverTime: Date.now() });
          s.push({ type: "synced", head: 0 });
        });
      },
      undefined,
      { store },
    );
    await client.start();
    await online(client);
    const back = vi.spyOn(Date, "now").mockReturnValue(conns[0]! - 60_000); // the clock was a minute fast
    try {
      for (let i = 1; i <= 3; i++) {
        client.dropConnection();
        await until(`attempt ${i + 1}`, () => conns.length === i + 1 && client.connectionState === "online");
      }
    } finally {
      back.mockRestore();
    }
    expect(conns.every((c, i) => i === 0 || c > conns[i - 1]!)).toBe(true);
    expect(conns[0]).toBeGreaterThan(1_600_000_000_000); // milliseconds: a later tab's first attempt is higher

    // A reload on the same store, with the clock still behind: its first attempt is higher still.
    await client.stop();
    const reloaded = fakeServerClient(
      (url) => {
        conns.push(Number(new URL(url).searchParams.get("conn")));
        return new FakeSocket((s) => s.push({ type: "hello", protocol: 1, user: "alice", device: "web", head: 0, serverTime: Date.now() }));
      },
      undefined,
      { store },
    );
    const behind = vi.spyOn(Date, "now").mockReturnValue(conns[0]! - 60_000);
    try {
      await reloaded.start();
      await until("the reload's first attempt", () => conns.length === 5);
    } finally {
      behind.mockRestore();
    }
    expect(conns[4]).toBeGreaterThan(conns[3]!);
    await reloaded.stop();
  });

  it("a connection attempt whose token never comes is given up after the hello timeout, and the next one connects", async () => {
    // Review J: with one attempt at a time, a token fetch that hung kept the client
    // "connecting" for good: reconnectNow waited for it, and no retry was ever set.
    let tokenCalls = 0;
    const client = fakeServerClient(
      () =>
        new FakeSocket((sock) => {
          sock.push({ type: "hello", protocol: 1, user: "alice", device: "web", head: 0, serverTime: Date.now() });
          sock.push({ type: "synced", head: 0 });
        }),
      { baseMs: 10, maxMs: 50 },
      { token: () => (++tokenCalls === 1 ? new Promise<string>(() => {}) : Promise.resolve("t")), helloTimeoutMs: 300 },
    );
    // Token asks up to the moment the client is online (after it, the groups check asks one too).
    let atOnline: number | undefined;
    client.on("connection", (e) => {
      if (e.state === "online") atOnline ??= tokenCalls;
    });
    await client.start();
    await until("asked for a token", () => tokenCalls === 1);
    client.reconnectNow(); // waits for the attempt under way
    await online(client);
    expect(atOnline).toBe(2);
    await client.stop();
  });

  it("a gap is acknowledged, so the server stops sending it on every connect", async () => {
    // Review of 2026-11-28: the client only emitted it.
    const { client, sock } = scripted("alice", { head: 3, replay: () => [{ type: "gap", from: 1, to: 3, reason: "expired" }] });
    const gaps: Array<{ from: number; to: number }> = [];
    client.on("gap", (g) => gaps.push(g));
    await client.start();
    await online(client);
    await until("gap acked", () => sock().frames("ack").some((a) => a.seq === 3));
    expect(gaps).toEqual([{ from: 1, to: 3 }]);
    expect(client.lastSeq).toBe(3);
    await client.stop();
  });

  it("a gap above entries still to be replayed loses none of them: it is acknowledged after the replay", async () => {
    // The server sends every gap before the replay, one per disappeared entry: here seq 4
    // disappeared while 2 and 3 still wait for this device.
    const now = Date.now();
    const m = (seq: number) => ({ type: "message", seq, msg: `000000500000${seq}aa`, id: `b${seq}`, from: "bob", chat: { user: "bob" }, ts: now, text: `kept ${seq}` });
    const { client, sock } = scripted("alice", { head: 4, replay: () => [{ type: "gap", from: 4, to: 4, reason: "expired" }, m(2), m(3)] });
    await client.start();
    await online(client);
    expect(texts(client, { user: "bob" })).toEqual(["kept 2", "kept 3"]);
    await until("acked past the gap", () => sock().frames("ack").some((a) => a.seq === 4));
    await client.stop();
  });

  it("a group message through the inbox means the user is a member again, whatever an older event said", async () => {
    const now = Date.now();
    const group = { group: "g_0123456789abcdef0123456789abcdef" };
    const removed = { type: "event", seq: 1, chat: group, event: { kind: "member_removed", by: "bob", user: "alice" }, ts: now };
    const post = { type: "message", seq: 2, msg: "0000006000000aaa", id: "p1", from: "bob", chat: group, ts: now, text: "welcome back" };
    const { client, sock } = scripted("alice", { head: 1, replay: () => [removed] });
    await client.start();
    await online(client);
    expect(client.conversation(group).left).toBe(true);
    sock().push(post);
    await until("member again", () => client.conversation(group).left === undefined);
    await client.stop();
  });

  it("the groups' left flags are checked against the server's list once per store and after a gap, unless the inbox said something newer meanwhile", async () => {
    const now = Date.now();
    const [g1, g2, g3] = ["g_11111111111111111111111111111111", "g_22222222222222222222222222222222", "g_33333333333333333333333333333333"];
    const created = (seq: number, id: string) => ({ type: "event", seq, chat: { group: id }, event: { kind: "created", by: "bob", name: id, members: [], retention: "temporary" }, ts: now });
    const removed = (seq: number, id: string) => ({ type: "event", seq, chat: { group: id }, event: { kind: "member_removed", by: "bob", user: "alice" }, ts: now });
    // The server's object: alice is in g2 (added again while this device's copy of that event
    // expired unseen), no longer in g1 (the removal expired unseen too).
    let listed = [g2, g3];
    let calls = 0;
    let hold: Promise<void> | null = null;
    const fetchGroups = (async (input: RequestInfo | URL) => {
      const url = input instanceof Request ? input.url : String(input);
      if (!url.endsWith("/v1/groups")) return new Response("{}", { status: 404 });
      calls++;
      const answer = listed.map((id) => ({ id, name: id, role: "member" }));
      if (hold) await hold;
      return new Response(JSON.stringify({ groups: answer }), { status: 200, headers: { "content-type": "application/json" } });
    }) as typeof fetch;
    const store = new MemoryStore();
    let extra: Array<Record<string, unknown>> = [];
    const { client, sock } = scripted("alice", { head: 4, store, fetch: fetchGroups, replay: () => [created(1, g1), created(2, g2), removed(3, g2), created(4, g3), ...extra] });
    await client.start();
    await online(client);
    await until("checked", () => calls === 1 && client.conversation({ group: g1 }).left === true);
    expect(client.conversation({ group: g2 }).left).toBeUndefined();
    expect(client.conversation({ group: g3 }).left).toBeUndefined();
    // Checked once for this store: a reconnect without a gap asks nothing.
    sock().close(1006);
    await until("reconnected", () => client.connectionState === "online" && calls === 1, 3000);
    await sleep(50);
    expect(calls).toBe(1);
    // After a gap it asks again; an event that arrives while the answer is on its way wins.
    listed = [g2];
    let release: () => void = () => {};
    hold = new Promise<void>((r) => (release = r));
    extra = [{ type: "gap", from: 5, to: 5, reason: "expired" }];
    sock().close(1006);
    await until("asked again", () => calls === 2, 3000);
    sock().push({ type: "event", seq: 6, chat: { group: g3 }, event: { kind: "member_added", by: "bob", users: ["alice"], name: g3 }, ts: now });
    await until("event applied", () => client.lastSeq === 6);
    release();
    await sleep(50);
    expect(client.conversation({ group: g3 }).left).toBeUndefined();
    await client.stop();
  });

  it("disappearing messages leave the conversation and the store when they expire", async () => {
    const store = new MemoryStore();
    const { client, sock } = scripted("alice", { store });
    await client.start();
    await online(client);
    sock().push({ type: "message", seq: 1, msg: "0000003000000ddd", id: "b1", from: "bob", chat: { user: "bob" }, ts: Date.now(), text: "self-destructs", expiresAt: Date.now() + 80 });
    await until("held", () => client.messages({ user: "bob" }).length === 1);
    expect(client.conversation({ user: "bob" }).unread).toBe(1);
    await until("gone", () => client.messages({ user: "bob" }).length === 0, 2000);
    // An unread message that disappeared no longer counts as unread.
    expect(client.conversation({ user: "bob" }).unread).toBe(0);
    await client.flush();
    expect((await store.loadAll()).filter(([k]) => k.startsWith("msg:"))).toEqual([]);
    expect((await store.loadAll()).find(([k]) => k === "conv:user:bob")?.[1]).toMatchObject({ unread: 0 });
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

  it("a send resent over several reconnects still gets its retries after an `internal` error, each after its pause, with later sends behind it", async () => {
    // Review of 2026-11-28 (L4): reconnect resends used up the internal-error budget, so
    // one `internal` after five reconnects failed the message at once; and any pump
    // resent it before its pause was over.
    const { client, sockets, sock } = scripted("alice");
    await client.start();
    await online(client);
    const chat = { user: "bob" };
    client.send(chat, { text: "a" }, "a");
    for (let i = 1; i <= 6; i++) {
      await until(`on socket ${i}`, () => sockets.length === i && sock().frames("send").length === 1);
      if (i < 6) sock().close(1006);
    }
    sock().push({ type: "error", code: "internal", message: "try again", ref: "a" });
    const failedAt = Date.now();
    client.send(chat, { text: "b" }, "b"); // pumps now: neither a nor b may go before a's pause
    await sleep(300);
    const seen = sock().frames("send").map((f) => f.id);
    // (Checked while the 1 s pause can still be running, however slow this machine is.)
    if (Date.now() - failedAt < 900) expect(seen).toEqual(["a"]);
    expect(client.messages(chat).map((m) => m.status)).toEqual(["pending", "pending"]);
    await until("resent", () => sock().frames("send").length === 2, 3_000);
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(950);
    // The retried send goes alone; b follows once it is answered (b would only draw out_of_order).
    await sleep(100);
    expect(sock().frames("send").map((f) => f.id)).toEqual(["a", "a"]);
    sock().push({ type: "sent", id: "a", msg: "0000009000000aaa", ts: 9000 });
    await until("b goes", () => sock().frames("send").length === 3, 3_000);
    expect(sock().frames("send").map((f) => f.id)).toEqual(["a", "a", "b"]);
    sock().push({ type: "sent", id: "b", msg: "0000009001000aaa", ts: 9001 });
    await until("both sent", () => client.pendingSends().length === 0);
    expect(client.messages(chat).map((m) => [m.text, m.status])).toEqual([["a", "sent"], ["b", "sent"]]);
    await client.stop();
  });

  it("a read the pacer still holds when the page reloads is sent by the reloaded client", async () => {
    // Review E of 2026-11-28 (left then): `readSent` was set, and stored, when the read was
    // queued; a reload while the pacer held it stored a read that never left.
    const store = new MemoryStore();
    const { client, sock } = scripted("alice", { store });
    await client.start();
    await online(client);
    client.openChat({ user: "bob" });
    client.setForeground(true);
    // The server says slow down (no ref): the read class waits 200 ms. The page goes away
    // within them; on a machine too busy for that, the next message tries again.
    const reloaded = new MemoryStore();
    let upTo = "";
    for (let i = 1; i <= 5 && !upTo; i++) {
      const msg = `000000900${i}000bbb`;
      sock().push({ type: "error", code: "rate_limited", message: "too many frames; slow down" });
      sock().push({ type: "message", seq: i, msg, id: `b${i}`, from: "bob", chat: { user: "bob" }, ts: Date.now(), text: "hi" });
      await until("held", () => client.messages({ user: "bob" }).length === i);
      await client.flush();
      const snapshot = await store.loadAll();
      if (sock().frames("read").some((f) => f.upTo === msg)) continue; // already out: too slow to catch it
      await reloaded.write(snapshot, []);
      upTo = msg;
    }
    expect(upTo).not.toBe("");
    await client.stop();
    const again = scripted("alice", { store: reloaded });
    await again.client.start();
    await online(again.client);
    await until("the read goes out", () => again.sock().frames("read").some((f) => f.upTo === upTo), 3_000);
    await again.client.stop();
  });

  it("sends answered rate_limited go out again first, in order, after a pause, and are never marked failed", async () => {
    const { client, sock } = scripted("alice");
    await client.start();
    await online(client);
    const chat = { user: "bob" };
    for (const id of ["a", "b", "c"]) client.send(chat, { text: id }, id);
    await until("all three on the wire", () => sock().frames("send").length === 3);
    // The server processed a, and answered rate_limited to b and c (not processed).
    sock().push({ type: "sent", id: "a", msg: "0000008000000aaa", ts: 8000 });
    const limitedAt = Date.now();
    sock().push({ type: "error", code: "rate_limited", message: "too many frames; slow down", ref: "b" });
    sock().push({ type: "error", code: "rate_limited", message: "too many frames; slow down", ref: "c" });
    client.send(chat, { text: "d" }, "d"); // queued after them: it must not overtake
    await until("resent", () => sock().frames("send").length === 6, 3_000);
    const resentAfter = Date.now() - limitedAt;
    expect(sock().frames("send").map((f) => f.id)).toEqual(["a", "b", "c", "b", "c", "d"]);
    expect(resentAfter).toBeGreaterThanOrEqual(150); // held, not hammered
    // b is limited once more: still not failed, and sent again on its own.
    sock().push({ type: "error", code: "rate_limited", message: "too many frames; slow down", ref: "b" });
    await until("resent again", () => sock().frames("send").length === 7, 3_000);
    expect(sock().frames("send").at(-1)!.id).toBe("b");
    ["b", "c", "d"].forEach((id, i) => sock().push({ type: "sent", id, msg: `000000800${i + 1}000aaa`, ts: 8001 + i }));
    await until("all sent", () => client.pendingSends().length === 0);
    expect(client.messages(chat).map((m) => [m.text, m.status])).toEqual([["a", "sent"], ["b", "sent"], ["c", "sent"], ["d", "sent"]]);
    await client.stop();
  });

  it("a group message that overtakes its sender key waits, sealed, and opens when the key arrives", async () => {
    // Bob's device encrypts for real (the crypto core); the fake only delivers in the wrong order.
    const { client, sock } = scripted("alice", { e2ee: true });
    await client.start();
    await online(client);
    const alice = (client as unknown as { keyring: { device: E2eeDevice } }).keyring.device;
    const bundle = alice.publishBundle(1); // what the server would hand out for alice/web
    const bob = E2eeDevice.create("bob", "phone");
    const g = "g_0123456789abcdef0123456789abcdef";
    bob.senderKeys.prepare(g, ["alice/web"]);
    const dist = bob.senderKeys.distribution(g);
    const m1 = bob.encryptGroup(g, encodeContent({ text: "arrives before its key" }));
    const m2 = bob.encryptGroup(g, encodeContent({ text: "and another" }));
    const key = bob.encryptFor(["alice/web"], encodeContent({ senderKey: dist }), { "alice/web": { device: "web", ...bundle, oneTimePrekey: bundle.oneTimePrekeys[0]! } });
    const chat = { group: g };
    sock().push({ type: "message", seq: 1, msg: "0000007000000aaa", id: "g1", from: "bob", chat, ts: 7000, e2ee: m1 });
    sock().push({ type: "message", seq: 2, msg: "0000007001000aaa", id: "g2", from: "bob", chat, ts: 7001, e2ee: m2 });
    await until("held", () => client.messages(chat).length === 2);
    expect(client.messages(chat).map((m) => m.undecryptable)).toEqual(["no_sender_key", "no_sender_key"]);
    const updated: ChatMessage[] = [];
    client.on("messageUpdated", (e) => updated.push(e.message));
    sock().push({ type: "message", seq: 3, msg: "0000007002000aaa", id: "k1", from: "bob", chat: { user: "bob" }, ts: 7002, e2ee: { v: 1, sender: "phone", ...key.recipients["alice/web"]! } });
    await until("opened", () => texts(client, chat).every((t) => t !== undefined));
    expect(texts(client, chat)).toEqual(["arrives before its key", "and another"]);
    expect(updated.map((m) => m.id)).toEqual(["g1", "g2"]);
    expect(client.conversations().map((c) => c.key)).not.toContain("user:bob"); // the hand-over shows nowhere
    await until("acked", () => sock().frames("ack").some((a) => a.seq === 3));
    await client.stop();
  });
});
