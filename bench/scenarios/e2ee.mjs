// Scenario 7: the cost of end-to-end encryption. Both sides are the real
// client library (src/client/, bundled for Node by bench/lib/chat-client.mjs),
// once with e2ee on and once with it off, against the same server in the same
// run, with phases alternating so both see the same machine:
//  (a) one-to-one, as scenario 1 (one message at a time, 40 ms apart, the
//      recipient acks at once): send() -> the message, decrypted, at the
//      recipient; send() -> `delivered` at the sender. Three pairs: e2ee off;
//      on, both users with one device; on, the sender with a second device
//      (which gets a ciphertext too).
//  (b) a 200-member group, as scenario 3 (one post at a time): send() -> the
//      last of the 199 members has the post, decrypted. The same 199 member
//      clients (e2ee on) are in two groups: one whose sender encrypts (sender
//      keys, handed over in the warm-up), one whose sender has e2ee off.
// The ratios include everything the encrypting and decrypting clients do:
// sealing (device lists and bundles when not cached, ratchet, signatures),
// opening, and writing the moved key state before the ack.
import { chatClient, clientLibrary, cryptoTime, requests, startClient } from "../lib/chat-client.mjs";
import { sleep, sleepRest } from "../lib/client.mjs";
import { watchStalls } from "../lib/stalls.mjs";
import { pool, ratio, summarize } from "../lib/stats.mjs";
import { createGroup } from "./groups.mjs";
import { summarizeErrors } from "./latency.mjs";

const MIN_GAP_MS = 40;
/** A one-to-one message slower than this is looked at: did this process stall meanwhile? */
const SLOW_MS = 100;
const TIMEOUT_MS = 10_000;
const POST_TIMEOUT_MS = 15_000;
/** The first encrypted post also hands the sender key to 199 devices. */
const FIRST_POST_TIMEOUT_MS = 90_000;

/** Waits on a set of listeners: until(pred, ms) resolves when pred() holds after some event. */
function waiter() {
  const waiters = new Set();
  return {
    notify: () => {
      for (const w of [...waiters]) w();
    },
    until(pred, timeoutMs) {
      if (pred()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const check = () => {
          if (!pred()) return;
          done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        const done = (ok) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(ok);
        };
        waiters.add(check);
      });
    },
  };
}

const textOf = (id) => `message ${id}`;

/** A sender and a recipient (and optionally the sender's second device), started, with arrival tracking. */
async function makePair(ctx, name, { e2ee, secondDevice = false }) {
  const a = await chatClient(ctx, ctx.user(`s7-${name}-a`), "phone", { e2ee });
  const b = await chatClient(ctx, ctx.user(`s7-${name}-b`), "phone", { e2ee });
  const a2 = secondDevice ? await chatClient(ctx, a.user, "tablet", { e2ee }) : null;
  const w = waiter();
  const pair = { name, a, b, a2, clients: [a, b, ...(a2 ? [a2] : [])], slow: [], stalls: null, arrived: new Map(), seen: new Map(), sent: new Map(), delivered: new Map(), failed: 0, errors: [], encrypted: 0, ...w };
  b.on("message", ({ message: m, source }) => {
    if (source !== "live" || m.from !== a.user) return;
    pair.seen.set(m.id, (pair.seen.get(m.id) ?? 0) + 1);
    if (m.text === textOf(m.id) && !pair.arrived.has(m.id)) {
      pair.arrived.set(m.id, performance.now());
      if (m.encrypted) pair.encrypted++;
    }
    w.notify();
  });
  a.on("messageUpdated", ({ message: m }) => {
    if (!m.mine) return;
    const at = performance.now();
    if (m.status !== "pending" && m.status !== "failed" && !pair.sent.has(m.id)) pair.sent.set(m.id, at);
    if ((m.status === "delivered" || m.status === "read") && !pair.delivered.has(m.id)) pair.delivered.set(m.id, at);
    if (m.status === "failed") pair.failed++;
    w.notify();
  });
  for (const c of pair.clients) c.on("error", (e) => pair.errors.push(e));
  for (const c of pair.clients) await startClient(c);
  return pair;
}

/** One message a -> b; its timings, or null if it did not make it in time. */
async function ping(pair, id) {
  const t0 = performance.now();
  pair.a.send({ user: pair.b.user }, { text: textOf(id) }, id);
  const ok = await pair.until(() => pair.arrived.has(id) && pair.delivered.has(id), TIMEOUT_MS);
  if (!ok) return null;
  const s = { arrive: pair.arrived.get(id) - t0, sent: pair.sent.get(id) - t0, delivered: pair.delivered.get(id) - t0 };
  if (s.arrive > SLOW_MS) pair.slow.push({ ms: s.arrive, stalled: pair.stalls?.overlaps(t0, t0 + s.arrive) ?? 0 });
  return s;
}

/** Sessions as a chat has them: a sends, b answers (confirming a's sessions), the other device too. */
async function warmPair(pair, n) {
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await ping(pair, `w${i}`);
    await sleepRest(t, MIN_GAP_MS);
    if (i === Math.floor(n / 2)) {
      pair.b.send({ user: pair.a.user }, { text: "reply" });
      if (pair.a2) pair.a2.send({ user: pair.b.user }, { text: "from the tablet" });
      await sleep(300);
    }
  }
}

async function oneToOne(ctx) {
  // p99 of 150 samples is the second-slowest message, which one disturbance
  // decides; 300 in six alternating phases makes the tail ratio a measure.
  const n = ctx.count(300, 20);
  const rounds = ctx.quick ? 2 : 6;
  const variants = [
    { key: "off", pair: await makePair(ctx, "off", { e2ee: false }) },
    { key: "on", pair: await makePair(ctx, "on", { e2ee: true }) },
    { key: "on2", pair: await makePair(ctx, "on2", { e2ee: true, secondDevice: true }) },
  ];
  const stalls = watchStalls();
  for (const v of variants) {
    await warmPair(v.pair, 10);
    v.pair.slow = [];
    v.pair.stalls = stalls;
    v.samples = { arrive: [], sent: [], delivered: [] };
    v.ids = [];
    v.seal = 0;
    v.seals = 0;
  }
  const perPhase = Math.ceil(n / rounds);
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const c0 = { ...cryptoTime };
      for (let k = 0; k < perPhase; k++) {
        const id = `m${r}x${k}`;
        v.ids.push(id);
        const t = performance.now();
        const s = await ping(v.pair, id);
        if (s) for (const key of Object.keys(v.samples)) v.samples[key].push(s[key]);
        await sleepRest(t, MIN_GAP_MS);
      }
      v.seal += cryptoTime.seal - c0.seal;
      v.seals += cryptoTime.seals - c0.seals;
      v.open = (v.open ?? 0) + cryptoTime.open - c0.open;
      v.opens = (v.opens ?? 0) + cryptoTime.opens - c0.opens;
    }
  }
  await sleep(300); // late duplicates would show up here
  stalls.stop();
  for (const v of variants) {
    v.lost = v.ids.filter((id) => !v.pair.arrived.has(id)).length;
    v.dup = [...v.pair.seen.values()].filter((c) => c > 1).length;
    v.arrive = summarize(v.samples.arrive);
    v.deliveredS = summarize(v.samples.delivered);
    v.sentS = summarize(v.samples.sent);
    for (const c of v.pair.clients) await c.stop();
  }
  return variants;
}

/** The 199 members (e2ee on), and a group each for the encrypting and the plaintext sender. */
async function groupSetup(ctx, size) {
  const members = [];
  for (let i = 1; i < size; i++) members.push(await chatClient(ctx, ctx.user(`s7-m${i}`), "phone", { e2ee: true }));
  const senderOn = await chatClient(ctx, ctx.user("s7-gsender-on"), "phone", { e2ee: true });
  const senderOff = await chatClient(ctx, ctx.user("s7-gsender-off"), "phone", { e2ee: false });
  const groups = [];
  for (const [key, sender] of [
    ["on", senderOn],
    ["off", senderOff],
  ]) {
    const g = await createGroup(ctx, sender.user, members.map((m) => m.user), `bench e2ee ${key}`);
    if (g.error) return g;
    groups.push({ key, id: g.id, sender, arrivals: new Map(), seen: new Map(), encrypted: 0, errors: [] });
  }
  const byId = new Map(groups.map((g) => [g.id, g]));
  const w = waiter();
  // A post counts when the member holds its text: decrypted (at once, or when a held one is opened).
  const note = (i, m) => {
    const g = "group" in m.chat ? byId.get(m.chat.group) : undefined;
    if (!g || m.from !== g.sender.user || m.text !== textOf(m.id)) return;
    let at = g.arrivals.get(m.id);
    if (!at) g.arrivals.set(m.id, (at = new Map()));
    if (at.has(i)) return;
    at.set(i, performance.now());
    if (m.encrypted) g.encrypted++;
    w.notify();
  };
  members.forEach((c, i) => {
    c.on("message", ({ message: m, source }) => {
      if (source !== "live") return;
      const g = "group" in m.chat ? byId.get(m.chat.group) : undefined;
      if (g && m.from === g.sender.user) g.seen.set(`${i}|${m.id}`, (g.seen.get(`${i}|${m.id}`) ?? 0) + 1);
      note(i, m);
    });
    c.on("messageUpdated", ({ message: m }) => note(i, m));
  });
  for (const g of groups) g.sender.on("error", (e) => g.errors.push(e));
  const memberErrors = [];
  for (const c of members) c.on("error", (e) => memberErrors.push(e));
  // Key generation is CPU in this process: a few at a time keeps the sockets answered.
  await pool(members.length, 8, (i) => startClient(members[i]));
  await startClient(senderOn);
  await startClient(senderOff);
  return { groups, members, memberErrors, ...w };
}

async function post(s, g, id, timeoutMs = POST_TIMEOUT_MS) {
  const want = s.members.length;
  const t0 = performance.now();
  g.sender.send({ group: g.id }, { text: textOf(id) }, id);
  await s.until(() => (g.arrivals.get(id)?.size ?? 0) >= want, timeoutMs);
  const got = [...(g.arrivals.get(id)?.values() ?? [])].map((at) => at - t0);
  return { last: got.length === want ? Math.max(...got) : null, missing: want - got.length };
}

async function groupPosts(ctx) {
  const size = Math.min(200, ctx.count(200, 20));
  const posts = ctx.count(12, 4);
  const rounds = ctx.quick ? 2 : 3;
  const t0 = performance.now();
  const s = await groupSetup(ctx, size);
  if (s.error) return { error: s.error };
  const setupMs = performance.now() - t0;
  const [gOn, gOff] = s.groups;
  // Warm-up: the first encrypted post hands the sender key to every member device.
  const t1 = performance.now();
  const first = await post(s, gOn, "w0", FIRST_POST_TIMEOUT_MS);
  const handOverMs = performance.now() - t1;
  await post(s, gOff, "w1");
  for (const g of s.groups) {
    g.last = [];
    g.missing = 0;
    g.ids = [];
    g.seals = [];
    g.lookups = 0;
    g.open = 0;
    g.opens = 0;
    g.ahead = 0;
    g.aheads = 0;
    g.aheadOk = 0;
  }
  const perPhase = Math.ceil(posts / rounds);
  for (let r = 0; r < rounds; r++) {
    for (const g of [gOff, gOn]) {
      for (let k = 0; k < perPhase; k++) {
        const id = `p${r}x${k}`;
        const c0 = { ...cryptoTime };
        const q0 = requests.devices + requests.groups;
        const res = await post(s, g, id);
        if (requests.devices + requests.groups > q0) g.lookups++;
        if (cryptoTime.seals > c0.seals) g.seals.push(cryptoTime.seal - c0.seal);
        g.open += cryptoTime.open - c0.open;
        g.opens += cryptoTime.opens - c0.opens;
        g.ahead += cryptoTime.ahead - c0.ahead;
        g.aheads += cryptoTime.aheads - c0.aheads;
        g.aheadOk += cryptoTime.aheadOk - c0.aheadOk;
        g.missing += res.missing;
        if (res.last !== null) g.last.push(res.last);
        g.ids.push(id);
        await sleep(MIN_GAP_MS);
      }
    }
  }
  await sleep(500);
  for (const g of s.groups) g.dup = [...g.seen.values()].filter((c) => c > 1).length;
  const errors = [...s.memberErrors, ...s.groups.flatMap((g) => g.errors)];
  await Promise.all([...s.members, ...s.groups.map((g) => g.sender)].map((c) => c.stop()));
  return { size, groups: s.groups, setupMs, handOverMs, firstMissing: first.missing, errors };
}

export async function scenarioE2ee(ctx) {
  await clientLibrary(); // bundling is not part of any figure
  const pairs = await oneToOne(ctx);
  await ctx.quiesce();
  const grp = await groupPosts(ctx);
  const [off, on, on2] = pairs;
  const rows = [
    { measure: "one-to-one, e2ee on: send → decrypted message at recipient", real: on.arrive, floor: off.arrive, floorLabel: "same, e2ee off", lost: on.lost, duplicated: on.dup },
    { measure: "one-to-one, e2ee on: send → `delivered` at sender", real: on.deliveredS, floor: off.deliveredS, floorLabel: "same, e2ee off", lost: null, duplicated: null },
    { measure: "one-to-one, e2ee on, sender has 2 devices: send → decrypted at recipient", real: on2.arrive, floor: off.arrive, floorLabel: "1 device, e2ee off", lost: on2.lost, duplicated: on2.dup },
    { measure: "one-to-one, e2ee on, sender has 2 devices: send → `delivered`", real: on2.deliveredS, floor: off.deliveredS, floorLabel: "1 device, e2ee off", lost: null, duplicated: null },
    { measure: "one-to-one, e2ee off (the reference above): send → message", real: off.arrive, floor: null, lost: off.lost, duplicated: off.dup },
  ];
  const targets = [
    { name: "e2ee one-to-one: message p50 ≤ 1.5× e2ee off", limit: 1.5, measured: ratio(on.arrive.p50, off.arrive.p50) },
    { name: "e2ee one-to-one: message p99 ≤ 2× e2ee off", limit: 2, measured: ratio(on.arrive.p99, off.arrive.p99) },
  ];
  const lostAll = pairs.reduce((a, v) => a + v.lost + v.dup, 0);
  const notes = [];
  const perMsg = (v) => (v.seals ? `${(v.seal / v.seals).toFixed(1)} ms sealing per message, ${(v.open / Math.max(1, v.opens)).toFixed(2)} ms per open` : "no sealing");
  notes.push(
    `both ends are the real client library (src/client/, bundled for Node at bench start, MemoryStore, acks at once), e2ee on vs off; phases of the three pairs alternate in the same run (${on.ids.length} messages per pair). ` +
      `The ratio includes everything the clients do for e2ee: sealing (Double Ratchet step, one ciphertext per recipient device; device lists cached 60 s), opening, and storing the moved key state before the ack. ` +
      `Measured inside the clients: e2ee on ${perMsg(on)}; sender with 2 devices ${perMsg(on2)}`,
  );
  const slowNote = (label, v) => {
    const slow = v.pair.slow;
    if (slow.length === 0) return `${label}: none`;
    const stalled = slow.filter((x) => x.stalled >= SLOW_MS / 2);
    return `${label}: ${slow.length} (slowest ${Math.round(Math.max(...slow.map((x) => x.ms)))} ms), ${stalled.length} of them while this process itself stalled`;
  };
  notes.push(`one-to-one messages over ${SLOW_MS} ms, and how many overlapped a stall of the bench process (its event loop blocked ≥ 100 ms, so the client, not the server, was late): ${[slowNote("e2ee off", off), slowNote("e2ee on", on), slowNote("on, 2 devices", on2)].join("; ")}`);
  if (ctx.shared.s1?.arrive?.p50) notes.push(`the client library with e2ee off vs scenario 1's bare bench client: message p50 ${ratio(off.arrive.p50, ctx.shared.s1.arrive.p50)?.toFixed(2)}×`);
  if (grp.error) {
    rows.push({ measure: `skipped: ${grp.error}`, real: null, floor: null });
    notes.push(`group part skipped: ${grp.error}`);
  } else {
    const [gOn, gOff] = grp.groups;
    const sOn = summarize(gOn.last);
    const sOff = summarize(gOff.last);
    rows.push(
      { measure: `${grp.size}-member group, e2ee on: post → last of ${grp.size - 1} members decrypted`, real: sOn, floor: sOff, floorLabel: "same members, e2ee off", lost: gOn.missing, duplicated: gOn.dup },
      { measure: `${grp.size}-member group, e2ee off (the reference above): post → last member`, real: sOff, floor: null, lost: gOff.missing, duplicated: gOff.dup },
    );
    targets.push({ name: `e2ee ${grp.size}-member post: p50 ≤ 2× e2ee off`, limit: 2, measured: ratio(sOn.p50, sOff.p50) });
    const perOpen = gOn.opens ? gOn.open / gOn.opens : null;
    const seal = summarize(gOn.seals);
    const fmt = (v) => (v === null ? "–" : v.toFixed(1));
    notes.push(
      `group: the same ${grp.size - 1} member clients (e2ee on) are in two groups of ${grp.size}, one whose sender encrypts (one sender-key ciphertext per post) and one whose sender has e2ee off; posts alternate in phases. ` +
        `All ${grp.size - 1} members run in this one Node process, so their decryptions run one after another: measured ${perOpen?.toFixed(2) ?? "–"} ms per member per post (sender-key step, and the signature check where WebCrypto did not do it ahead), ` +
        `and ${gOn.aheads ? (gOn.ahead / gOn.aheads).toFixed(2) : "–"} ms wall per member per post checking the signature ahead with WebCrypto's Ed25519 (Node's thread pool; these overlap; ${gOn.aheadOk} of ${gOn.aheads} checked there, the rest fell back to @noble's 1.3 ms inside the open), ` +
        `about ${perOpen ? ((grp.size - 1) * perOpen).toFixed(0) : "–"} ms of opening per post in all, which separate phones would spend in parallel; sealing at the sender took p50 ${fmt(seal.p50)} ms, max ${fmt(seal.max)} ms per post (a post after the sender's cached member list (30 s) or device lists (60 s per member) expired looks them up again, up to ${grp.size - 1} device-list requests; ${gOn.lookups} of ${gOn.ids.length} encrypted posts here did). ` +
        `Setup (keys for ${grp.size + 1} devices, published) took ${(grp.setupMs / 1000).toFixed(1)} s; the first encrypted post, which hands the sender key to ${grp.size - 1} devices as one-to-one messages, took ${(grp.handOverMs / 1000).toFixed(1)} s${grp.firstMissing ? ` and ${grp.firstMissing} members never read it` : ""} (warm-up, not in the figures)`,
    );
    if (gOn.encrypted === 0) notes.push("no group post arrived encrypted: the sender fell back to plaintext");
    if (grp.errors.length) notes.push(`group error events: ${summarizeErrors(grp.errors)}`);
  }
  const clientErrors = pairs.flatMap((v) => v.pair.errors);
  if (clientErrors.length) notes.push(`one-to-one error events: ${summarizeErrors(clientErrors)}`);
  if (on.pair.encrypted === 0) notes.push("no one-to-one message arrived encrypted: the e2ee pair fell back to plaintext");
  targets.push({ name: "e2ee: lost 0, duplicated 0", limit: 0, measured: lostAll + (grp.error ? 0 : grp.groups.reduce((a, g) => a + g.missing + g.dup, 0)) });
  return { id: "s7", title: "7. E2EE cost", rows, targets, notes };
}
