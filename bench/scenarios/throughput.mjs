// Scenario 2 (one-to-one throughput: many pairs sending at once) and the held
// load (1,000 sockets, a steady aggregate rate for a minute). Senders respect
// the per-device send limit and keep a bounded number of messages in flight,
// so the latency under load is a latency, not the length of a queue the
// client built.
import { Client, connectAll, floorSocket, sleep } from "../lib/client.mjs";
import { pool, ratio, summarize } from "../lib/stats.mjs";
import { summarizeErrors } from "./latency.mjs";

/** Per device: below the send limit of 30/s (burst 60). */
const RATE_PER_SENDER = 25;
/** Messages a sender may have sent but not yet seen arrive. */
const WINDOW = 4;
/** After sending stops, wait for the rest while it keeps arriving; give up after this long without progress. */
const STALL_MS = 20_000;

/** Waits until count() reaches target, or until it stops moving for STALL_MS. */
async function drainUntil(count, target) {
  let last = -1;
  let since = performance.now();
  while (count() < target) {
    const c = count();
    if (c !== last) {
      last = c;
      since = performance.now();
    } else if (performance.now() - since > STALL_MS) return;
    await sleep(100);
  }
}

/** Per-pair sending state; wait() resolves on the next arrival, or after 100 ms. */
function newPair() {
  return {
    sentCount: 0,
    arrived: 0,
    wake: null,
    wait() {
      return new Promise((r) => {
        const t = setTimeout(r, 100);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          r();
        };
      });
    },
  };
}

async function realPairs(ctx, prefix, pairs) {
  const senders = [];
  const receivers = [];
  for (let i = 0; i < pairs; i++) {
    senders.push(new Client({ base: ctx.base, user: ctx.user(`${prefix}-s${i}`), device: "phone" }));
    receivers.push(new Client({ base: ctx.base, user: ctx.user(`${prefix}-r${i}`), device: "phone" }));
  }
  await connectAll([...senders, ...receivers], 16);
  return { senders, receivers };
}

/** Runs every pair for durationMs (the first warmupMs unrecorded); returns latencies and counts. */
async function drive(pairs, durationMs, warmupMs, sendOne, arrivedCount) {
  const t0 = performance.now();
  const warmEnd = t0 + warmupMs;
  const end = t0 + warmupMs + durationMs;
  let stop = false;
  const loops = pairs.map(async (pair, i) => {
    let next = performance.now() + Math.random() * (1000 / RATE_PER_SENDER);
    for (let k = 0; !stop; k++) {
      const now = performance.now();
      if (now >= end) break;
      if (next > now) await sleep(next - now);
      // Closed loop: wait for room in the window before sending more.
      while (pair.sentCount - arrivedCount(i) >= WINDOW && performance.now() < end) await pair.wait();
      if (performance.now() >= end) break;
      next = Math.max(next + 1000 / RATE_PER_SENDER, performance.now());
      sendOne(i, k, performance.now() >= warmEnd);
      pair.sentCount++;
    }
  });
  await Promise.all(loops);
  stop = true;
  return { warmEnd, end };
}

export async function realThroughput(ctx, prefix, pairsN, durationMs, warmupMs) {
  const { senders, receivers } = await realPairs(ctx, prefix, pairsN);
  /** "pair:id" -> { t0, measured, arrived } */
  const inflight = new Map();
  const lat = [];
  let inWindow = 0;
  const pairs = senders.map(newPair);
  const window = { warmEnd: performance.now() + warmupMs, end: performance.now() + warmupMs + durationMs };
  receivers.forEach((rc, i) => {
    rc.opts.onFrame = (f, at) => {
      if (f.type !== "message") return;
      const m = inflight.get(`${i}:${f.id}`);
      if (m && !m.arrived) {
        m.arrived = true;
        pairs[i].arrived++;
        if (m.measured) lat.push(at - m.t0);
        if (at >= window.warmEnd && at <= window.end) inWindow++;
      }
      pairs[i].wake?.();
    };
  });
  await drive(
    pairs,
    durationMs,
    warmupMs,
    (i, k, measured) => {
      const id = `t${k}`;
      inflight.set(`${i}:${id}`, { t0: performance.now(), measured, arrived: false });
      senders[i].send({ user: receivers[i].user }, id, `load ${k}`);
    },
    (i) => pairs[i].arrived,
  );
  // Drain: everything that got `sent` must arrive.
  const sentTotal = pairs.reduce((a, p) => a + p.sentCount, 0);
  await drainUntil(() => pairs.reduce((a, p) => a + p.arrived, 0), sentTotal);
  await sleep(300);
  let lost = 0;
  let unconfirmed = 0;
  senders.forEach((s, i) => {
    for (let k = 0; k < pairs[i].sentCount; k++) {
      if (!receivers[i].seenIds.has(`${s.user}|t${k}`)) lost++;
      if (!s.sent.has(`t${k}`)) unconfirmed++;
    }
  });
  const errors = [...senders, ...receivers].flatMap((c) => c.errors);
  const duplicated = receivers.reduce((a, c) => a + c.duplicates, 0);
  for (const c of [...senders, ...receivers]) c.close();
  return { lat, throughput: inWindow / (durationMs / 1000), lost, duplicated, unconfirmed, errors, sentTotal };
}

async function floorThroughput(ctx, prefix, pairsN, durationMs, warmupMs, { durable = false } = {}) {
  const t0s = new Map();
  const lat = [];
  let inWindow = 0;
  const pairs = Array.from({ length: pairsN }, newPair);
  const senders = [];
  let window = { warmEnd: Infinity, end: Infinity };
  await pool(pairsN, 16, async (i) => {
    const room = `${prefix}-${i}`;
    senders[i] = await floorSocket(ctx.base, room, "a", { durable });
    pairs[i].b = await floorSocket(ctx.base, room, "b", {
      durable,
      onMessage: (data, at) => {
        const f = JSON.parse(data);
        // On the durable floor the receiver answers, as a device's ack turns into a receipt.
        if (durable) pairs[i].b.send(JSON.stringify({ to: "a", ack: f.id }));
        pairs[i].arrived++;
        if (f.m) lat.push(at - t0s.get(`${i}:${f.id}`));
        if (at >= window.warmEnd && at <= window.end) inWindow++;
        pairs[i].wake?.();
      },
    });
  });
  window = { warmEnd: performance.now() + warmupMs, end: performance.now() + warmupMs + durationMs };
  await drive(
    pairs,
    durationMs,
    warmupMs,
    (i, k, measured) => {
      t0s.set(`${i}:${k}`, performance.now());
      senders[i].send(JSON.stringify({ to: "b", id: k, m: measured, text: `load ${k}` }));
    },
    (i) => pairs[i].arrived,
  );
  const sentTotal = pairs.reduce((a, p) => a + p.sentCount, 0);
  await drainUntil(() => pairs.reduce((a, p) => a + p.arrived, 0), sentTotal);
  const lost = sentTotal - pairs.reduce((a, p) => a + p.arrived, 0);
  for (let i = 0; i < pairsN; i++) {
    senders[i].close();
    pairs[i].b.close();
  }
  return { lat, throughput: inWindow / (durationMs / 1000), lost };
}

export async function scenarioThroughput(ctx) {
  const pairs = ctx.count(100, 20);
  const durationMs = ctx.count(30_000, 3_000);
  const warmupMs = ctx.quick ? 500 : 3_000;
  const real = await realThroughput(ctx, "s2", pairs, durationMs, warmupMs);
  await ctx.quiesce();
  // The floors' rates hold still within seconds: thousands of samples each.
  const floorMs = Math.min(durationMs, ctx.count(8_000, 1_500));
  const floor = await floorThroughput(ctx, ctx.user("s2-floor"), pairs, floorMs, warmupMs);
  await ctx.quiesce();
  const durable = await floorThroughput(ctx, ctx.user("s2-durable-floor"), pairs, floorMs, warmupMs, { durable: true });
  const lat = summarize(real.lat);
  const flat = summarize(floor.lat);
  const dlat = summarize(durable.lat);
  const notes = [
    `${pairs} pairs, each sender at most ${RATE_PER_SENDER} msgs/s (the limit is 30/s) with at most ${WINDOW} in flight, for ${durationMs / 1000} s after ${warmupMs / 1000} s of warm-up; offered at most ${pairs * RATE_PER_SENDER} msgs/s`,
  ];
  if (real.unconfirmed) notes.push(`${real.unconfirmed} sends never got \`sent\``);
  if (real.errors.length) notes.push(`error frames: ${summarizeErrors(real.errors)}`);
  return {
    id: "s2",
    title: "2. One-to-one throughput",
    rows: [
      {
        measure: `send → message, ${pairs} pairs at once`,
        real: lat,
        floor: flat,
        floorLabel: "relay, same load",
        throughput: { real: real.throughput, floor: floor.throughput },
        lost: real.lost,
        duplicated: real.duplicated,
      },
      {
        measure: `durable floor: ${pairs} pairs at once, one commit in each object`,
        real: dlat,
        floor: flat,
        floorLabel: "relay, same load",
        throughput: { real: durable.throughput, floor: floor.throughput },
        lost: durable.lost,
        duplicated: null,
      },
    ],
    durable: [{ measure: `send → message, ${pairs} pairs at once`, real: lat, durable: dlat, relay: flat, throughput: { real: real.throughput, durable: durable.throughput, relay: floor.throughput } }],
    figures: [{ name: "messages delivered per second", value: real.throughput, unit: "msgs/s", floor: floor.throughput }],
    targets: [
      { name: "throughput ≥ 0.5× the floor's", limit: 0.5, atLeast: true, measured: ratio(real.throughput, floor.throughput), floorMeasured: ratio(durable.throughput, floor.throughput) },
      { name: "throughput: lost 0, duplicated 0", limit: 0, measured: real.lost + real.duplicated },
    ],
    notes,
  };
}

/** 1,000 sockets (pairs of users), a steady aggregate rate, for a minute. */
export async function scenarioLoadHeld(ctx) {
  const sockets = ctx.count(1000, 100);
  const rate = 200;
  const durationMs = ctx.count(60_000, 3_000);
  const warmupMs = ctx.quick ? 1_000 : 5_000;
  const pairsN = Math.floor(sockets / 2);
  const { senders, receivers } = await realPairs(ctx, "load", pairsN);
  const t0s = new Map();
  const lat = [];
  const closesBefore = [...senders, ...receivers].reduce((a, c) => a + c.closes.length, 0);
  receivers.forEach((rc, i) => {
    rc.opts.onFrame = (f, at) => {
      if (f.type === "message" && t0s.has(`${i}:${f.id}`)) lat.push(at - t0s.get(`${i}:${f.id}`));
    };
  });
  const counts = new Array(pairsN).fill(0);
  const start = performance.now();
  const end = start + warmupMs + durationMs;
  let sent = 0;
  // A ticker: every 20 ms, as many sends as keep the aggregate at `rate`, from random senders.
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    while (sent < due) {
      const i = Math.floor(Math.random() * pairsN);
      const id = `h${counts[i]++}`;
      if (performance.now() - start >= warmupMs) t0s.set(`${i}:${id}`, performance.now());
      senders[i].send({ user: receivers[i].user }, id, `held ${id}`);
      sent++;
    }
    await sleep(20);
  }
  const drainStart = performance.now();
  await drainUntil(() => receivers.reduce((a, r) => a + r.seenIds.size, 0), sent);
  const drainMs = performance.now() - drainStart;
  await sleep(300);
  let lost = 0;
  senders.forEach((s, i) => {
    for (let k = 0; k < counts[i]; k++) if (!receivers[i].seenIds.has(`${s.user}|h${k}`)) lost++;
  });
  const all = [...senders, ...receivers];
  const errors = all.flatMap((c) => c.errors);
  const closes = all.reduce((a, c) => a + c.closes.length, 0) - closesBefore;
  const duplicated = receivers.reduce((a, c) => a + c.duplicates, 0);
  for (const c of all) c.close();
  const s = summarize(lat);
  return {
    id: "load",
    title: "Load held",
    rows: [{ measure: `send → message, ${pairsN * 2} sockets, ${rate} msgs/s for ${durationMs / 1000} s`, real: s, floor: null, lost, duplicated, throughput: { real: lat.length / (durationMs / 1000) } }],
    figures: [
      { name: "error frames", value: errors.length },
      { name: "sockets closed by the server", value: closes },
      { name: "backlog drained after sending stopped in", value: drainMs / 1000, unit: "s" },
    ],
    targets: [
      { name: "held load: lost 0, duplicated 0", limit: 0, measured: lost + duplicated },
      { name: "held load: no error frames, no closed sockets", limit: 0, count: true, measured: errors.length + closes },
    ],
    notes: errors.length ? [`error frames: ${summarizeErrors(errors)}`] : [],
  };
}
