// Scenario 5: many idle sockets. 100 users with 5 devices each plus single-
// device users, 1,000 sockets in all: how long connecting them takes, and how
// much resident memory of the workerd that runs the objects each idle socket
// costs (RSS after minus before, divided), right after connecting and after an
// idle period long enough for the objects to hibernate. The floor: as many
// sockets, shaped the same, to bare objects that send each socket one frame, as
// ours do, connected while ours idle on (hibernated, they hold still); with
// --detail once more without that frame, to show what a first frame costs.
// Also what the runtime's allocator has in use per socket (RSS keeps what was
// freed, so only this can be compared across steps), and the JS heap the worker
// still uses per idle socket after a full GC: the part our code holds.
import { Client, connectAll, floorSocket, sleep } from "../lib/client.mjs";
import { pool, summarize } from "../lib/stats.mjs";
import { mallocInUse, rssBytes, workerdOf } from "../lib/procs.mjs";

const DEVICES = 5; // the most one user may connect

/** Memory of the dev server's processes now: RSS of both workerd, and the runtime's allocator in use (null without gdb). */
async function memory(server) {
  const { runtime, proxy } = workerdOf(server);
  return { runtime: runtime ? rssBytes(runtime) : NaN, proxy: proxy ? rssBytes(proxy) : NaN, inUse: runtime ? await mallocInUse(runtime) : null };
}

/**
 * Waits until the objects of closed sockets are gone: the runtime evicts them
 * some 10 s after they go quiet, and only then frees their memory. Done when
 * the allocator's figure holds still over 5 s (or after 15 s without gdb).
 */
async function settled(server) {
  const deadline = performance.now() + 90_000;
  let last = (await memory(server)).inUse;
  if (last === null) return sleep(15_000);
  while (performance.now() < deadline) {
    await sleep(5_000);
    const now = (await memory(server)).inUse;
    if (now === null || Math.abs(now - last) < 2 * 2 ** 20) return;
    last = now;
  }
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
  const total = ctx.count(1000, 100);
  // Objects hibernate after 10-15 s of quiet.
  const idleMs = 15_000;
  const { sockets, users, multi } = shape(total);
  const server = ctx.server;
  const firsts = sockets.map((x, i) => i).filter((i) => sockets[i][1] === 0);
  const extras = sockets.map((x, i) => i).filter((i) => sockets[i][1] !== 0);

  /**
   * Connects every socket of the shape (the first of each user, then the other
   * devices), lets them idle, and reads the memory at each step. `open(i)`
   * opens socket i and resolves to its connect time. With `fresh`, first waits
   * until the memory of sockets closed before is freed; without, the sockets
   * already open must be idle (hibernated), so they hold still.
   */
  async function measure(open, { fresh }) {
    const times = new Array(sockets.length);
    const connect = (idx) => pool(idx.length, 32, async (k) => (times[idx[k]] = await open(idx[k])));
    // --quick only connects: no memory figure it could take would mean anything (see below).
    if (ctx.quick) {
      const t0 = performance.now();
      await connect(firsts);
      await connect(extras);
      return { times, connectMs: performance.now() - t0 };
    }
    if (fresh) await settled(server);
    const heapBefore = await ctx.jsHeap();
    const before = await memory(server);
    const t0 = performance.now();
    await connect(firsts);
    const afterObjects = await memory(server);
    await connect(extras);
    const connectMs = performance.now() - t0;
    await sleep(1_000);
    const connected = await memory(server);
    await sleep(idleMs);
    const idle = await memory(server);
    const heapIdle = await ctx.jsHeap();
    return { times, connectMs, before, afterObjects, connected, idle, heapBefore, heap: heapIdle - heapBefore };
  }
  const closed = async (close) => {
    close();
    await sleep(2_000);
    await ctx.quiesce();
  };

  // Warm-up: the code paths of connect, on other users.
  const warm = Array.from({ length: 10 }, (_, i) => new Client({ base: ctx.base, user: ctx.user(`s5-warm${i}`), device: "phone" }));
  await connectAll(warm, 10);
  for (const c of warm) c.close();
  await sleep(2_000);
  await ctx.quiesce();

  const clients = sockets.map(([u, d]) => new Client({ base: ctx.base, user: ctx.user(`s5-u${u}`), device: `d${d}` }));
  const real = await measure((i) => clients[i].connect(), { fresh: true });
  /** The floor, same shape: a room per user, a peer per device; `greet`: each socket is sent one frame. */
  const floor = async (tag, greet, fresh) => {
    const open = new Array(sockets.length);
    const m = await measure(
      async (i) => {
        const [u, d] = sockets[i];
        const t = performance.now();
        open[i] = await floorSocket(ctx.base, ctx.user(`s5-${tag}-u${u}`), `d${d}`, { greet });
        return performance.now() - t;
      },
      { fresh },
    );
    return { ...m, close: () => open.forEach((ws) => ws.close()) };
  };
  // The floor connects while ours idle on: their objects have hibernated, so
  // the memory they hold stands still, and no wait for their eviction is needed.
  const fair = await floor("floor", true, false);
  const closedByServer = clients.reduce((a, c) => a + c.closes.length, 0);
  await closed(() => {
    for (const c of clients) c.close();
    fair.close();
  });
  // Only to show what the first frame costs: with --detail.
  const silent = ctx.detail ? await floor("silent", false, true) : null;
  if (silent) await closed(silent.close);

  const kib = (a, b, key, count) => (count > 0 && a[key] !== null && b[key] !== null ? (b[key] - a[key]) / count / 1024 : null);
  const perIdle = ctx.quick ? null : kib(real.before, real.idle, "runtime", total);
  const idleLabel = `after ${idleMs / 1000} s idle`;
  const figures = [
    { name: `time to connect all ${total} sockets (32 at a time)`, value: real.connectMs / 1000, unit: "s", floor: fair.connectMs / 1000 },
    { name: "sockets connected per second", value: total / (real.connectMs / 1000), unit: "/s", floor: total / (fair.connectMs / 1000) },
  ];
  // --quick reads no memory worth a figure: it does not wait for idle, and just
  // after connecting, RSS reuses what the warm-up freed; ours are still awake
  // while the floor connects, and hibernate under its readings.
  if (!ctx.quick) figures.push(
    { name: "runtime workerd RSS per socket, just connected", value: kib(real.before, real.connected, "runtime", total), unit: "KiB", floor: kib(fair.before, fair.connected, "runtime", total) },
    { name: `runtime workerd RSS per socket, ${idleLabel}`, value: perIdle, unit: "KiB", floor: kib(fair.before, fair.idle, "runtime", total) },
    { name: `runtime allocator in use per socket, ${idleLabel}`, value: kib(real.before, real.idle, "inUse", total), unit: "KiB", floor: kib(fair.before, fair.idle, "inUse", total) },
    { name: `  just connected, objects awake: per first socket of each of ${users} users`, value: kib(real.before, real.afterObjects, "inUse", firsts.length), unit: "KiB", floor: kib(fair.before, fair.afterObjects, "inUse", firsts.length) },
    { name: `  just connected, objects awake: per further socket of a user (${extras.length})`, value: kib(real.afterObjects, real.connected, "inUse", extras.length), unit: "KiB", floor: kib(fair.afterObjects, fair.connected, "inUse", extras.length) },
    ...(silent ? [{ name: `  ${idleLabel}, a bare socket that was never sent a frame (the floor without its greeting)`, value: kib(silent.before, silent.idle, "inUse", total), unit: "KiB", floor: null }] : []),
    { name: `JS heap per socket ${idleLabel} (after a full GC: what the objects' code keeps)`, value: real.heap / total / 1024, unit: "KiB", floor: fair.heap / total / 1024 },
    { name: `proxy workerd (wrangler dev only) RSS per socket, ${idleLabel}`, value: kib(real.before, real.idle, "proxy", total), unit: "KiB", floor: kib(fair.before, fair.idle, "proxy", total) },
  );
  const shown = figures.filter((f) => f.value !== null || f.floor !== null);
  const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
  return {
    id: "s5",
    title: "5. Connections",
    rows: [
      { measure: `connect → synced, ${total} sockets of ${users} users`, real: summarize(real.times), floor: summarize(fair.times), floorLabel: "bare socket open → first frame", lost: null, duplicated: null },
    ],
    figures: shown,
    targets: [
      // The bare object's socket, as the allocator counts it (its RSS, read after ours, is reused memory).
      { name: "idle connection memory ≤ 24 KiB each", limit: 24, unit: "KiB", measured: perIdle, floorMeasured: ctx.quick ? null : kib(fair.before, fair.idle, "inUse", total), floorName: "bare socket, allocator in use" },
      { name: "connections: none closed by the server while idle", limit: 0, count: true, measured: closedByServer },
    ],
    notes: [
      `${multi} users with ${DEVICES} devices and ${users - multi} with one`,
      ...(ctx.quick
        ? ["memory: --quick connects and leaves without waiting for idle or reading the allocator (each reading attaches gdb for about 2 s), so it gives no memory figures; the default run does"]
        : [
            `RSS of the workerd that runs the objects went from ${mib(real.before.runtime)} MiB to ${mib(real.connected.runtime)} MiB connected and ${mib(real.idle.runtime)} MiB after the idle period: locally, the allocator keeps what hibernating objects free, so the floors' RSS, measured after ours, is mostly reused memory and says little`,
            real.before.inUse === null
              ? "allocator figures need gdb (apt-get install gdb) and ptrace: not available here"
              : "allocator in use: tcmalloc's bytes in use by the application (mallinfo, read with gdb); it falls when memory is freed, so ours and the floors' are comparable in one run",
            "a socket the runtime has sent a frame keeps about 290 KiB more than one it never sent to: the permessage-deflate context, negotiated by wrangler dev's runtime with every client that offers compression (browsers and Node do); a client that does not offer it leaves no such cost (measured with a raw-socket client, outside this bench); `--detail` measures a socket never sent a frame in the run",
            `the worker's JS heap (all objects share one isolate) grew from ${mib(real.heapBefore)} MiB by ${(real.heap / 2 ** 20).toFixed(2)} MiB with every socket idle: hibernated objects leave their sockets' attachments and nothing else in it; the rest is the runtime's own (socket, compression and per-object state), which the floor's bare objects also pay`,
          ]),
      "wrangler dev runs two workerd processes: one proxies the public port (not present in production), one runs the Worker and its objects; the target is checked on the latter",
    ],
  };
}
