// A/B of two checkouts of the server, ours alone (no floors), alternating the
// two in one sitting so both see the same machine: this machine's figures
// drift between sittings by as much as most changes move them, so a change is
// judged only against the old code measured minutes apart. Each measurement
// starts its own `wrangler dev` with that checkout's bench/wrangler.toml (its
// server) on a RAM disk and stops it; the clients are this checkout's, the
// scenarios' own code (bench/scenarios/). Modes:
//   ping   scenario 1's pair, one message at a time 40 ms apart: send -> message p50 (ms)
//   group  scenario 3's 200-member group, 20 posts 300 ms apart: post -> last member p50 (ms)
//   tput   scenario 2's 100 pairs within the send limit: messages delivered per second
// Usage (the other checkout needs node_modules, e.g. a git worktree with a symlink):
//   node bench/ab.mjs <other checkout> [--rounds 3] [--modes ping,group,tput] [--secs 10] [--b <checkout>]
// A is the other checkout, B this one (or --b). Prints each measurement and the medians.
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { freePort, startDevServer } from "../scripts/dev-server.mjs";
import { sleep } from "./lib/client.mjs";
import { summarize } from "./lib/stats.mjs";
import { post, realGroup } from "./scenarios/groups.mjs";
import { connectPair, realPing } from "./scenarios/latency.mjs";
import { realThroughput } from "./scenarios/throughput.mjs";

const here = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const rounds = Number(option("--rounds", "3"));
const modes = option("--modes", "ping,group,tput").split(",");
const secs = Number(option("--secs", "10"));
const bRoot = resolve(option("--b", here));
const aRoot = args[0] ? resolve(args[0]) : null;
if (!aRoot) {
  console.error("usage: node bench/ab.mjs <other checkout> [--rounds 3] [--modes ping,group,tput] [--secs 10] [--b <checkout>]");
  process.exit(2);
}

/** Each mode: its unit, and one measurement against a running server. */
const MODES = {
  ping: {
    unit: "ms p50",
    async measure(ctx) {
      const { alice, bob } = await connectPair(ctx, "ab");
      const one = async (id) => {
        const t = performance.now();
        const s = await realPing(alice, bob, id);
        await sleep(Math.max(0, 40 - (performance.now() - t)));
        return s;
      };
      for (let i = 0; i < 20; i++) await one(`w${i}`);
      const arrive = [];
      for (let i = 0, end = performance.now() + secs * 1000; performance.now() < end; i++) {
        const s = await one(`m${i}`);
        if (!s) throw new Error(`message m${i} did not arrive`);
        arrive.push(s.arrive);
      }
      for (const c of [alice, bob]) c.close();
      return summarize(arrive).p50;
    },
  },
  group: {
    unit: "ms p50",
    async measure(ctx) {
      const g = await realGroup(ctx, "ab", 200);
      if (g.error) throw new Error(g.error);
      const last = [];
      for (let i = 0; i < 25; i++) {
        const r = await post(g, `p${i}`);
        if (r.last === null) throw new Error(`post p${i}: ${r.missing} members never got it`);
        if (i >= 5) last.push(r.last); // the first five warm up
        await sleep(i === 4 ? 6000 : 300); // past the warm-up's backstop alarms
      }
      for (const c of g.clients) c.close();
      return summarize(last).p50;
    },
  },
  tput: {
    unit: "msgs/s",
    async measure(ctx) {
      return (await realThroughput(ctx, "ab", 100, secs * 1000, 3000)).throughput;
    },
  },
};
for (const m of modes) if (!MODES[m]) throw new Error(`--modes: no mode ${m}`);

/** One measurement of `root`'s server. */
async function measure(root, mode) {
  const stateDir = mkdtempSync(join(process.platform === "linux" ? "/dev/shm" : "/tmp", "relay-ab-"));
  const server = await startDevServer({ config: join(root, "bench", "wrangler.toml"), observability: false, persistTo: stateDir, port: await freePort(), log: () => {} });
  try {
    const run = Date.now().toString(36);
    return await MODES[mode].measure({ base: server.url, user: (name) => `${name}-${run}`.slice(0, 64) });
  } finally {
    server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const figures = new Map(); // "mode side" -> numbers
for (let r = 1; r <= rounds; r++) {
  for (const mode of modes) {
    for (const [side, root] of [
      ["A", aRoot],
      ["B", bRoot],
    ]) {
      const value = await measure(root, mode);
      const key = `${mode} ${side}`;
      figures.set(key, [...(figures.get(key) ?? []), value]);
      console.log(`round ${r} ${mode.padEnd(5)} ${side}: ${value.toFixed(mode === "tput" ? 0 : 2)} ${MODES[mode].unit}`);
    }
  }
}
console.log(`\nmedians (A = ${aRoot}, B = ${bRoot}):`);
for (const mode of modes) {
  const a = summarize(figures.get(`${mode} A`)).p50;
  const b = summarize(figures.get(`${mode} B`)).p50;
  console.log(`  ${mode.padEnd(5)} A ${a.toFixed(2)}  B ${b.toFixed(2)} ${MODES[mode].unit}  (B/A ${(b / a).toFixed(2)})`);
}
process.exit(0);
