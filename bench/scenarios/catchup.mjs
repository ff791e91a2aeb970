// Scenario 4: offline catch-up. 1,000 messages wait for a user (from many
// senders, each within the send limit); the user connects; we time connect ->
// `synced` and check that every message came once, in each sender's order.
// The floor: a bare object that sends as many canned frames on connect.
import { tokenFor, Client, connectAll, floorSocket, sleep } from "../lib/client.mjs";
import { summarize } from "../lib/stats.mjs";

const PER_SENDER = 25; // below the burst of 60, at the limit's pace

/** The recipient's inbox head, read from `hello` of a throwaway probe device. */
async function inboxHead(ctx, user) {
  const token = await tokenFor(ctx.base, user);
  const ws = new WebSocket(`${ctx.base.replace(/^http/, "ws")}/v1/connect?device=probe&access_token=${token}`);
  try {
    return await new Promise((resolve, reject) => {
      ws.onmessage = (ev) => {
        const f = JSON.parse(ev.data);
        if (f.type === "hello") resolve(f.head);
      };
      ws.onclose = () => reject(new Error("probe closed"));
      setTimeout(() => reject(new Error("probe timed out")), 10_000);
    });
  } finally {
    ws.onclose = null;
    ws.close();
  }
}

async function oneCatchUp(ctx, tag, n) {
  const recipient = ctx.user(`s4-${tag}-r`);
  // The device exists before the messages are sent: they are all owed to it.
  const first = new Client({ base: ctx.base, user: recipient, device: "phone" });
  await first.connect();
  first.close();
  const senderCount = Math.ceil(n / PER_SENDER);
  const senders = Array.from({ length: senderCount }, (_, i) => new Client({ base: ctx.base, user: ctx.user(`s4-${tag}-s${i}`), device: "phone" }));
  await connectAll(senders, 16);
  let k = 0;
  const plan = senders.map(() => 0);
  while (k < n) {
    for (let i = 0; i < senderCount && k < n; i++, k++) senders[i].send({ user: recipient }, `c${plan[i]}`, `catch-up ${plan[i]++}`);
    if (k % (senderCount * 5) === 0) await sleep(5);
  }
  await Promise.all(senders.map((s) => s.until(() => s.pending.size === 0, 60_000, "all sent")));
  for (const s of senders) s.close();
  // Wait until the hand-offs reached the recipient's object.
  const deadline = performance.now() + 60_000;
  let head = 0;
  while ((head = await inboxHead(ctx, recipient)) < n && performance.now() < deadline) await sleep(250);
  await ctx.quiesce();
  const rc = new Client({ base: ctx.base, user: recipient, device: "phone" });
  const t = await rc.connect(120_000);
  let outOfOrder = 0;
  const lastIndex = new Map();
  for (const { frame } of rc.messages) {
    const idx = Number(frame.id.slice(1));
    if ((lastIndex.get(frame.from) ?? -1) >= idx) outOfOrder++;
    lastIndex.set(frame.from, idx);
  }
  let lost = 0;
  senders.forEach((s, i) => {
    for (let j = 0; j < plan[i]; j++) if (!rc.seenIds.has(`${s.user}|c${j}`)) lost++;
  });
  const result = { ms: t, count: rc.messages.length, lost, duplicated: rc.duplicates, outOfOrder, headBefore: head };
  rc.close();
  return result;
}

async function floorCatchUp(ctx, tag, n) {
  let frames = 0;
  let done;
  const synced = new Promise((r) => (done = r));
  const t0 = performance.now();
  const ws = await floorSocket(ctx.base, ctx.user(`s4-floor-${tag}`), "phone", {
    replay: n,
    onMessage: (data, at) => {
      frames++;
      if (data.includes('"synced"')) done(at);
    },
  });
  const at = await synced;
  ws.close();
  return { ms: at - t0, count: frames - 1 };
}

export async function scenarioCatchUp(ctx) {
  const n = ctx.count(1000, 500);
  const runs = ctx.quick ? 1 : 3;
  await oneCatchUp(ctx, "warm", 50);
  await floorCatchUp(ctx, "warm", 50);
  const real = [];
  const floor = [];
  for (let i = 0; i < runs; i++) {
    real.push(await oneCatchUp(ctx, `r${i}`, n));
    await ctx.quiesce();
    floor.push(await floorCatchUp(ctx, `r${i}`, n));
    await ctx.quiesce();
  }
  const s = summarize(real.map((r) => r.ms));
  const f = summarize(floor.map((r) => r.ms));
  const lost = real.reduce((a, r) => a + r.lost, 0);
  const duplicated = real.reduce((a, r) => a + r.duplicated, 0);
  const outOfOrder = real.reduce((a, r) => a + r.outOfOrder, 0);
  const rate = (n * 1000) / s.p50;
  return {
    id: "s4",
    title: "4. Offline catch-up",
    rows: [{ measure: `connect → synced with ${n} messages waiting (${runs} run${runs === 1 ? "" : "s"})`, real: s, floor: f, floorLabel: `${n} canned frames`, lost, duplicated }],
    figures: [
      { name: "messages replayed per second (p50 run)", value: rate, unit: "msgs/s", floor: (n * 1000) / f.p50 },
      { name: "messages out of per-sender order", value: outOfOrder },
    ],
    targets: [
      { name: "catch-up: lost 0, duplicated 0, out of order 0", limit: 0, measured: lost + duplicated + outOfOrder },
    ],
    notes: [`${Math.ceil(n / PER_SENDER)} senders × ${PER_SENDER} messages each, sent before the recipient connected`],
  };
}
