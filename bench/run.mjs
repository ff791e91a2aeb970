// `npm run bench`: starts its own `wrangler dev` (bench/wrangler.toml: the
// production Worker plus the floor object) on a free 127.0.0.1 port with its
// own state directory, runs every scenario against it with real WebSockets
// from this process, and writes bench/results/<timestamp>.json,
// bench/results/latest.md and bench/results/latest.svg. The server's process
// group is killed at the end, whatever happens.
//
//   node bench/run.mjs [--all] [--quick] [--scale <x>] [--only s1,s3] [--no-write] [--profile] [--state-dir <dir>] [--as <name>] [--detail]
//
// The default runs the benchmark issue's six scenarios at the sizes it names
// (about 5 minutes here). --all adds scenario 7 (the cost of e2ee) and the held
// load (1,000 sockets, 200 msgs/s for 60 s): about 9 minutes. The committed
// results are --all runs.
//
// --quick: about 1 minute, a smoke run: small counts, short runs, no memory
//   figures, no wait for evictions between scenarios.
// s7 bundles the client library (src/client/) with esbuild into a temporary file.
// --scale: multiplies every count and duration (e.g. 0.5, 2).
// --state-dir: where the server's state lives. Default: a RAM disk (/dev/shm)
//   when there is one, else the system temp dir. Local workerd ends every SQLite
//   commit with a disk sync on its one thread, which stops every object in the
//   process meanwhile; production confirms commits by replication while the
//   thread runs on. --state-dir /tmp measures with those syncs (README).
// --profile: CPU-profiles the server (inspector) during each scenario; writes
//   bench/results/profile-<scenario>.cpuprofile and prints the top self time.
// --as <name>: writes bench/results/<name>.{json,md,svg} instead of latest.*.
// --detail: adds figures that only explain others (scenario 5: a socket the
//   runtime never sent a frame), at their cost in time.
import { execSync } from "node:child_process";
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { join } from "node:path";
import { freePort, startDevServer } from "../scripts/dev-server.mjs";
import { counters } from "./lib/client.mjs";
import { checkBenchConfig } from "./lib/config.mjs";
import { renderMarkdown } from "./lib/markdown.mjs";
import { connectInspector, jsHeapUsed, profilerOn, topInclusive, topSelf } from "./lib/profiler.mjs";
import { renderSvg } from "./lib/svg.mjs";
import { openDatabases, workerdOf } from "./lib/procs.mjs";
import { cpuBetween, serverSample } from "./lib/stats.mjs";
import { scenarioCatchUp } from "./scenarios/catchup.mjs";
import { scenarioConnections } from "./scenarios/connections.mjs";
import { scenarioE2ee } from "./scenarios/e2ee.mjs";
import { scenarioGroups } from "./scenarios/groups.mjs";
import { scenarioLatency, scenarioPresence } from "./scenarios/latency.mjs";
import { scenarioLoadHeld, scenarioThroughput } from "./scenarios/throughput.mjs";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = flag("--quick");
/** --detail: measurements that only explain others (e.g. a socket never sent a frame), at their cost in time. */
const detail = flag("--detail");
/** Open databases above the start that settle() does not wait for. */
const FEW_OBJECTS = 20;
const scale = Number(option("--scale") ?? "1");
if (!(scale > 0)) throw new Error("--scale takes a positive number");
const only = option("--only")?.split(",");
/** --all: also the scenarios that are not in the default run (extra below). */
const all = flag("--all");
/** --as <name>: write bench/results/<name>.{json,md,svg} instead of latest.* (e.g. latest-disk for a --state-dir /tmp run). */
const outName = option("--as") ?? "latest";
if (!/^[\w.-]+$/.test(outName)) throw new Error("--as takes a plain file name");

// Ordered so the memory figure (connections) is taken on a fresh runtime, and
// the presence run comes right after the run it is compared with. `extra`:
// only with --all (or named by --only).
const SCENARIOS = [
  { id: "s5", fn: scenarioConnections },
  { id: "s1", fn: scenarioLatency },
  { id: "s6", fn: scenarioPresence },
  { id: "s2", fn: scenarioThroughput },
  { id: "s4", fn: scenarioCatchUp },
  { id: "s3", fn: scenarioGroups },
  { id: "s7", fn: scenarioE2ee, extra: true },
  { id: "load", fn: scenarioLoadHeld, extra: true },
];
for (const id of only ?? []) if (!SCENARIOS.some((s) => s.id === id)) throw new Error(`--only: no scenario ${id} (${SCENARIOS.map((s) => s.id).join(", ")})`);
const selected = SCENARIOS.filter((s) => (only ? only.includes(s.id) : all || !s.extra));
/** Scenarios this run left out that --all would have run. */
const leftOut = only ? [] : SCENARIOS.filter((s) => !selected.includes(s)).map((s) => s.id);

/** /dev/shm when it is a writable tmpfs (Linux), else undefined: the system temp dir. */
function ramDisk() {
  const TMPFS_MAGIC = 0x01021994;
  try {
    accessSync("/dev/shm", constants.W_OK);
    return statfsSync("/dev/shm").type === TMPFS_MAGIC ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

checkBenchConfig(root);
const runId = Date.now().toString(36);
const started = new Date();
const log = (...a) => console.log(`[bench +${((Date.now() - started.getTime()) / 1000).toFixed(0)}s]`, ...a);
log(`starting wrangler dev (bench/wrangler.toml), mode ${quick ? "quick" : "default"}, scale ${scale}, scenarios ${selected.map((s) => s.id).join(", ")}`);
// The server's own output goes to a file: errors it logged are counted in the report.
const serverLog = process.env.BENCH_SERVER_LOG ?? join(tmpdir(), `relay-bench-${process.pid}.log`);
const profiling = flag("--profile");
const stateParent = option("--state-dir") ?? ramDisk();
const stateDir = stateParent ? mkdtempSync(join(stateParent, "relay-bench-")) : undefined;
const inspectorPort = await freePort();
let server;
// However the run ends (a crash, or a signal: startDevServer's handlers stop the
// server and exit), the server stops and the state directory made here goes;
// startDevServer removes only one it made itself.
process.on("exit", () => {
  server?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});
server = await startDevServer({
  config: join(root, "bench", "wrangler.toml"),
  observability: false,
  inspectorPort,
  persistTo: stateDir,
  log: (text) => appendFileSync(serverLog, text),
});
const inspector = await connectInspector(inspectorPort);
const profiler = profiling ? await profilerOn(inspector) : null;
/** The filesystem that holds the objects' SQLite files: a local commit waits for its sync. */
const stateFs = (() => {
  try {
    return execSync(`stat -f -c %T ${JSON.stringify(server.state)}`, { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
})();

/** Databases the runtime holds open before any scenario (D1, the alarm index). */
const baseDatabases = (() => {
  const { runtime } = workerdOf(server);
  return runtime ? openDatabases(runtime) : 0;
})();

const ctx = {
  base: server.url,
  server,
  quick,
  detail,
  scale,
  runId,
  shared: {},
  log,
  /** A fresh user id for this run. */
  user: (name) => `${name}-${runId}`.slice(0, 64),
  /** Waits until the server's runtime is nearly idle (leftover work of the last step done). */
  quiesce: async (maxMs = 30_000) => {
    const deadline = performance.now() + maxMs;
    for (;;) {
      const a = serverSample(server);
      await new Promise((r) => setTimeout(r, 500));
      const b = serverSample(server);
      // under 5% of one core over half a second
      if (b.runtimeTicks - a.runtimeTicks <= 2 || performance.now() > deadline) return;
    }
  },
  /**
   * Waits until the objects the last scenario left behind are evicted: the
   * runtime evicts objects some 10 s after their last socket closed, each one
   * checkpointing its database on the runtime's one thread, which would land
   * as a pause in the middle of the next scenario. Done when no more databases
   * are open than at the start, or their number held still for 12 s (at most
   * 60 s). Not with --quick.
   */
  settle: async () => {
    await ctx.quiesce();
    const { runtime } = workerdOf(server);
    // --quick trades this accuracy for time.
    if (!runtime || quick) return;
    const t0 = performance.now();
    let last = openDatabases(runtime);
    let stableSince = t0;
    // A handful of objects checkpoint in milliseconds: only a scenario that
    // left hundreds behind (connections, groups, throughput) is worth the wait.
    if (last <= baseDatabases + FEW_OBJECTS) return;
    while (last > baseDatabases && performance.now() - stableSince < 12_000 && performance.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 500));
      const now = openDatabases(runtime);
      if (now !== last) stableSince = performance.now();
      last = now;
    }
    await ctx.quiesce();
    const waited = (performance.now() - t0) / 1000;
    if (waited > 1) log(`  settled in ${waited.toFixed(0)} s: ${last} databases open (${baseDatabases} at the start)`);
  },
  /** Bytes of the server's JS heap in use after a full GC. */
  jsHeap: () => jsHeapUsed(inspector),
  /** A count for this mode and scale. */
  count: (full, quickValue) => Math.max(1, Math.round((quick ? quickValue : full) * scale)),
};

const results = [];
let failed = false;
try {
  for (const { id, fn } of selected) {
    log(`scenario ${id}...`);
    await ctx.settle();
    const before = serverSample(server);
    const framesBefore = counters.framesIn;
    let result;
    // A stall of this process (GC, a burst of client work) shows up as latency: measure it.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    await profiler?.start();
    try {
      result = await fn(ctx);
    } catch (err) {
      console.error(err);
      result = { id, title: id, rows: [], targets: [], notes: [], error: String(err?.stack ?? err) };
      failed = true;
    }
    const cpu = cpuBetween(before, serverSample(server));
    loopDelay.disable();
    if (profiler) {
      const profile = await profiler.stop();
      mkdirSync(join(root, "bench", "results"), { recursive: true });
      writeFileSync(join(root, "bench", "results", `profile-${id}.cpuprofile`), JSON.stringify(profile));
      const t = topSelf(profile);
      log(`  profile: ${t.busyMs.toFixed(0)} ms busy of ${t.totalMs.toFixed(0)} ms (bench/results/profile-${id}.cpuprofile)`);
      for (const r of t.top) log(`    ${r.ms.toFixed(1).padStart(9)} ms ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.fn}`);
      log(`  inclusive (a function and all it called; shares of the samples in JavaScript, not idle, GC or "(program)"):`);
      for (const r of topInclusive(profile).top) log(`    ${r.ms.toFixed(1).padStart(9)} ms ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.fn}`);
    }
    const frames = counters.framesIn - framesBefore;
    result.cpu = { ...cpu, clientLoopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }, framesIn: frames, serverUsPerFrame: frames > 0 ? (cpu.serverMs * 1000) / frames : null, runtimeUsPerFrame: frames > 0 ? (cpu.runtimeMs * 1000) / frames : null };
    results.push(result);
    log(`${id} done in ${(cpu.wallMs / 1000).toFixed(1)} s${result.skipped ? ` (skipped: ${result.skipped})` : ""}`);
    for (const row of result.rows ?? []) {
      const r = row.real;
      if (r?.n) log(`  ${row.measure}: p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} max ${r.max.toFixed(1)} ms (n=${r.n})${row.floor?.n ? `, floor p50 ${row.floor.p50.toFixed(2)} ms` : ""}`);
    }
    for (const f of result.figures ?? []) log(`  ${f.name}: ${f.value ?? "–"} ${f.value === null ? "" : (f.unit ?? "")}`);
  }
} finally {
  inspector.close();
  server.stop();
}

// What the server logged besides request lines: uncaught errors, warnings, stack traces.
const serverErrors = existsSync(serverLog)
  ? readFileSync(serverLog, "utf8")
      .split("\n")
      .filter((l) => /uncaught|unhandled|error|exception|frame failed/i.test(l) && !l.includes("wrangler:info"))
  : [];
if (!process.env.BENCH_SERVER_LOG) rmSync(serverLog, { force: true });

let commit = "unknown";
try {
  commit = execSync("git rev-parse --short HEAD", { cwd: root, encoding: "utf8" }).trim();
} catch {
  // not a git checkout
}
const report = {
  startedAt: started.toISOString(),
  finishedAt: new Date().toISOString(),
  mode: quick ? "quick" : "default",
  scale,
  commit,
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "", memGiB: Math.round(totalmem() / 2 ** 30), loadAvgAtEnd: loadavg()[0] },
  node: process.version,
  state: { dir: server.state, fs: stateFs },
  wrangler: JSON.parse(readFileSync(join(root, "node_modules", "wrangler", "package.json"), "utf8")).version,
  results,
  leftOut,
  serverErrors: { count: serverErrors.length, first: serverErrors.slice(0, 5) },
};
const dir = join(root, "bench", "results");
if (!flag("--no-write")) {
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const json = JSON.stringify(report, null, 2) + "\n";
  writeFileSync(join(dir, `${stamp}.json`), json);
  // The latest run's raw figures travel with its table and chart (the dated files stay local).
  writeFileSync(join(dir, `${outName}.json`), json);
  writeFileSync(join(dir, `${outName}.md`), renderMarkdown(report, outName));
  writeFileSync(join(dir, `${outName}.svg`), renderSvg(report));
  log(`wrote bench/results/${stamp}.json, ${outName}.json, ${outName}.md, ${outName}.svg`);
} else {
  console.log(renderMarkdown(report));
}
const missed = results.flatMap((r) => (r.targets ?? []).filter((t) => t.name.includes("lost") && t.measured !== 0 && t.measured !== null));
if (missed.length) {
  console.error(`[bench] messages were lost or duplicated: ${missed.map((t) => t.name).join("; ")}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
