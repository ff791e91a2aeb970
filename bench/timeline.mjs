// Where a one-to-one message's time goes inside the runtime, against the
// durable floor's (bench/floor.ts): the syscalls of the workerd that runs the
// objects, recorded with perf's kernel tracepoints (about a microsecond each;
// strace's stops cost tens and bury what they measure). The first socket read
// of a message starts its clock; then come the sender's commit (its WAL pages
// and sync), the recipient's, and the push to the recipient's socket. The gaps
// between them are the objects' own work: JavaScript, SQL, RPC. Prints the
// median of each gap, for ours and the floor.
//
//   node bench/timeline.mjs [messages] [--show]      (needs perf; state on /dev/shm)
//
// --show also prints every recorded syscall of one message of each, in order.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDevServer } from "../scripts/dev-server.mjs";
import { sleep } from "./lib/client.mjs";
import { summarize } from "./lib/stats.mjs";
import { connectPair, floorPair, realPing } from "./scenarios/latency.mjs";
import { workerdOf } from "./lib/procs.mjs";

const N = Number(process.argv.slice(2).find((a) => !a.startsWith("--")) ?? 60);
const SHOW = process.argv.includes("--show");
if (spawnSync("perf", ["--version"]).status !== 0) throw new Error("perf is not installed");
const root = new URL("..", import.meta.url).pathname;
// State on tmpfs, as the benchmark's --state-dir /dev/shm: a sync costs no disk wait.
const state = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "relay-timeline-"));
const server = await startDevServer({ config: join(root, "bench", "wrangler.toml"), observability: false, persistTo: state });
const run = Date.now().toString(36);

const EVENTS = ["recvfrom", "sendto", "pwrite64", "fsync", "epoll_wait"];

/**
 * Records the syscalls of `pid` (perf, kernel tracepoints: about a microsecond
 * each, where strace's ptrace stops cost tens) while fn runs: [{ t (µs), call, bytes }].
 */
async function traced(pid, fn) {
  const file = join(tmpdir(), `relay-timeline-${process.pid}-${Date.now()}.data`);
  const events = EVENTS.flatMap((e) => ["-e", `syscalls:sys_enter_${e}`]);
  const rec = spawn("perf", ["record", "-q", "-o", file, ...events, "-p", String(pid)], { stdio: "ignore" });
  await sleep(1000);
  await fn();
  await sleep(200);
  rec.kill("SIGINT");
  await new Promise((r) => rec.on("close", r));
  const out = [];
  const text = spawnSync("perf", ["script", "-i", file], { encoding: "utf8", maxBuffer: 1 << 28 }).stdout;
  for (const line of text.split("\n")) {
    const m = /\s(\d+\.\d+):\s+syscalls:sys_enter_(\w+): (.*)$/.exec(line);
    if (!m) continue;
    const bytes = /(?:count|len): 0x([0-9a-f]+)/.exec(m[3]);
    out.push({ t: Number(m[1]) * 1e6, call: m[2], bytes: bytes ? parseInt(bytes[1], 16) : 0 });
  }
  rmSync(file, { force: true });
  return out;
}

/** Splits a trace into bursts separated by at least `gapUs` of quiet. */
function bursts(calls, gapUs) {
  const out = [];
  for (const c of calls) {
    const last = out.at(-1);
    if (last && c.t - last.at(-1).t < gapUs) last.push(c);
    else out.push([c]);
  }
  return out;
}

/**
 * Times from the frame read off the sender's socket: the first WAL page of the
 * sender's commit, its sync, the first page of the recipient's, its sync, and
 * the push after it (µs). null when the burst does not have that shape.
 */
function segments(burst) {
  const t0 = burst[0]?.call === "recvfrom" ? burst[0].t : null;
  if (t0 === null) return null;
  const at = (from, pred) => burst.findIndex((c, i) => i > from && pred(c));
  const page = (c) => c.call === "pwrite64" && c.bytes === 4096;
  const w1 = at(0, page);
  const s1 = at(w1, (c) => c.call === "fsync");
  const w2 = at(s1, page);
  const s2 = at(w2, (c) => c.call === "fsync");
  // The sender's `sent` goes out between the two commits; the first write after
  // the recipient's sync is its push.
  const push = at(s2, (c) => c.call === "sendto");
  if ([w1, s1, w2, s2, push].some((i) => i < 0)) return null;
  const sent = at(s1, (c) => c.call === "sendto");
  return {
    marks: [w1, s1, w2, s2, push].map((i) => burst[i].t - t0),
    // µs from the sender's sync to its `sent`, when that went out before the recipient's writes
    sentAfterSync: sent >= 0 && sent < w2 ? burst[sent].t - burst[s1].t : null,
  };
}

function report(name, rows) {
  const labels = ["frame in -> sender writes", "-> sender sync", "-> recipient writes", "-> recipient sync", "-> push"];
  console.log(`${name} (${rows.length} messages, medians, µs):`);
  let prev = 0;
  labels.forEach((l, i) => {
    const m = summarize(rows.map((r) => r.marks[i])).p50;
    console.log(`  ${l.padEnd(28)} ${String(Math.round(m - prev)).padStart(6)}   (at ${Math.round(m)})`);
    prev = m;
  });
  // Locally a frame to a client costs the runtime's thread some hundreds of µs
  // (the socket's pump, the isolate lock): a `sent` written between the two
  // commits delays the recipient's turn by that much.
  const withSent = rows.filter((r) => r.sentAfterSync !== null);
  if (withSent.length > 0) {
    const after = summarize(withSent.map((r) => r.sentAfterSync)).p50;
    console.log(`  (\`sent\` written ${Math.round(after)} µs after the sender's sync, before the recipient's writes, in ${withSent.length} of ${rows.length})`);
  }
}

try {
  const { runtime } = workerdOf(server);
  // Scenario 1's pair and durable-floor pair (bench/scenarios/latency.mjs).
  const ctx = { base: server.url, user: (name) => `${name}-${run}` };
  const { alice, bob } = await connectPair(ctx, "tl");
  const floorPing = await floorPair(ctx, ctx.user("tl-floor"), { durable: true });
  /** n round trips, 60 ms apart (a quiet of 30 ms ends one in the trace). */
  const paced = async (n, ping) => {
    for (let i = 0; i < n; i++) {
      if ((await ping(i)) === null) throw new Error(`round trip ${i} timed out`);
      await sleep(60);
    }
  };
  await paced(10, (i) => realPing(alice, bob, `w${i}`));
  const real = await traced(runtime, () => paced(N, (i) => realPing(alice, bob, `m${i}`)));
  const floor = await traced(runtime, () => paced(N, (i) => floorPing.ping(i)));
  for (const [name, calls] of [["one-to-one", real], ["durable floor", floor]]) {
    // Messages are 60 ms apart: a quiet of 30 ms ends one.
    const each = bursts(calls, 30_000);
    report(name, each.map(segments).filter(Boolean));
    if (SHOW) {
      const one = each[Math.floor(each.length / 2)];
      console.log(`  one message (epoll_wait: the thread goes idle; pwrite64 4096: a WAL page):`);
      for (const c of one) if (!(c.call === "pwrite64" && c.bytes !== 4096)) console.log(`    +${String(Math.round(c.t - one[0].t)).padStart(6)} µs  ${c.call} ${c.bytes || ""}`);
    }
  }
  floorPing.close();
  alice.close();
  bob.close();
} finally {
  server.stop();
  rmSync(state, { recursive: true, force: true });
}
process.exit(0);
