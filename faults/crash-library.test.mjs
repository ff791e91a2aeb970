// Crash, through the client library: crash.test.mjs with the real client
// library (src/client/, bundled for Node as the benchmark does) on every
// device, end-to-end encryption on, as an app ships it. Five senders queue
// messages to an online and an offline recipient while the server is killed
// with SIGKILL (its whole process group, workerd included) and restarted on
// the same state directory and port. The library keeps every send in its store
// until `sent`, reconnects by itself and resends with the same id and the same
// sealed frame.
//
// What must hold: every message arrives exactly once, in each sender's order,
// decrypted to what was sent; the ones confirmed before the crash as well as
// the ones whose `sent` the crash swallowed. The second test does the same in
// a 12-member group, three members posting (sender keys), one member offline
// through the crash. `npm run test:faults`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { sleep } from "../bench/lib/client.mjs";
import { clientLibrary, startClient } from "../bench/lib/chat-client.mjs";
import { crashableServer, libraryClient, seeded, waitFor } from "./lib/run.mjs";

const SENDERS = 5;
const PER_SENDER = 100;
const RATE = 20; // per second per sender

test("kill -9 while client-library senders (e2ee) queue messages: every message arrives exactly once, in order, decrypted", { timeout: 240_000 }, async (t) => {
  const { random, say } = seeded(t);
  const killAfterMs = 500 + Math.floor(random() * 4000);
  say(`kill after ${killAfterMs} ms`);

  const lib = await clientLibrary();
  const server = await crashableServer("crash-lib");
  const base = server.url; // the same after the restart: same port
  const run = Date.now().toString(36);
  const errors = [];
  const make = (user, device, store) => libraryClient({ base, user, device, store, errors });
  const start = startClient;
  /** Arrivals at a recipient: key -> count, and the order they came in. */
  const track = (c, into) => {
    c.on("message", ({ message: m, source }) => {
      if (source !== "live") return;
      into.count.set(m.key, (into.count.get(m.key) ?? 0) + 1);
      into.order.push(m);
    });
  };
  const online = await make(`on-${run}`, "phone");
  const offlineStore = new lib.MemoryStore();
  const offline = await make(`off-${run}`, "phone", offlineStore);
  const senders = await Promise.all(Array.from({ length: SENDERS }, (_, i) => make(`s${i}-${run}`, "phone")));
  const atOnline = { count: new Map(), order: [] };
  const atOffline = { count: new Map(), order: [] };
  track(online, atOnline);
  let offline2 = null;
  try {
    await start(online);
    // The offline recipient's device and keys exist before anything is sent: it is owed all of it.
    await start(offline);
    await offline.stop();
    for (const s of senders) await start(s);

    const recipientOf = (k) => (k % 2 === 0 ? online.user : offline.user);
    const textOf = (i, k) => `sender ${i} message ${k}`;
    const sending = senders.map(async (s, i) => {
      for (let k = 0; k < PER_SENDER; k++) {
        s.send({ user: recipientOf(k) }, { text: textOf(i, k) }, `m${k}`);
        await sleep(1000 / RATE);
      }
    });
    await sleep(killAfterMs);
    const confirmed = () => senders.map((s) => s.messages({ user: online.user }).concat(s.messages({ user: offline.user })).filter((m) => m.msg !== undefined).length);
    server.kill(); // SIGKILL to the whole group; the state directory stays
    t.diagnostic(`killed; confirmed before the crash: ${confirmed().join(", ")}`);
    await server.restart();
    await Promise.all(sending);

    // Every send confirmed in the end: the library resends whatever the crash left unconfirmed.
    await waitFor(() => senders.every((s) => s.pendingSends().length === 0), 90_000);
    assert.deepEqual(senders.map((s) => s.pendingSends().length), senders.map(() => 0), "every send confirmed");

    offline2 = await make(offline.user, "phone", offlineStore);
    track(offline2, atOffline);
    await start(offline2);
    const owed = (r) => senders.flatMap((s, i) => Array.from({ length: PER_SENDER }, (_, k) => k).filter((k) => recipientOf(k) === r.user).map((k) => ({ key: `user:${s.user}|${s.user}|m${k}`, text: textOf(i, k), from: s.user, k })));
    const hasAll = (r, at) => owed(r).every((m) => at.count.has(m.key));
    assert.ok(await waitFor(() => hasAll(online, atOnline), 90_000), "every message at the online recipient");
    assert.ok(await waitFor(() => hasAll(offline2, atOffline), 90_000), "every message at the offline recipient");
    await sleep(1500); // duplicates, if any, would arrive now

    for (const [r, at] of [[online, atOnline], [offline2, atOffline]]) {
      const dups = [...at.count].filter(([, n]) => n > 1).map(([k]) => k);
      assert.deepEqual(dups, [], `${r.user} was shown these more than once`);
      assert.equal(at.count.size, owed(r).length, `${r.user} got messages nobody sent it`);
      for (const m of owed(r)) {
        const held = r.message(m.key);
        assert.equal(held?.text, m.text, `${r.user}: ${m.key} must read as sent`);
        assert.ok(held.encrypted, `${r.user}: ${m.key} must have come encrypted`);
      }
      // Per-sender order, as the recipient applied them.
      const last = new Map();
      for (const m of at.order) {
        const k = Number(m.id.slice(1));
        assert.ok((last.get(m.from) ?? -1) < k, `${r.user}: ${m.from} ${m.id} arrived after a later message; error events: ${errors.slice(0, 10).join("; ") || "none"}`);
        last.set(m.from, k);
      }
    }
    t.diagnostic(`delivered: online ${atOnline.order.length}, offline ${atOffline.order.length}; ${errors.length} error events${errors.length ? `, e.g. ${errors[0]}` : ""}`);
  } finally {
    for (const c of [online, offline, offline2, ...senders]) await c?.stop().catch(() => {});
    server.close();
  }
});

test("kill -9 while client-library members (e2ee) post to a group: every post reaches every member once, in order, decrypted", { timeout: 240_000 }, async (t) => {
  const MEMBERS = 12; // members 0..2 post; the last one is offline during the crash
  const POSTERS = 3;
  const POSTS = 60; // each, paced
  const { random, say } = seeded(t);
  const killAfterMs = 300 + Math.floor(random() * 2500);
  say(`kill after ${killAfterMs} ms`);

  const server = await crashableServer("crash-lib-group");
  const base = server.url;
  const run = Date.now().toString(36);
  const errors = [];
  const users = Array.from({ length: MEMBERS }, (_, i) => `G${i}-${run}`);
  const stores = users.map(() => null);
  const clients = [];
  const arrivals = users.map(() => ({ count: new Map(), order: [] }));
  const make = async (i) => {
    const lib = await clientLibrary();
    stores[i] ??= new lib.MemoryStore();
    const c = await libraryClient({ base, user: users[i], device: "phone", store: stores[i], errors });
    c.on("message", ({ message: m, source }) => {
      if (source !== "live" || !m.chat?.group || m.mine || m.system) return;
      arrivals[i].count.set(m.key, (arrivals[i].count.get(m.key) ?? 0) + 1);
      arrivals[i].order.push(m);
    });
    return c;
  };
  let late = null;
  try {
    for (let i = 0; i < MEMBERS; i++) clients.push(await make(i));
    for (const c of clients) await startClient(c);
    const group = (await clients[0].createGroup(`crash ${run}`, users.slice(1))).id;
    // Every member knows the group (its creation event) before anyone posts.
    const knows = (c) => c.conversations().some((v) => v.chat.group === group);
    assert.ok(await waitFor(() => clients.every(knows), 30_000, 50), "every member has the group");
    await clients[MEMBERS - 1].stop(); // offline from here until after the crash

    const textOf = (p, k) => `${users[p]} post ${k}`;
    // Each poster's first post alone, read by every online member: its sender key is handed
    // over, so the crash lands on a steady stream rather than on the key set-up.
    clients.slice(0, POSTERS).forEach((c, p) => c.send({ group }, { text: textOf(p, 0) }, "p0"));
    const firstIn = () =>
      clients.slice(0, MEMBERS - 1).every((c, i) => clients.slice(0, POSTERS).every((_, p) => p === i || c.message(`group:${group}|${users[p]}|p0`)?.text === textOf(p, 0)));
    assert.ok(await waitFor(firstIn, 60_000, 50), "every online member read the first posts");
    const sending = clients.slice(0, POSTERS).map(async (c, p) => {
      for (let k = 1; k < POSTS; k++) {
        c.send({ group }, { text: textOf(p, k) }, `p${k}`);
        await sleep(50);
      }
    });
    await sleep(killAfterMs);
    server.kill(); // SIGKILL to the whole group; the state directory stays
    t.diagnostic(`killed; confirmed before the crash: ${clients.slice(0, POSTERS).map((c) => c.messages({ group }).filter((m) => m.mine && m.msg !== undefined).length).join(", ")}`);
    await server.restart();
    await Promise.all(sending);

    assert.ok(await waitFor(() => clients.slice(0, POSTERS).every((c) => c.pendingSends().length === 0), 120_000), "every post confirmed");
    late = await make(MEMBERS - 1);
    await startClient(late);
    const owed = (i) => Array.from({ length: POSTERS }, (_, p) => p).filter((p) => p !== i).flatMap((p) => Array.from({ length: POSTS }, (_, k) => ({ key: `group:${group}|${users[p]}|p${k}`, text: textOf(p, k) })));
    const receivers = [...clients.slice(0, MEMBERS - 1), late];
    assert.ok(await waitFor(() => receivers.every((c, i) => owed(i).every((m) => arrivals[i].count.has(m.key))), 120_000), "every post at every member");
    await sleep(1500); // duplicates, if any, would arrive now

    receivers.forEach((c, i) => {
      const dups = [...arrivals[i].count].filter(([, n]) => n > 1).map(([k]) => k);
      assert.deepEqual(dups, [], `${users[i]} was shown these more than once`);
      const expected = new Set(owed(i).map((m) => m.key));
      assert.deepEqual([...arrivals[i].count.keys()].filter((k) => !expected.has(k)), [], `${users[i]} got posts nobody sent it`);
      for (const m of owed(i)) {
        const held = c.message(m.key);
        assert.equal(held?.text, m.text, `${users[i]}: ${m.key} must read as sent`);
        assert.ok(held.encrypted, `${users[i]}: ${m.key} must have come encrypted`);
      }
      const last = new Map();
      for (const m of arrivals[i].order) {
        const k = Number(m.id.slice(1));
        assert.ok((last.get(m.from) ?? -1) < k, `${users[i]}: ${m.from} ${m.id} arrived after a later post`);
        last.set(m.from, k);
      }
    });
    t.diagnostic(`delivered ${arrivals.reduce((a, x) => a + x.order.length, 0)} copies; ${errors.length} error events${errors.length ? `, e.g. ${errors[0]}` : ""}`);
  } finally {
    for (const c of [...clients, late]) await c?.stop().catch(() => {});
    server.close();
  }
});
