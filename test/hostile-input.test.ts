// Bad input by property (fast-check): thousands of generated socket frames and
// HTTP requests (valid, near-valid, random JSON, random bytes, huge strings,
// wrong types, unicode edge cases). Afterwards the server still answers, no
// socket was closed with 1011, no answer carried a stack trace or `internal`,
// every frame it sent is in the protocol, and a normal exchange on the same
// socket works with the data stored before the storm intact.
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ERROR_CODES } from "../src/errors";
import { MAX_FRAME_BYTES, MAX_TEXT_CHARS } from "../src/limits";
import { call, sleep, token, uid } from "./helpers";
import { ReliableDevice, until } from "./reliable";

const FRAMES = 10_000;
/** Frames per batch; fast-check runs FRAMES / BATCH batches. */
const BATCH = 25;
/** FAULT_SEED=n replays a run; the seed is printed on failure by fast-check. */
const SEED = Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000);
const REQUESTS = 3_000;
/** Time the fake clock moves per generated frame: keeps a device under every per-second rate limit. */
const CLOCK_STEP_MS = 250;
const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);
/** What a leaked stack trace looks like: "    at fn (file.ts:1:2)" lines or file:line:col references. */
const STACK = /\n\s+at\s|\(\S+\.(?:ts|js|mjs):\d+:\d+\)|node_modules\//;

const EDGE_STRINGS = [
  "",
  " ",
  "\u0000",
  "\uD800",
  "\uDFFF",
  "a\uD83D",
  "\uFEFF",
  "\u202Etxet",
  "👩‍👩‍👧‍👦",
  "e\u0301\u0301\u0301",
  "\uFFFF\uFFFE",
  "null",
  "__proto__",
  "constructor",
  "<script>alert(1)</script>",
  "'; DROP TABLE inbox; --",
  "%00%ff",
  "x".repeat(64),
  "x".repeat(65),
];

/** encodeURIComponent, but a lone surrogate (which it refuses) becomes its raw UTF-8 bytes. */
function encodePath(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return "%ED%A0%80";
  }
}

const edgeString = fc.constantFrom(...EDGE_STRINGS);
const anyString = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "binary", maxLength: 80 }), edgeString);
const validId = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);
const nearId = fc.oneof(validId, anyString, fc.integer(), fc.constant(null), fc.constant(["x"]));
const wrongType = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant([]), fc.constant({}), anyString);

function frames(self: string, peers: string[]) {
  const user = fc.oneof(fc.constantFrom(...peers, self), nearId);
  const chat = fc.oneof(
    user.map((u) => ({ user: u })),
    nearId.map((g) => ({ group: g })),
    fc.constant({}),
    fc.record({ user: user, group: nearId }),
    wrongType,
  );
  const text = fc.oneof(anyString, fc.constant("t".repeat(MAX_TEXT_CHARS)), fc.constant("t".repeat(MAX_TEXT_CHARS + 1)), wrongType);
  const seq = fc.oneof(fc.nat(50), fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), wrongType);
  const valid = fc.oneof(
    fc.record({ type: fc.constant("send"), id: validId, to: fc.constantFrom(...peers).map((u) => ({ user: u })), text: fc.oneof(fc.string({ maxLength: 60 }), anyString) }),
    fc.record({ type: fc.constant("ack"), seq: fc.nat(40) }),
    fc.record({ type: fc.constant("read"), chat: fc.constantFrom(...peers).map((u) => ({ user: u })), upTo: validId }),
    fc.record({ type: fc.constant("typing"), chat: fc.constantFrom(...peers).map((u) => ({ user: u })), on: fc.boolean() }),
    fc.constant({ type: "active" }),
    fc.record({ type: fc.constant("watch"), users: fc.array(fc.constantFrom(...peers), { maxLength: 3 }) }),
    fc.record({ type: fc.constant("edit"), msg: validId, text: anyString }),
    fc.record({ type: fc.constant("delete"), msg: validId }),
  );
  const near = fc.oneof(
    fc.record(
      {
        type: fc.constantFrom("send", "ack", "read", "typing", "active", "watch", "edit", "delete", "Send", "send ", "", "hello", "__proto__"),
        id: nearId,
        to: chat,
        chat: chat,
        text: text,
        seq: seq,
        on: wrongType,
        users: fc.oneof(fc.array(nearId, { maxLength: 120 }), wrongType),
        msg: nearId,
        upTo: nearId,
        media: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.record({ id: nearId, type: anyString, size: seq })),
        replyTo: nearId,
        after: nearId,
      },
      { requiredKeys: [] },
    ),
    fc.tuple(valid, fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })).map(([f, k, v]) => ({ ...f, [k]: v })),
    fc.tuple(valid, fc.constantFrom("id", "to", "text", "seq", "chat", "on", "users", "msg", "upTo", "after"), wrongType).map(([f, k, v]) => ({ ...f, [k]: v })),
    fc.tuple(valid, fc.constantFrom("type", "id", "to", "text", "seq", "chat", "on", "users", "msg", "upTo")).map(([f, k]) => {
      const copy: Record<string, unknown> = { ...f };
      delete copy[k];
      return copy;
    }),
  );
  const text_ = (s: fc.Arbitrary<unknown>) => s.map((v) => ({ text: JSON.stringify(v) }));
  return fc.oneof(
    { weight: 3, arbitrary: text_(valid) },
    { weight: 4, arbitrary: text_(near) },
    { weight: 2, arbitrary: text_(fc.jsonValue({ maxDepth: 4 })) },
    { weight: 2, arbitrary: anyString.map((s) => ({ text: s })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ bytes: b })) },
    { weight: 1, arbitrary: fc.constantFrom("ping", "[]", "{}", "null", "1e999", '{"type":"send"', '{"type":"send","type":"ack","seq":1}').map((s) => ({ text: s })) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES - 100, 200_000)
        .map((n) => ({ huge: n })), // built when sent, so a counterexample prints short
    },
  );
}

/** A send whose frame is about n bytes of UTF-8 (two bytes per "é"). */
function hugeFrame(n: number, to: string): string {
  return JSON.stringify({ type: "send", id: "huge", to: { user: to }, text: "é".repeat(Math.floor(n / 2)) });
}

/** What must never come back: a stack trace, an unknown error code, `internal`, non-JSON. */
function problemsIn(frames: string[]): string[] {
  const problems: string[] = [];
  for (const raw of frames) {
    if (raw === "pong") continue;
    if (STACK.test(raw)) problems.push(`stack trace: ${raw.slice(0, 200)}`);
    let f: { type?: string; code?: string };
    try {
      f = JSON.parse(raw) as { type?: string; code?: string };
    } catch {
      problems.push(`not JSON: ${raw.slice(0, 100)}`);
      continue;
    }
    if (f.type === "error" && (!KNOWN_CODES.has(f.code ?? "") || f.code === "internal")) problems.push(`error ${f.code}: ${raw.slice(0, 200)}`);
  }
  return problems;
}

describe("hostile input", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it(`${FRAMES} generated frames on one socket: no crash, no 1011, no stack trace, data intact, socket still works`, async () => {
    const mallory = uid("mallory");
    const bob = uid("bob");
    const sink = uid("sink");
    const tm = await token(mallory, 24 * 3600);
    const tb = await token(bob, 24 * 3600);
    // Before the storm: Mallory's laptop exists (it holds entries back), Bob sent her a message.
    const laptop = new ReliableDevice(mallory, "laptop", tm);
    await laptop.connect();
    laptop.close();
    const b = new ReliableDevice(bob, "phone", tb);
    const m = new ReliableDevice(mallory, "phone", tm, false);
    await b.connect();
    await m.connect();
    b.send({ user: mallory }, "before", "stored before the storm");
    await until([b, m], () => m.seen.has(`${bob}|before`), "the message before the storm");

    // The storm: raw frames on Mallory's socket; a sentinel after each batch
    // (an ack past the head, answered with bad_ack naming it) proves the server
    // got through the batch.
    // The clock moves CLOCK_STEP_MS per frame (objects see it too), so no
    // per-second limit is crossed by sheer speed; it stays fake to the end so
    // no object ever sees time run backwards.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const received: string[] = [];
    m.ws!.addEventListener("message", (ev) => {
      received.push(ev.data as string);
    });
    let closeCode: number | null = null;
    m.ws!.addEventListener("close", (ev) => {
      closeCode = ev.code;
    });
    let sent = 0;
    let batchNo = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(frames(mallory, [sink, bob, `ghost-${mallory}`]), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        for (const f of batch) {
          m.ws!.send("bytes" in f ? f.bytes : "huge" in f ? hugeFrame(f.huge, sink) : f.text);
          vi.setSystemTime(Date.now() + CLOCK_STEP_MS);
        }
        sent += batch.length;
        const from = received.length;
        const ref = `sentinel-${batchNo++}`;
        m.ws!.send(JSON.stringify({ type: "ack", seq: Number.MAX_SAFE_INTEGER, id: ref }));
        const deadline = performance.now() + 10_000;
        while (!received.some((r) => r.includes(`"ref":"${ref}"`)) && closeCode === null && performance.now() < deadline) await sleep(1);
        expect(closeCode, "the socket was closed").toBeNull();
        expect(received.some((r) => r.includes(`"ref":"${ref}"`)), "the server answered the batch").toBe(true);
        expect(problemsIn(received.slice(from))).toEqual([]);
      }),
      { numRuns: Math.ceil(FRAMES / BATCH), seed: SEED },
    );

    expect(closeCode).toBeNull();
    expect(problemsIn(received)).toEqual([]);
    expect(m.violations).toEqual([]);

    // The same socket still works, both ways.
    m.send({ user: bob }, "after", "after the storm");
    await until([b, m], () => b.seen.has(`${mallory}|after`) && m.sent.has("after"), "a normal send after the storm");
    b.send({ user: mallory }, "reply", "still here");
    await until([b, m], () => m.seen.has(`${bob}|reply`), "a normal receive after the storm");
    // Stored data intact: the laptop is owed Bob's messages from before and after the storm, once each.
    const laptop2 = new ReliableDevice(mallory, "laptop", tm);
    await laptop2.connect();
    await until([laptop2], () => laptop2.seen.has(`${bob}|reply`), "the laptop's replay");
    const texts = [...laptop2.held.values()].flatMap((f) => (f.type === "message" && f.from === bob ? [f.text] : []));
    expect(texts).toEqual(["stored before the storm", "still here"]);
    expect(b.seen.get(`${mallory}|after`)).toBe(1);
    for (const d of [b, m, laptop2]) d.close();
    console.log(`hostile frames: ${sent} generated frames in ${batchNo} batches, ${received.length} frames back (seed ${SEED})`);
    expect(sent).toBeGreaterThanOrEqual(FRAMES);
  }, 180_000);

  it(`${REQUESTS} generated HTTP requests: never a 500 or a stack trace, errors in the protocol's shape, data intact`, async () => {
    const mallory = uid("mallory");
    const bob = uid("bob");
    const tm = await token(mallory);
    const tb = await token(bob);
    expect((await call("/v1/me", { method: "PUT", token: tb, json: { displayName: "Bob Before" } })).status).toBe(200);

    const paths = fc.oneof(
      fc.constantFrom(
        "/v1/health",
        "/v1/dev/token",
        "/v1/me",
        "/v1/me/privacy",
        `/v1/users/${bob}`,
        "/v1/users/%00",
        "/v1/users/" + "x".repeat(300),
        "/v1/groups",
        "/v1/groups/g1",
        "/v1/groups/g1/members",
        `/v1/groups/g1/members/${bob}`,
        "/v1/groups/g1/admins",
        "/v1/groups/g1/messages/m1/receipts",
        `/v1/chats/user:${bob}/settings`,
        "/v1/chats/group:g1/messages?before=zz&limit=1000",
        "/v1/chats/nonsense/messages?limit=-1",
        "/v1/media",
        "/v1/media/x/url",
        "/v1/media/x?exp=1&sig=zz",
        "/v1/connect?device=" + "%F0%9F%98%80",
        "/v1/../v1/me",
      ),
      anyString.map((s) => `/v1/${encodePath(s)}`),
    );
    const json = (a: fc.Arbitrary<unknown>) => a.map((v) => JSON.stringify(v));
    const randomBody = fc.oneof(
      json(fc.jsonValue({ maxDepth: 4 })),
      anyString,
      fc.uint8Array({ maxLength: 100 }),
      fc.constant("x".repeat(70 * 1024)),
      fc.constant(undefined),
    );
    const group = fc.oneof(validId, fc.constant("g1"), anyString.map(encodePath));
    const chatParam = fc.oneof(fc.constant(`user:${bob}`), group.map((g) => `group:${g}`), anyString.map(encodePath));
    const name = fc.oneof(anyString, wrongType, fc.constant("n".repeat(101)));
    // Each route with bodies close to what it expects, so most requests get past
    // routing and auth into validation and the objects.
    const routes: Array<fc.Arbitrary<{ method: string; path: string; body: unknown }>> = [
      fc.record({ method: fc.constant("POST"), path: fc.constant("/v1/dev/token"), body: json(fc.record({ user: nearId, ttlSeconds: fc.oneof(fc.integer(), wrongType) }, { requiredKeys: [] })) }),
      fc.record({ method: fc.constant("PUT"), path: fc.constant("/v1/me"), body: json(fc.record({ displayName: name }, { requiredKeys: [] })) }),
      fc.record({
        method: fc.constant("PUT"),
        path: fc.constant("/v1/me/privacy"),
        body: json(fc.record({ lastSeen: fc.oneof(fc.constantFrom("everyone", "nobody"), wrongType), readReceipts: fc.oneof(fc.boolean(), wrongType) }, { requiredKeys: [] })),
      }),
      fc.record({ method: fc.constant("POST"), path: fc.constant("/v1/groups"), body: json(fc.record({ name, members: fc.oneof(fc.array(fc.oneof(nearId, fc.constant(bob)), { maxLength: 250 }), wrongType) }, { requiredKeys: [] })) }),
      fc.record({ method: fc.constant("PATCH"), path: group.map((g) => `/v1/groups/${g}`), body: json(fc.record({ name }, { requiredKeys: [] })) }),
      fc.record({ method: fc.constant("POST"), path: group.map((g) => `/v1/groups/${g}/members`), body: json(fc.record({ users: fc.oneof(fc.array(nearId, { maxLength: 250 }), wrongType) }, { requiredKeys: [] })) }),
      fc.record({ method: fc.constant("DELETE"), path: fc.tuple(group, nearId).map(([g, u]) => `/v1/groups/${g}/members/${encodePath(String(u))}`), body: fc.constant(undefined) }),
      fc.record({ method: fc.constant("POST"), path: group.map((g) => `/v1/groups/${g}/admins`), body: json(fc.record({ user: nearId }, { requiredKeys: [] })) }),
      fc.record({
        method: fc.constant("PUT"),
        path: chatParam.map((c) => `/v1/chats/${c}/settings`),
        body: json(fc.record({ retention: fc.oneof(fc.constantFrom("temporary", "permanent"), wrongType), disappearAfterSeconds: fc.oneof(fc.integer(), wrongType) }, { requiredKeys: [] })),
      }),
      fc.record({
        method: fc.constant("GET"),
        path: fc.oneof(
          paths,
          fc.tuple(chatParam, anyString, fc.integer()).map(([c, b, l]) => `/v1/chats/${c}/messages?before=${encodePath(b)}&limit=${l}`),
          fc.tuple(group, nearId).map(([g, m]) => `/v1/groups/${g}/messages/${encodePath(String(m))}/receipts`),
        ),
        body: fc.constant(undefined),
      }),
      fc.record({ method: fc.constant("POST"), path: fc.constant("/v1/media"), body: randomBody }),
    ];
    const requests = fc.record({
      route: fc.oneof(...routes),
      method: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS") }),
      body: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: randomBody }),
      contentType: fc.oneof(
        { weight: 4, arbitrary: fc.constant("application/json") },
        { weight: 1, arbitrary: fc.constantFrom("text/plain", "application/json; charset=utf-16", "multipart/form-data; boundary=x", "image/png", undefined) },
      ),
      auth: fc.constantFrom("mallory", "mallory", "mallory", "mallory", "none", "garbage"),
    }).map((r) => ({ ...r, method: r.method ?? r.route.method, path: r.route.path, body: r.body ?? r.route.body }));
    let count = 0;
    await fc.assert(
      fc.asyncProperty(requests, async (r) => {
        count++;
        const headers: Record<string, string> = {};
        if (r.contentType) headers["Content-Type"] = r.contentType;
        if (r.auth === "mallory") headers.Authorization = `Bearer ${tm}`;
        if (r.auth === "garbage") headers.Authorization = "Bearer \u00ff.\u0000.x";
        const body = r.method === "GET" || r.method === "OPTIONS" ? undefined : r.body;
        let res: Response;
        try {
          res = await call(r.path, { method: r.method, headers, body: body as BodyInit | undefined });
        } catch (err) {
          // The request could not even be built (e.g. a header the runtime refuses): not the server's doing.
          if (err instanceof TypeError) return;
          throw err;
        }
        const text = await res.text();
        const problems: string[] = [];
        const where = `${r.method} ${r.path.slice(0, 80)} -> ${res.status}`;
        if (res.status >= 500) problems.push(`${where}: ${text.slice(0, 200)}`);
        if (STACK.test(text)) problems.push(`${where}: stack trace ${text.slice(0, 200)}`);
        if (res.status >= 400 && res.status !== 426 && (res.headers.get("content-type") ?? "").includes("json")) {
          const code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
          if (!code || !KNOWN_CODES.has(code)) problems.push(`${where}: error body ${text.slice(0, 200)}`);
        }
        expect(problems).toEqual([]);
      }),
      { numRuns: REQUESTS, seed: SEED },
    );
    expect(count).toBe(REQUESTS);
    // Still answering, and nobody else's data changed.
    expect((await call("/v1/health")).status).toBe(200);
    const bobProfile = (await (await call(`/v1/users/${bob}`, { token: tm })).json()) as { displayName: string };
    expect(bobProfile.displayName).toBe("Bob Before");
    // Mallory's changes may have used up her HTTP budget (10/s): let it refill a little.
    await sleep(300);
    expect((await call("/v1/me", { method: "PUT", token: tm, json: { displayName: "Mallory After" } })).status).toBe(200);
    expect(((await (await call("/v1/me", { token: tm })).json()) as { displayName: string }).displayName).toBe("Mallory After");
  }, 120_000);
});
