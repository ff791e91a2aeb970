// Server CPU per one-to-one message, for before/after comparisons of server
// changes: Alice sends Bob N messages one at a time (Bob acks, Alice gets
// `delivered` and acks it), and the CPU time of the workerd that runs the
// objects (utime + stime from /proc) is divided by N. Repeated; prints each
// round and the median, and how much of it the kernel spent (stime: file
// writes and syncs, sockets). Then the same round trip through the durable
// floor (bench/floor.ts: one row in each object each way, no auth, schema,
// outbox or receipts of its own) and the relay floor, so the figure can be
// read as "ours per message against the least v1 allows". With --group, the
// same for posts to a group of `size` (default 200) all connected: one post at a
// time, the CPU per post with every member's ack and receipt in it, against the
// durable floor's group (a row in the group and in each member, each member's
// answer a row in it and in the group) and a bare broadcast. Usage:
//   node bench/cpu.mjs [N] [rounds] [--pace <ms>] [--state-dir <dir>]   (e.g. /dev/shm: no disk syncs)
//   node bench/cpu.mjs [N] [rounds] --group [size] [--pace <ms>] [--state-dir <dir>]
//
// Every workload starts one unit every --pace ms (default 50 one-to-one, 500
// per post): ours cannot go faster (the send limit, the round trip), and CPU
// per unit depends on the pace itself. Back to back, the runtime's thread
// never goes idle between units. The floors measured that way read 1.2 ms per
// one-to-one round trip instead of 2.6–3.0 at ours' pace, which made ours
// look four times the durable floor instead of about twice.
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startDevServer } from "../scripts/dev-server.mjs";
import { Client, sleep, sleepRest } from "./lib/client.mjs";
import { floorPair } from "./scenarios/latency.mjs";
import { floorPost, floorRoom, post, realGroup } from "./scenarios/groups.mjs";
import { HZ } from "./lib/stats.mjs";
import { cpuTicksOf, workerdOf } from "./lib/procs.mjs";

const args = process.argv.slice(2);
const stateAt = args.indexOf("--state-dir");
const stateParent = stateAt >= 0 ? args.splice(stateAt, 2)[1] : undefined;
const groupAt = args.indexOf("--group");
const groupSize = groupAt < 0 ? 0 : Number(/^\d+$/.test(args[groupAt + 1] ?? "") ? args.splice(groupAt, 2)[1] : (args.splice(groupAt, 1), 200));
const paceAt = args.indexOf("--pace");
const PACE_MS = paceAt >= 0 ? Number(args.splice(paceAt, 2)[1]) : groupSize ? 500 : 50;
if (!(PACE_MS >= 0)) throw new Error("--pace takes a number of milliseconds");
const N = Number(args[0] ?? (groupSize ? 20 : 300));
const ROUNDS = Number(args[1] ?? 3);
const root = new URL("..", import.meta.url).pathname;
const persistTo = stateParent ? mkdtempSync(join(stateParent, "relay-cpu-")) : undefined;
const server = await startDevServer({ config: join(root, "bench", "wrangler.toml"), observability: false, persistTo });
try {
  const { runtime } = workerdOf(server);
  /** one(id), then the rest of PACE_MS: every workload at the same pace. */
  const paced = async (one, id) => {
    const t = performance.now();
    await one(id);
    await sleepRest(t, PACE_MS);
  };
  /** CPU of the runtime per message over N calls of one(i), after 20 of warm-up. */
  const measure = async (one) => {
    for (let i = 0; i < 20; i++) await paced(one, `w${i}`);
    await sleep(1500);
    const t0 = cpuTicksOf(runtime);
    const w0 = performance.now();
    for (let i = 0; i < N; i++) await paced(one, `m${i}`);
    await sleep(1500); // the trailing alarm and acks belong to these messages
    const t1 = cpuTicksOf(runtime);
    const userMs = ((t1.user - t0.user) * 1000) / HZ;
    const kernelMs = ((t1.kernel - t0.kernel) * 1000) / HZ;
    return { total: (userMs + kernelMs) / N, kernel: kernelMs / N, seconds: (performance.now() - w0) / 1000 };
  };
  const unit = groupSize ? "post" : "message";
  const report = (label, r, m) =>
    console.log(`${label} round ${r + 1}: ${m.total.toFixed(2)} ms CPU per ${unit}, ${m.kernel.toFixed(2)} of it in the kernel (${N} ${unit}s in ${m.seconds.toFixed(1)} s, paced to one per ${PACE_MS} ms)`);
  /** Fresh names for round r's users and rooms. */
  const ctxOf = (r) => ({ base: server.url, user: (name) => `cpu-${name}-${r}-${Date.now()}` });
  // Each mode's workloads: set up, one unit at a time (`one`), and close.
  const groupMode = {
    async ours(r) {
      const g = await realGroup(ctxOf(r), "g", groupSize);
      if (g.error) throw new Error(g.error);
      return {
        one: async (id) => {
          if ((await post(g, id)).last === null) throw new Error(`post ${id} did not reach every member`);
        },
        close: () => g.clients.forEach((c) => c.close()),
      };
    },
    async floor(kind, r) {
      const ctx = ctxOf(r);
      const room = await floorRoom(ctx, ctx.user(`${kind}-room`), groupSize, { durable: kind === "durable" });
      return {
        one: async (id) => {
          if ((await floorPost(room, id)).last === null) throw new Error(`${kind} floor: post ${id} did not reach every socket`);
        },
        close: () => room.sockets.forEach((ws) => ws.close()),
      };
    },
  };
  const pairMode = {
    async ours(r) {
      const ctx = ctxOf(r);
      const alice = new Client({ base: server.url, user: ctx.user("a"), device: "phone" });
      const bob = new Client({ base: server.url, user: ctx.user("b"), device: "phone" });
      await alice.connect();
      await bob.connect();
      return {
        one: async (id) => {
          alice.send({ user: bob.user }, id, "x");
          await alice.until(() => alice.sent.has(id) && alice.delivered.has(alice.sent.get(id).msg), 10_000);
        },
        close: () => (alice.close(), bob.close()),
      };
    },
    async floor(kind, r) {
      const ctx = ctxOf(r);
      const pair = await floorPair(ctx, ctx.user(`${kind}-pair`), { durable: kind === "durable" });
      let k = 0;
      return {
        one: async () => {
          if (!(await pair.ping(k++))) throw new Error(`${kind} floor: no answer`);
        },
        close: () => pair.close(),
      };
    },
  };
  const mode = groupSize ? groupMode : pairMode;
  const perUnit = [];
  const floors = { durable: [], relay: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const ours = await mode.ours(r);
    const m = await measure(ours.one);
    ours.close();
    perUnit.push(m.total);
    report("ours   ", r, m);
    for (const kind of ["durable", "relay"]) {
      const floor = await mode.floor(kind, r);
      const f = await measure(floor.one);
      floor.close();
      floors[kind].push(f.total);
      report(`${kind.padEnd(7)}`, r, f);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    groupSize
      ? `median: ${median(perUnit).toFixed(2)} ms CPU per post to ${groupSize} members (fan-out, members' acks and receipts)`
      : `median: ${median(perUnit).toFixed(2)} ms CPU per one-to-one message (send, deliver, ack, receipt, ack)`,
  );
  console.log(
    `durable floor: ${median(floors.durable).toFixed(2)} ms (ours ${(median(perUnit) / median(floors.durable)).toFixed(2)}×); relay floor: ${median(floors.relay).toFixed(2)} ms`,
  );
} finally {
  server.stop();
  if (persistTo) rmSync(persistTo, { recursive: true, force: true });
}
process.exit(0);
