// Scenario 1 (one-to-one latency) and scenario 6 (the same while the peers
// flood typing/active). One message at a time from Alice to Bob, both
// connected: send -> `message` at Bob, and send -> `delivered` back at Alice
// (Bob acks at once). The floor does the same hop through a bare relay object:
// a -> b, then b answers a (the ack/receipt round trip). Real and floor
// samples alternate one by one, so both see the same machine at the same time.
import { Client, floorSocket, sleep, sleepRest } from "../lib/client.mjs";
import { ratio, summarize } from "../lib/stats.mjs";

/** Below the per-device send limit (30/s): one message at most every 40 ms. */
const MIN_GAP_MS = 40;
/**
 * A floor ping has no send limit; this gap lets the floor's own trailing
 * frames land before the next sample (a real message's trailing ack and
 * receipt land inside its MIN_GAP_MS).
 */
const FLOOR_GAP_MS = 12;
const TIMEOUT_MS = 10_000;

export async function connectPair(ctx, prefix) {
  const alice = new Client({ base: ctx.base, user: ctx.user(`${prefix}-alice`), device: "phone" });
  const bob = new Client({ base: ctx.base, user: ctx.user(`${prefix}-bob`), device: "phone" });
  await alice.connect();
  await bob.connect();
  return { alice, bob };
}

/** One message Alice -> Bob; resolves with its timings, or null if it did not make it in time. */
export async function realPing(alice, bob, id) {
  const key = `${alice.user}|${id}`;
  const t0 = performance.now();
  alice.send({ user: bob.user }, id, `message ${id}`);
  try {
    await bob.until(() => bob.seenIds.has(key), TIMEOUT_MS, `message ${id}`);
    await alice.until(() => alice.sent.has(id) && alice.delivered.has(alice.sent.get(id).msg), TIMEOUT_MS, `delivered ${id}`);
  } catch {
    return null;
  }
  const got = bob.messages.findLast((m) => m.frame.id === id && m.frame.from === alice.user);
  const sent = alice.sent.get(id);
  return { arrive: got.at - t0, sent: sent.at - t0, delivered: alice.delivered.get(sent.msg) - t0 };
}

/**
 * A relay pair on the floor object: ping(i) sends a -> b, b answers at once.
 * With `durable`, the pair is on the durable floor (one commit per object).
 */
export async function floorPair(ctx, room, { durable = false } = {}) {
  const arrivals = new Map();
  const returns = new Map();
  let wake = null;
  const a = await floorSocket(ctx.base, room, "a", {
    durable,
    onMessage: (data, at) => {
      returns.set(JSON.parse(data).ack, at);
      wake?.();
    },
  });
  const b = await floorSocket(ctx.base, room, "b", {
    durable,
    onMessage: (data, at) => {
      const f = JSON.parse(data);
      arrivals.set(f.id, at);
      b.send(JSON.stringify({ to: "a", ack: f.id }));
    },
  });
  return {
    async ping(i) {
      const t0 = performance.now();
      a.send(JSON.stringify({ to: "b", id: i, text: `message ${i}` }));
      const deadline = t0 + TIMEOUT_MS;
      while (!returns.has(i) && performance.now() < deadline) {
        await new Promise((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      if (!returns.has(i)) return null;
      return { arrive: arrivals.get(i) - t0, back: returns.get(i) - t0 };
    },
    close() {
      a.close();
      b.close();
    },
  };
}

/** Lost = never arrived at all, checked at the end (a late arrival is slow, not lost). */
function countLost(alice, bob, ids) {
  return ids.filter((id) => !bob.seenIds.has(`${alice.user}|${id}`)).length;
}

export async function scenarioLatency(ctx) {
  const n = ctx.count(300, 50);
  const warmup = ctx.quick ? 10 : 20;
  const { alice, bob } = await connectPair(ctx, "s1");
  const floor = await floorPair(ctx, ctx.user("s1-floor"));
  const durable = await floorPair(ctx, ctx.user("s1-durable-floor"), { durable: true });
  const real = { arrive: [], sent: [], delivered: [] };
  const fl = { arrive: [], back: [] };
  const dfl = { arrive: [], back: [] };
  const ids = [];
  let floorLost = 0;
  for (let i = 0; i < warmup + n; i++) {
    const id = `m${i}`;
    ids.push(id);
    const t0 = performance.now();
    const r = await realPing(alice, bob, id);
    if (r && i >= warmup) for (const k of Object.keys(real)) real[k].push(r[k]);
    await sleepRest(t0, MIN_GAP_MS);
    for (const [pair, into] of [[floor, fl], [durable, dfl]]) {
      const start = performance.now();
      const f = await pair.ping(i);
      if (!f) floorLost++;
      else if (i >= warmup) for (const k of Object.keys(into)) into[k].push(f[k]);
      await sleepRest(start, FLOOR_GAP_MS);
    }
  }
  await sleep(300); // late duplicates would show up here
  const lost = countLost(alice, bob, ids);
  const duplicated = bob.duplicates;
  const errors = [...alice.errors, ...bob.errors];
  alice.close();
  bob.close();
  floor.close();
  durable.close();
  const arrive = summarize(real.arrive);
  const fArrive = summarize(fl.arrive);
  const dArrive = summarize(dfl.arrive);
  const delivered = summarize(real.delivered);
  ctx.shared.s1 = { arrive, delivered };
  return {
    id: "s1",
    title: "1. One-to-one latency",
    rows: [
      { measure: "send → message at recipient", real: arrive, floor: fArrive, floorLabel: "relay a→b", lost, duplicated },
      { measure: "send → `sent` at sender", real: summarize(real.sent), floor: null, lost: null, duplicated: null },
      { measure: "send → `delivered` at sender", real: delivered, floor: summarize(fl.back), floorLabel: "relay a→b→a", lost: null, duplicated: null },
      { measure: "durable floor: a→b, one commit in each object", real: dArrive, floor: fArrive, floorLabel: "relay a→b", lost: null, duplicated: null },
    ],
    durable: [
      { measure: "send → message at recipient", real: arrive, durable: dArrive, relay: fArrive },
      { measure: "send → `delivered` at sender", real: delivered, durable: summarize(dfl.back), relay: summarize(fl.back) },
    ],
    targets: [
      { name: "one-to-one p50 ≤ 2× relay floor", limit: 2, measured: ratio(arrive.p50, fArrive.p50), floorMeasured: ratio(dArrive.p50, fArrive.p50) },
      { name: "one-to-one p99 ≤ 3× relay floor", limit: 3, measured: ratio(arrive.p99, fArrive.p99), floorMeasured: ratio(dArrive.p99, fArrive.p99) },
      { name: "one-to-one: lost 0, duplicated 0", limit: 0, measured: lost + duplicated + floorLost },
    ],
    notes: errors.length ? [`error frames: ${summarizeErrors(errors)}`] : [],
  };
}

/**
 * Scenario 6: scenario 1 while both peers and other users flood typing/active
 * at their limit. Phases with and without the flood alternate on the same
 * pair, so the ratio compares like with like.
 */
export async function scenarioPresence(ctx) {
  const n = ctx.count(200, 40);
  const phases = ctx.quick ? 2 : 6;
  const warmup = ctx.quick ? 10 : 20;
  const { alice, bob } = await connectPair(ctx, "s6");
  // Background users who watch both peers and type at them: presence traffic
  // lands on the very objects that carry the measured messages.
  const helpers = ctx.count(10, 4);
  const flooders = [
    { client: alice, chat: { user: bob.user }, watch: [bob.user] },
    { client: bob, chat: { user: alice.user }, watch: [alice.user] },
  ];
  for (let i = 0; i < helpers; i++) {
    const c = new Client({ base: ctx.base, user: ctx.user(`s6-typist${i}`), device: "phone" });
    await c.connect();
    flooders.push({ client: c, chat: { user: i % 2 ? alice.user : bob.user }, watch: [alice.user, bob.user] });
  }
  let flooding = false;
  let done = false;
  let floodFrames = 0;
  let floodMs = 0;
  // 5 frames/s is the typing/active limit per device: stay just under it
  // (3 typing + 1.5 active per second) whichever way the limit is shared.
  const flood = async (f) => {
    await sleep(Math.random() * 300);
    for (let k = 0; !done; k++) {
      if (flooding) {
        if (k % 20 === 0) f.client.raw({ type: "watch", users: f.watch });
        if (k % 2 === 0 && f.client.raw({ type: "active" })) floodFrames++;
        if (f.client.raw({ type: "typing", chat: f.chat, on: k % 3 !== 2 })) floodFrames++;
      }
      await sleep(1000 / 3);
    }
  };
  const loops = flooders.map(flood);
  const on = { arrive: [], delivered: [] };
  const off = { arrive: [], delivered: [] };
  const ids = [];
  let i = 0;
  for (let w = 0; w < warmup; w++, i++) {
    ids.push(`m${i}`);
    await realPing(alice, bob, `m${i}`);
    await sleep(MIN_GAP_MS);
  }
  for (let p = 0; p < phases; p++) {
    flooding = p % 2 === 1;
    const into = flooding ? on : off;
    const t0 = performance.now();
    if (flooding) await sleep(500); // let the flood reach full rate
    for (let k = 0; k < Math.ceil((2 * n) / phases); k++, i++) {
      const id = `m${i}`;
      ids.push(id);
      const t = performance.now();
      const r = await realPing(alice, bob, id);
      if (r) for (const key of Object.keys(into)) into[key].push(r[key]);
      await sleepRest(t, MIN_GAP_MS);
    }
    if (flooding) floodMs += performance.now() - t0;
    flooding = false;
    await sleep(500); // the flood's frames drain before a quiet phase
  }
  done = true;
  await Promise.all(loops);
  await sleep(300);
  const lost = countLost(alice, bob, ids);
  const duplicated = bob.duplicates;
  const errors = flooders.flatMap((f) => f.client.errors);
  for (const f of flooders) f.client.close();
  const arrive = summarize(on.arrive);
  const quiet = summarize(off.arrive);
  const notes = [
    `${phases} alternating phases without and with the flood on the same pair; during the flood both peers and ${helpers} other users sent typing 3/s + active 1.5/s each (${Math.round(floodFrames / (floodMs / 1000))} presence frames/s in all), the others watching both peers`,
  ];
  if (ctx.shared.s1?.arrive?.p50) notes.push(`compared with scenario 1 instead: p50 ${ratio(arrive.p50, ctx.shared.s1.arrive.p50).toFixed(2)}×`);
  if (errors.length) notes.push(`error frames during the flood: ${summarizeErrors(errors)}`);
  if (errors.some((e) => e.code === "bad_frame" && /typing|active|watch/.test(e.message ?? ""))) {
    notes.push("the server refused typing/active/watch as unsupported: presence has not landed on this build, so this measures only the cost of refusing them");
  }
  return {
    id: "s6",
    title: "6. Presence under load",
    rows: [
      { measure: "send → message at recipient, during the flood", real: arrive, floor: quiet, floorLabel: "same pair, no flood", lost, duplicated },
      { measure: "send → `delivered` at sender, during the flood", real: summarize(on.delivered), floor: summarize(off.delivered), floorLabel: "same pair, no flood", lost: null, duplicated: null },
    ],
    targets: [
      { name: "presence flood: message p50 ≤ 1.2× without it", limit: 1.2, measured: ratio(arrive.p50, quiet.p50) },
      { name: "presence flood: lost 0, duplicated 0", limit: 0, measured: lost + duplicated },
    ],
    notes,
  };
}

export function summarizeErrors(errors) {
  const by = new Map();
  for (const e of errors) by.set(e.code, (by.get(e.code) ?? 0) + 1);
  return [...by].map(([k, v]) => `${k} ×${v}`).join(", ");
}
