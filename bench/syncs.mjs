// Disk syncs per message: how many fsync/fdatasync calls the runtime makes
// for one one-to-one message (send, hand-off, ack, receipt) and for one post
// to a group, counted with strace on the workerd process that runs the
// objects. Locally every SQLite commit of an object ends in a sync, so this
// counts commits; unlike timings it does not depend on how busy the machine is.
// Also the pages those commits wrote to the objects' write-ahead logs: each
// table or index a transaction touches costs at least one; and the SQL
// statements the objects ran (bench/trace-worker.ts counts them), the most
// frequent listed.
//
//   node bench/syncs.mjs [messages] [group size] [--sequence] [--top N]     (needs strace)
//
// --top N lists the N most frequent statements (default 12).
// --sequence prints every statement of one one-to-one message in order, with
// the frame or RPC each belongs to and its transaction's bounds.
import { join } from "node:path";
import { startDevServer } from "../scripts/dev-server.mjs";
import { Client, tokenFor } from "./lib/client.mjs";
import { workerdOf } from "./lib/procs.mjs";
import { requireStrace, traceWrites } from "./lib/strace.mjs";

const argv = process.argv.slice(2);
const topAt = argv.indexOf("--top");
const TOP = topAt >= 0 ? Number(argv.splice(topAt, 2)[1]) : 12;
if (!(TOP > 0)) throw new Error("--top takes a positive number");
const flags = argv.filter((a) => a.startsWith("--"));
const [nArg, groupArg] = argv.filter((a) => !a.startsWith("--"));
const N = Number(nArg ?? 50);
const GROUP = Number(groupArg ?? 50);
const SEQUENCE = flags.includes("--sequence");
const POSTS = 5;
requireStrace();
const root = new URL("..", import.meta.url).pathname;
const server = await startDevServer({
  config: join(root, "bench", "wrangler.toml"),
  script: join(root, "bench", "trace-worker.ts"),
  observability: false,
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = Date.now().toString(36);

/** A connected device of `user` (bench/lib/client.mjs: acks every entry). */
async function device(user) {
  const c = new Client({ base: server.url, user });
  await c.connect();
  return c;
}

/**
 * Counts the syncs of `pid` while fn runs, by the file synced: the objects'
 * databases per class, and the runtime's per-class alarm index (metadata.sqlite),
 * which local workerd updates with its own commit whenever an alarm moves.
 */
async function syncsDuring(pid, fn) {
  const trace = traceWrites(pid);
  await sleep(500); // attached
  await traceControl("start");
  await fn();
  await sleep(1500); // commits that follow the last frame (deletes, alarms)
  const { statements, sequence } = await traceControl("stop");
  const by = {};
  const { syncs, pages } = await trace.stop();
  for (const path of syncs) {
    const cls = /-(\w+Object)\//.exec(path)?.[1] ?? "other";
    const key = path.includes("metadata.sqlite") ? `${cls} alarms` : cls;
    by[key] = (by[key] ?? 0) + 1;
  }
  return { total: syncs.length, by, pages: pages.length, statements, sequence };
}

/** Starts or stops bench/trace-worker.ts's record of statements. */
async function traceControl(what) {
  const res = await fetch(`${server.url}/bench/trace/${what}`, { method: "POST" });
  if (!res.ok) throw new Error(`trace ${what}: ${res.status}`);
  return res.json();
}

/** Statements per unit, by class, and the most frequent ones. */
function statementReport(statements, per, top = TOP) {
  const lines = [];
  const all = [];
  for (const [cls, byText] of Object.entries(statements)) {
    const n = Object.values(byText).reduce((a, b) => a + b, 0);
    lines.push(`${cls} ${(n / per).toFixed(1)}`);
    for (const [text, k] of Object.entries(byText)) all.push([k, cls, text]);
  }
  const total = all.reduce((a, [k]) => a + k, 0);
  const out = [`  ${(total / per).toFixed(1)} SQL statements (${lines.join(", ")}); the most frequent, per unit:`];
  for (const [k, cls, text] of all.sort((a, b) => b[0] - a[0]).slice(0, top)) {
    out.push(`    ${(k / per).toFixed(2).padStart(6)}  ${cls}: ${text.length > 110 ? `${text.slice(0, 107)}...` : text}`);
  }
  return out.join("\n");
}

/** "UserObject 2.1, GroupObject alarms 0.1, ..." per unit. */
function breakdown(by, per) {
  return Object.entries(by)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${(n / per).toFixed(2)}`)
    .join(", ");
}

try {
  const { runtime } = workerdOf(server);
  if (!runtime) throw new Error("cannot tell the runtime workerd apart");
  const alice = await device(`alice-${run}`);
  const bob = await device(`bob-${run}`);
  const oneToOne = await syncsDuring(runtime, async () => {
    for (let i = 0; i < N; i++) {
      alice.send({ user: bob.user }, `m${i}`, `message ${i}`);
      await alice.until(() => alice.delivered.has(alice.sent.get(`m${i}`)?.msg), 10_000, `delivered m${i}`);
      await sleep(40); // under the send rate limit
    }
  });
  console.log(`one-to-one: ${(oneToOne.total / N).toFixed(1)} syncs per message (${oneToOne.total} for ${N}, send -> delivered, receiver acks)`);
  console.log(`  per message: ${breakdown(oneToOne.by, N)}; ${(oneToOne.pages / N).toFixed(1)} WAL pages written`);
  console.log(statementReport(oneToOne.statements, N));
  if (SEQUENCE) {
    // The last message: warm, like the bench's samples.
    const one = await syncsDuring(runtime, async () => {
      alice.send({ user: bob.user }, "seq", "one message");
      await alice.until(() => alice.delivered.has(alice.sent.get("seq")?.msg), 10_000, "delivered seq");
    });
    console.log("one message, in order (class:object event):");
    for (const line of one.sequence) console.log(`  ${line}`);
  }

  const members = Array.from({ length: GROUP }, (_, i) => `g${i}-${run}`);
  const devices = [];
  for (const m of members) devices.push(await device(m));
  const res = await fetch(`${server.url}/v1/groups`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await tokenFor(server.url, members[0])}` },
    body: JSON.stringify({ name: "syncs", members: members.slice(1) }),
  });
  const group = (await res.json()).id;
  await sleep(3000); // roster events delivered and acked
  const posts = await syncsDuring(runtime, async () => {
    for (let i = 0; i < POSTS; i++) {
      devices[0].send({ group }, `p${i}`, `post ${i}`);
      const arrived = (d) => d.messages.some((m) => m.frame.id === `p${i}`);
      await Promise.all(devices.slice(1).map((d) => d.until(() => arrived(d), 30_000, `post p${i}`)));
    }
    await sleep(1500); // receipts back to the group
  });
  console.log(`group of ${GROUP}: ${(posts.total / POSTS).toFixed(0)} syncs per post, ${(posts.total / POSTS / (GROUP - 1)).toFixed(2)} per member (${posts.total} for ${POSTS} posts, members ack)`);
  console.log(`  per member: ${breakdown(posts.by, POSTS * (GROUP - 1))}; ${(posts.pages / POSTS / (GROUP - 1)).toFixed(1)} WAL pages written`);
  console.log(statementReport(posts.statements, POSTS * (GROUP - 1)));
} finally {
  server.stop();
}
process.exit(0);
