// Scenario 5: many idle sockets. 100 users with 5 devices each plus single-
// device users, 1,000 sockets in all: how long connecting them takes, and how
// much resident memory of the workerd that runs the objects each idle socket
// costs (RSS after minus before, divided), right after connecting and after an
// idle period long enough for the objects to hibernate. The floor: as many
// sockets, shaped the same, to bare objects. Also the JS heap the worker still
// uses per idle socket after a full GC: the part of the memory our code holds.
import { Client, connectAll, floorSocket, sleep } from "../lib/client.mjs";
import { pool, summarize } from "../lib/stats.mjs";
import { rssBytes, workerdOf } from "../lib/procs.mjs";

const DEVICES = 5; // the most one user may connect

function rss(server) {
  const { runtime, proxy } = workerdOf(server);
  return { runtime: runtime ? rssBytes(runtime) : NaN, proxy: proxy ? rssBytes(proxy) : NaN };
}

/** The shape: [user index, device index] for every socket. */
function shape(total) {
  const multi = Math.max(1, Math.round(total / 10));
  const out = [];
  for (let u = 0; u < multi && out.length < total; u++) for (let d = 0; d < DEVICES && out.length < total; d++) out.push([u, d]);
  for (let u = multi; out.length < total; u++) out.push([u, 0]);
  return { sockets: out, users: new Set(out.map((s) => s[0])).size, multi };
}

export async function scenarioConnections(ctx) {
  const total = ctx.count(1000, 300);
  // Objects hibernate after 10-15 s of quiet.
  const idleMs = ctx.quick ? 12_000 : 20_000;
  const { sockets, users, multi } = shape(total);
  const server = ctx.server;

  // Warm-up: the code paths of connect, on other users.
  const warm = Array.from({ length: 10 }, (_, i) => new Client({ base: ctx.base, user: ctx.user(`s5-warm${i}`), device: "phone" }));
  await connectAll(warm, 10);
  for (const c of warm) c.close();
  await sleep(2_000);

  await ctx.quiesce();
  // Real: the first socket of every user (one object each), then the other devices.
  const firsts = sockets.map((x, i) => i).filter((i) => sockets[i][1] === 0);
  const extras = sockets.map((x, i) => i).filter((i) => sockets[i][1] !== 0);
  const clients = sockets.map(([u, d]) => new Client({ base: ctx.base, user: ctx.user(`s5-u${u}`), device: `d${d}` }));
  const times = new Array(sockets.length);
  const heapBefore = await ctx.jsHeap();
  const before = rss(server);
  const t0 = performance.now();
  const realConnect = (idx) => pool(idx.length, 32, async (k) => (times[idx[k]] = await clients[idx[k]].connect()));
  await realConnect(firsts);
  const afterObjects = rss(server);
  await realConnect(extras);
  const connectAllMs = performance.now() - t0;
  await sleep(1_000);
  const connected = rss(server);
  await sleep(idleMs);
  const idle = rss(server);
  const heapIdle = await ctx.jsHeap();
  const closedByServer = clients.reduce((a, c) => a + c.closes.length, 0);
  for (const c of clients) c.close();
  await sleep(2_000);
  await ctx.quiesce();

  // The floor, same shape: a room per user, a peer per device.
  const floorSockets = new Array(sockets.length);
  const fTimes = new Array(sockets.length);
  const floorConnect = (idx) =>
    pool(idx.length, 32, async (k) => {
      const [u, d] = sockets[idx[k]];
      const t = performance.now();
      floorSockets[idx[k]] = await floorSocket(ctx.base, ctx.user(`s5-floor-u${u}`), `d${d}`);
      fTimes[idx[k]] = performance.now() - t;
    });
  const fHeapBefore = await ctx.jsHeap();
  const fBefore = rss(server);
  const f0 = performance.now();
  await floorConnect(firsts);
  const fAfterObjects = rss(server);
  await floorConnect(extras);
  const fConnectAllMs = performance.now() - f0;
  await sleep(1_000);
  const fConnected = rss(server);
  await sleep(idleMs);
  const fIdle = rss(server);
  const fHeapIdle = await ctx.jsHeap();
  for (const ws of floorSockets) ws.close();

  const kib = (a, b, key, count) => (count > 0 ? (b[key] - a[key]) / count / 1024 : null);
  const perIdle = kib(before, idle, "runtime", total);
  const figures = [
    { name: `time to connect all ${total} sockets (32 at a time)`, value: connectAllMs / 1000, unit: "s", floor: fConnectAllMs / 1000 },
    { name: "sockets connected per second", value: total / (connectAllMs / 1000), unit: "/s", floor: total / (fConnectAllMs / 1000) },
    { name: "runtime workerd RSS per socket, just connected", value: kib(before, connected, "runtime", total), unit: "KiB", floor: kib(fBefore, fConnected, "runtime", total) },
    { name: `runtime workerd RSS per socket, after ${idleMs / 1000} s idle`, value: perIdle, unit: "KiB", floor: kib(fBefore, fIdle, "runtime", total) },
    { name: `  of which per user object (first socket of each of ${users} users)`, value: kib(before, afterObjects, "runtime", firsts.length), unit: "KiB", floor: kib(fBefore, fAfterObjects, "runtime", firsts.length) },
    { name: `  of which per further socket on an existing object (${extras.length})`, value: kib(afterObjects, connected, "runtime", extras.length), unit: "KiB", floor: kib(fAfterObjects, fConnected, "runtime", extras.length) },
    { name: `JS heap per socket after ${idleMs / 1000} s idle (after a full GC: what the objects' code keeps)`, value: (heapIdle - heapBefore) / total / 1024, unit: "KiB", floor: (fHeapIdle - fHeapBefore) / total / 1024 },
    { name: "proxy workerd (wrangler dev only) RSS per socket, idle", value: kib(before, idle, "proxy", total), unit: "KiB", floor: kib(fBefore, fIdle, "proxy", total) },
  ];
  return {
    id: "s5",
    title: "5. Connections",
    rows: [
      { measure: `connect → synced, ${total} sockets of ${users} users`, real: summarize(times), floor: summarize(fTimes), floorLabel: "bare socket open", lost: null, duplicated: null },
    ],
    figures,
    targets: [
      { name: "idle connection memory ≤ 24 KiB each", limit: 24, unit: "KiB", measured: perIdle },
      { name: "connections: none closed by the server while idle", limit: 0, count: true, measured: closedByServer },
    ],
    notes: [
      `${multi} users with ${DEVICES} devices and ${users - multi} with one; RSS of the workerd that runs the objects went from ${(before.runtime / 2 ** 20).toFixed(1)} MiB to ${(connected.runtime / 2 ** 20).toFixed(1)} MiB connected and ${(idle.runtime / 2 ** 20).toFixed(1)} MiB after the idle period (locally, memory is not returned when objects hibernate)`,
      "RSS deltas carry allocator noise of some MiB: per-socket differences under ~50 KiB (and the floor's split between objects and further sockets) are within it",
      `the worker's JS heap (all objects share one isolate) went from ${(heapBefore / 2 ** 20).toFixed(1)} MiB to ${(heapIdle / 2 ** 20).toFixed(1)} MiB with every socket idle: hibernated objects leave their sockets' attachments and nothing else in it; the rest of the RSS is the runtime's own (its per-object SQLite and socket state), which the floor's bare objects also pay`,
      "wrangler dev runs two workerd processes: one proxies the public port (not present in production), one runs the Worker and its objects; the target is checked on the latter",
    ],
  };
}
