// The pause after many objects go quiet at once: N users each write one
// message and disconnect; meanwhile one pair pings (one message every 50 ms)
// and every ping over 100 ms is printed, then the disk syncs the runtime made
// meanwhile, by file kind (strace -y). Locally, about 10 s after the N objects
// fall idle, workerd evicts them together and each one checkpoints its SQLite
// WAL on the way out (syncs of the -wal and the main file), all on the one
// runtime thread, so every other object waits. The disconnects themselves
// come first: each socket's close writes the device's last-seen time (one commit
// each). With N = 1,000: a ping sent right after the disconnects took 17 s, one
// at the evictions 8 s, and the main database files were synced about once per
// object. Production places objects on many machines and threads.
//
//   node bench/eviction-stall.mjs [N]      (needs strace)
import { join } from "node:path";
import { startDevServer } from "../scripts/dev-server.mjs";
import { Client, connectAll, sleep } from "./lib/client.mjs";
import { workerdOf } from "./lib/procs.mjs";
import { requireStrace, traceSyncs } from "./lib/strace.mjs";

const N = Number(process.argv[2] ?? 1000);
requireStrace();
const root = new URL("..", import.meta.url).pathname;
const server = await startDevServer({ config: join(root, "bench", "wrangler.toml"), observability: false });
try {
  const run = Date.now().toString(36);
  const a = new Client({ base: server.url, user: `pa-${run}` });
  const b = new Client({ base: server.url, user: `pb-${run}` });
  await a.connect();
  await b.connect();
  const many = Array.from({ length: N }, (_, i) => new Client({ base: server.url, user: `ev${i}-${run}` }));
  await connectAll(many, 32);
  many.forEach((c, i) => c.send({ user: many[(i + 1) % N].user }, `e${i}`, "hi"));
  await sleep(3000);
  for (const c of many) c.close();
  const { runtime } = workerdOf(server);
  const trace = traceSyncs(runtime);
  const t0 = performance.now();
  console.log(`${N} objects wrote and went quiet; pinging for 30 s`);
  for (let i = 0; performance.now() - t0 < 30_000; i++) {
    const t = performance.now();
    a.send({ user: b.user }, `p${i}`, "ping");
    await b.until(() => b.messages.some((m) => m.frame.id === `p${i}`), 60_000, "ping");
    const ms = performance.now() - t;
    if (ms > 100) console.log(`  ping at +${((t - t0) / 1000).toFixed(1)} s took ${ms.toFixed(0)} ms`);
    await sleep(50);
  }
  // A checkpoint syncs the main database file.
  const byKind = new Map();
  for (const path of await trace.stop()) {
    const kind = path.endsWith("-wal") ? "WAL" : path.endsWith(".sqlite") ? "main database file" : "other";
    byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  }
  console.log(`syncs in those 30 s: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(", ")} (the ping pair alone: about 80 a second, nearly all WAL)`);
} finally {
  server.stop();
}
process.exit(0);
