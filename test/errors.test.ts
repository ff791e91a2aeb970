// Bad tokens and bad input: a clear error, nothing stored, the socket still usable.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { MAX_FRAME_BYTES, MAX_TEXT_CHARS } from "../src/limits";
import { MAX_TOKEN_SOCKET_MS, verifyToken } from "../src/auth";
import { BASE, call, connect, sleep, token, uid } from "./helpers";

const SECRET = "test-secret-do-not-use";

function b64url(s: string): string {
  return btoa(s).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

async function expectUnauthorized(tok: string | null, how: "header" | "query" = "header") {
  const url = how === "query" && tok ? `/v1/me?access_token=${tok}` : "/v1/me";
  const res = await call(url, { token: how === "header" && tok ? tok : undefined });
  expect(res.status).toBe(401);
  const body = (await res.json()) as { error: { code: string } };
  expect(body.error.code).toBe("unauthorized");
  // The socket upgrade is refused the same way, before any object is touched.
  const ws = await exports.default.fetch(
    new Request(`${BASE}/v1/connect?device=d`, { headers: { Upgrade: "websocket", ...(tok ? { Authorization: `Bearer ${tok}` } : {}) } }),
  );
  expect(ws.status).toBe(401);
}

describe("authentication", () => {
  const exp = () => Math.floor(Date.now() / 1000) + 600;

  it("accepts a valid token by header and by access_token", async () => {
    const user = uid("auth");
    const tok = await token(user);
    expect((await call("/v1/me", { token: tok })).status).toBe(200);
    expect((await call(`/v1/me?access_token=${tok}`)).status).toBe(200);
  });

  it("refuses a missing token", async () => expectUnauthorized(null));
  it("refuses a garbage token", async () => expectUnauthorized("not.a.jwt"));
  it("refuses a token signed with another secret", async () =>
    expectUnauthorized(await sign({ sub: "mallory", exp: exp() }, "wrong-secret", "HS256")));
  it("refuses a token whose signature was tampered with", async () => {
    const good = await sign({ sub: "alice", exp: exp() }, SECRET, "HS256");
    const [h, , s] = good.split(".");
    await expectUnauthorized(`${h}.${b64url(JSON.stringify({ sub: "admin", exp: exp() }))}.${s}`);
  });
  it("refuses alg none", async () => {
    const h = b64url(JSON.stringify({ alg: "none", typ: "JWT" }));
    const p = b64url(JSON.stringify({ sub: "alice", exp: exp() }));
    await expectUnauthorized(`${h}.${p}.`);
  });
  it("refuses a token of another algorithm signed with the same secret", async () =>
    expectUnauthorized(await sign({ sub: "alice", exp: exp() }, SECRET, "HS512")));
  it("refuses an expired token", async () =>
    expectUnauthorized(await sign({ sub: "alice", exp: Math.floor(Date.now() / 1000) - 10 }, SECRET, "HS256")));
  it("refuses a token without exp", async () => expectUnauthorized(await sign({ sub: "alice" }, SECRET, "HS256")));
  it("refuses a token whose sub is not a valid user id", async () =>
    expectUnauthorized(await sign({ sub: "bad id/..", exp: exp() }, SECRET, "HS256")));
  it("a token whose exp is far in the future (milliseconds by mistake) keeps a socket at most a year (review H of 2026-11-28)", async () => {
    const tok = await sign({ sub: uid("ms"), exp: Date.now() }, SECRET, "HS256"); // ms: the year ~57000
    const id = await verifyToken(env, tok);
    expect(id.expiresAt).toBeLessThanOrEqual(Date.now() + MAX_TOKEN_SOCKET_MS);
    expect(id.expiresAt).toBeLessThan(new Date("2189-01-01").getTime()); // setAlarm takes it
    const s = await connect(id.user, "d", tok);
    s.send({ type: "ack", seq: 0 });
    await sleep(50);
    expect(s.closed).toBeNull();
    s.close();
  });
  it('refuses a token whose sub is "." or "..", which no URL path can name (review H of 2026-11-28)', async () => {
    for (const sub of [".", ".."]) await expectUnauthorized(await sign({ sub, exp: exp() }, SECRET, "HS256"));
    const tok = await token(uid("adm"));
    const res = await call("/v1/groups", { method: "POST", token: tok, json: { name: "g", members: [".."] } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("bad_frame");
    // Where no path is involved they stay valid, as the contract has them (review J).
    const me = uid("dots");
    const s = await connect(me, "..", await token(me));
    s.send({ type: "send", id: ".", to: { user: uid("peer") }, text: "dot" });
    expect(await s.next("sent")).toMatchObject({ id: "." });
    s.close();
  });
  it("refuses an expired token in access_token", async () =>
    expectUnauthorized(await sign({ sub: "alice", exp: Math.floor(Date.now() / 1000) - 10 }, SECRET, "HS256"), "query"));

  it("upgrade without Upgrade header is 426, bad device id is 400", async () => {
    const tok = await token(uid("u"));
    expect((await call("/v1/connect?device=d", { token: tok })).status).toBe(426);
    const res = await exports.default.fetch(
      new Request(`${BASE}/v1/connect?device=${encodeURIComponent("bad device!")}`, {
        headers: { Upgrade: "websocket", Authorization: `Bearer ${tok}` },
      }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("bad_frame");
  });
});

describe("origins", () => {
  it("with ALLOWED_ORIGINS set, an upgrade from an unlisted origin gets 403 and a listed one connects", async () => {
    const app = (await import("../src/index")).default;
    const tok = await token(uid("origin"));
    const restricted = { ...env, ALLOWED_ORIGINS: "https://chat.example, https://other.example" };
    const attempt = (origin: string) =>
      app.fetch(
        new Request(`${BASE}/v1/connect?device=d`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${tok}`, Origin: origin } }),
        restricted,
      );
    const refused = await attempt("https://evil.example");
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    const allowed = await attempt("https://other.example");
    expect(allowed.status).toBe(101);
    allowed.webSocket?.accept();
    allowed.webSocket?.close(1000);
  });

  it("a browser app on another origin can use the HTTP API (CORS), errors included; with ALLOWED_ORIGINS only those", async () => {
    // Review H of 2026-11-28: no route answered a preflight or sent Access-Control-Allow-Origin.
    const app = (await import("../src/index")).default;
    const tok = await token(uid("cors"));
    const origin = "https://app.example";
    const preflight = await call("/v1/me", { method: "OPTIONS", headers: { Origin: origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization,content-type" } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe("*");
    expect(preflight.headers.get("Access-Control-Allow-Headers")).toContain("Authorization");
    expect(preflight.headers.get("Access-Control-Allow-Methods")).toContain("PUT");
    const me = await call("/v1/me", { token: tok, headers: { Origin: origin } });
    expect(me.status).toBe(200);
    expect(me.headers.get("Access-Control-Allow-Origin")).toBe("*");
    const refused = await call("/v1/me", { headers: { Origin: origin } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("Access-Control-Allow-Origin")).toBe("*"); // the app can read why
    // The socket upgrade is untouched (a 101 takes no headers; sockets have no CORS).
    const s = await connect(uid("cors-socket"));
    s.send({ type: "ack", seq: 0 });
    await sleep(30);
    expect(s.closed).toBeNull();
    s.close();
    // With ALLOWED_ORIGINS, a listed origin is echoed and another gets no header.
    const restricted = { ...env, ALLOWED_ORIGINS: "https://app.example" };
    const listed = await app.fetch(new Request(`${BASE}/v1/me`, { headers: { Authorization: `Bearer ${tok}`, Origin: origin } }), restricted);
    expect(listed.headers.get("Access-Control-Allow-Origin")).toBe(origin);
    const other = await app.fetch(new Request(`${BASE}/v1/me`, { headers: { Authorization: `Bearer ${tok}`, Origin: "https://evil.example" } }), restricted);
    expect(other.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});

describe("directory", () => {
  it("a user reads and changes its profile; others can look it up; unknown users are 404", async () => {
    const user = uid("dir");
    const tok = await token(user);
    expect(await (await call("/v1/me", { token: tok })).json()).toEqual({ id: user, displayName: user });
    const put = await call("/v1/me", { token: tok, method: "PUT", json: { displayName: "Alice A." } });
    expect(await put.json()).toEqual({ id: user, displayName: "Alice A." });
    const other = await token(uid("other"));
    expect(await (await call(`/v1/users/${user}`, { token: other })).json()).toEqual({ id: user, displayName: "Alice A." });
    const missing = await call(`/v1/users/${uid("nobody")}`, { token: other });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("bad profile bodies get bad_json or bad_frame and change nothing", async () => {
    const user = uid("dir");
    const tok = await token(user);
    await call("/v1/me", { token: tok, method: "PUT", json: { displayName: "Kept" } });
    const badJson = await call("/v1/me", { token: tok, method: "PUT", body: "{nope", headers: { "Content-Type": "application/json" } });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { error: { code: string } }).error.code).toBe("bad_json");
    const badType = await call("/v1/me", { token: tok, method: "PUT", json: { displayName: 42 } });
    const body = (await badType.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("bad_frame");
    expect(body.error.message).toContain("displayName");
    // Review H of 2026-11-28: a lone surrogate was answered as sent but stored as U+FFFD (a
    // name that read back differently); control characters are no name either.
    // This session: bidirectional overrides and isolates (a name shown as someone else's, or
    // reordering what follows it), C1 controls, and names of nothing but invisible characters.
    const refused = [
      '{"displayName":"\\ud800x"}',
      '{"displayName":"a\\u0000b"}',
      '{"displayName":"line\\nbreak"}',
      '{"displayName":"\\u202eecilA"}',
      '{"displayName":"Bob\\u2066 (admin)"}',
      '{"displayName":"next\\u0085line"}',
      '{"displayName":"\\u200b\\u200d\\u2060"}',
      '{"displayName":"\\u3000\\u00a0"}',
    ];
    for (const raw of refused) {
      const res = await call("/v1/me", { token: tok, method: "PUT", body: raw, headers: { "Content-Type": "application/json" } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("bad_frame");
    }
    expect(await (await call("/v1/me", { token: tok })).json()).toMatchObject({ displayName: "Kept" });
    // A name with emoji (surrogate pairs) is text, and reads back the same.
    expect(await (await call("/v1/me", { token: tok, method: "PUT", json: { displayName: "Kept 👋🏽" } })).json()).toMatchObject({ displayName: "Kept 👋🏽" });
    expect(await (await call("/v1/me", { token: tok })).json()).toMatchObject({ displayName: "Kept 👋🏽" });
    // Right-to-left names keep their direction marks and joiners (a ZWJ emoji sequence too).
    for (const name of ["\u200fمحمد", "שירה", "Family 👨\u200d👩\u200d👧"]) {
      expect(await (await call("/v1/me", { token: tok, method: "PUT", json: { displayName: name } })).json()).toMatchObject({ displayName: name });
    }
    // Group names follow the same rule.
    const group = await call("/v1/groups", { token: tok, method: "POST", json: { name: "Admins\u202e", members: [] } });
    expect(group.status).toBe(400);
    expect(((await group.json()) as { error: { code: string } }).error.code).toBe("bad_frame");
  });

  it("a JSON body over 64 KiB is too_large counted in bytes, also when it streams without a Content-Length", async () => {
    // Review of 2026-11-28: the limit counted UTF-16 characters, and a chunked body was
    // read whole before it was checked.
    const tok = await token(uid("big"));
    const expectTooLarge = async (body: BodyInit) => {
      const res = await call("/v1/me", { token: tok, method: "PUT", body, headers: { "Content-Type": "application/json" } });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("too_large");
    };
    const streamOf = (parts: Uint8Array[]) =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = parts.shift();
          if (next) controller.enqueue(next);
          else controller.close();
        },
      });
    // 40,000 characters, 80,000 bytes, streamed (no Content-Length to refuse it by).
    const wide = new TextEncoder().encode(JSON.stringify({ displayName: "é".repeat(40_000) }));
    await expectTooLarge(streamOf([wide.slice(0, 40_000), wide.slice(40_000)]));
    const chunk = new TextEncoder().encode(" ".repeat(16 * 1024));
    let sent = 0;
    await expectTooLarge(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          // Far more than the limit: the server stops reading long before the end.
          if (sent++ < 400) controller.enqueue(chunk);
          else controller.close();
        },
      }),
    );
    expect(sent).toBeLessThan(400);
  });

  it("dev tokens are refused where DEV_AUTH is not on", async () => {
    const res = await (await import("../src/index")).default.fetch(
      new Request(`${BASE}/v1/dev/token`, { method: "POST", body: JSON.stringify({ user: "x" }), headers: { "Content-Type": "application/json" } }),
      { ...env, DEV_AUTH: "false" },
    );
    expect(res.status).toBe(404);
  });
});

describe("bad frames on a socket", () => {
  it("every bad frame gets its error code, the socket stays usable and nothing is stored", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const b = await connect(bob);
    const cases: Array<[unknown, string, string?]> = [
      ["{not json", "bad_json"],
      ["[1,2,3]", "bad_frame"],
      ['"just a string"', "bad_frame"],
      [{ type: "nope" }, "bad_frame", "type"],
      [{ noType: true }, "bad_frame", "type"],
      [{ type: "send", id: "a1", to: { user: bob } }, "bad_frame", "text"],
      [{ type: "send", id: "a2", to: { user: bob }, text: 5 }, "bad_frame", "text"],
      // An empty text is no content: a message without media needs a character.
      [{ type: "send", id: "a2e", to: { user: bob }, text: "" }, "bad_frame", "text"],
      [{ type: "send", id: "bad id!", to: { user: bob }, text: "x" }, "bad_frame", "id"],
      [{ type: "send", id: "a3", to: { user: "not a user!" }, text: "x" }, "bad_frame", "to"],
      [{ type: "send", id: "a4", to: { user: bob, group: "g" }, text: "x" }, "bad_frame", "to"],
      [{ type: "send", id: "a5", to: { user: alice }, text: "me" }, "bad_frame", "to"],
      [{ type: "send", id: "a6", to: { user: bob }, text: "x".repeat(MAX_TEXT_CHARS + 1) }, "bad_frame", "text"],
      [{ type: "send", id: "a7", to: { user: bob }, text: "x".repeat(MAX_FRAME_BYTES) }, "too_large"],
      [{ type: "send", id: "a8", to: { user: bob }, text: "é".repeat(MAX_FRAME_BYTES / 2 - 10) }, "too_large"],
      [{ type: "send", id: "a9", to: { group: "g_madeup" }, text: "x" }, "not_member"],
      [{ type: "ack", seq: 999 }, "bad_ack"],
      [{ type: "ack", seq: -1 }, "bad_frame", "seq"],
      [{ type: "ack", seq: "1" }, "bad_frame", "seq"],
      [{ type: "read", chat: { user: bob } }, "bad_frame", "upTo"],
    ];
    for (const [frame, code, field] of cases) {
      a.send(frame);
      const err = await a.next("error");
      expect(err.code, JSON.stringify(frame).slice(0, 80)).toBe(code);
      if (field) expect(err.message).toContain(field);
      expect(err.message).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    }
    a.ws.send(new Uint8Array([1, 2, 3]));
    expect((await a.next("error")).code).toBe("unsupported_frame");
    // The error names the offending frame by its id.
    a.send({ type: "send", id: "refme", to: { user: bob }, text: 1 });
    expect((await a.next("error")).ref).toBe("refme");
    // Still usable, and nothing of the bad frames was stored or delivered.
    a.send({ type: "send", id: "ok", to: { user: bob }, text: "fine" });
    await a.next("sent");
    const m = await b.next("message");
    expect(m.text).toBe("fine");
    expect(m.seq).toBe(1);
    expect(a.closed).toBeNull();
    const stored = await runInDurableObject(env.USERS.getByName(alice), (_o, state) =>
      state.storage.sql.exec<{ id: string }>("SELECT id FROM sent_ids").toArray().map((r) => r.id),
    );
    expect(stored).toEqual(["ok"]);
    await sleep(50);
  });
});
