// A/B of two checkouts of the server, ours alone (no floors), alternating the
// two in one sitting so both see the same machine: this machine's figures
// drift between sittings by as much as most changes move them, so a change is
// judged only against the old code measured minutes apart. Each measurement
// starts its own `wrangler dev` (bench/wrangler.toml of that checkout) on a
// RAM disk and stops it. Modes:
//   ping   one pair, one message at a time 40 ms apart: send -> message p50 (ms)
//   group  a 200-member group, 20 posts 300 ms apart: post -> last member p50 (ms)
//   tput   100 pairs within the send limit, 4 in flight each: messages per second
// Usage (the other checkout needs node_modules, e.g. a git worktree with a symlink):
//   node bench/ab.mjs <other checkout> [--rounds 3] [--modes ping,group,tput] [--secs 10] [--b <checkout>]
// A is the other checkout, B this one (or --b). Prints each measurement and the medians.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const here = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};

if (args[0] === "--child") {
  await child(option("--root"), option("--mode"), Number(option("--secs", "10")));
  process.exit(0);
}

const rounds = Number(option("--rounds", "3"));
const modes = option("--modes", "ping,group,tput").split(",");
const secs = option("--secs", "10");
/** --b <checkout>: compare two other checkouts (B is this one by default). */
const bRoot = resolve(option("--b", here));
const other = args[0] ? resolve(args[0]) : null;
if (!other) {
  console.error("usage: node bench/ab.mjs <other checkout> [--rounds 3] [--modes ping,group,tput] [--secs 10] [--b <checkout>]");
  process.exit(2);
}
const UNIT = { ping: "ms p50", group: "ms p50", tput: "msgs/s" };
for (const m of modes) if (!UNIT[m]) throw new Error(`--modes: no mode ${m}`);
const figures = new Map(); // "mode side" -> numbers
for (let r = 1; r <= rounds; r++) {
  for (const mode of modes) {
    for (const [side, root] of [
      ["A", other],
      ["B", bRoot],
    ]) {
      const run = spawnSync(process.execPath, [join(here, "bench", "ab.mjs"), "--child", "--root", root, "--mode", mode, "--secs", secs], {
        encoding: "utf8",
        timeout: 300_000,
      });
      const line = run.stdout.split("\n").find((l) => l.startsWith("{"));
      if (!line) {
        console.error(`round ${r} ${mode} ${side} failed:\n${run.stderr.slice(-2000)}`);
        process.exit(1);
      }
      const value = JSON.parse(line).value;
      const key = `${mode} ${side}`;
      figures.set(key, [...(figures.get(key) ?? []), value]);
      console.log(`round ${r} ${mode.padEnd(5)} ${side}: ${value.toFixed(mode === "tput" ? 0 : 2)} ${UNIT[mode]}`);
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nmedians (A = ${other}, B = ${bRoot}):`);
for (const mode of modes) {
  const a = median(figures.get(`${mode} A`));
  const b = median(figures.get(`${mode} B`));
  console.log(`  ${mode.padEnd(5)} A ${a.toFixed(2)}  B ${b.toFixed(2)} ${UNIT[mode]}  (B/A ${(b / a).toFixed(2)})`);
}

/** One measurement of `root`'s server; prints {"value": ...}. */
async function child(root, mode, seconds) {
  const { startDevServer, freePort } = await import(join(root, "scripts", "dev-server.mjs"));
  const { Client, connectAll, sleep } = await import(join(root, "bench", "lib", "client.mjs"));
  const stateDir = mkdtempSync(join(process.platform === "linux" ? "/dev/shm" : "/tmp", "relay-ab-"));
  const server = await startDevServer({ config: join(root, "bench", "wrangler.toml"), observability: false, persistTo: stateDir, port: await freePort(), log: () => {} });
  try {
    const run = Date.now().toString(36);
    const make = (name) => new Client({ base: server.url, user: `${name}-${run}`, device: "phone" });
    let value;
    if (mode === "group") value = await group(root, server, make, connectAll, sleep);
    else value = await pairs(mode, make, connectAll, sleep, seconds);
    console.log(JSON.stringify({ value }));
  } finally {
    server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function pairs(mode, make, connectAll, sleep, seconds) {
  const n = mode === "tput" ? 100 : 1;
  const senders = Array.from({ length: n }, (_, i) => make(`s${i}`));
  const receivers = Array.from({ length: n }, (_, i) => make(`r${i}`));
  await connectAll([...senders, ...receivers], 16);
  const arrived = new Array(n).fill(0);
  const sentAt = new Map();
  const lat = [];
  receivers.forEach((rc, i) => {
    rc.opts.onFrame = (f, at) => {
      if (f.type !== "message") return;
      arrived[i]++;
      const t = sentAt.get(`${i}:${f.id}`);
      if (t !== undefined) lat.push(at - t);
    };
  });
  const sent = new Array(n).fill(0);
  const drive = (ms, record) => {
    const end = performance.now() + ms;
    return Promise.all(
      senders.map(async (s, i) => {
        while (performance.now() < end) {
          // ping: one in flight; tput: up to 4, at most 25 a second (under the send limit)
          while (sent[i] - arrived[i] >= (mode === "tput" ? 4 : 1) && performance.now() < end) await sleep(1);
          const id = `m${sent[i]}`;
          if (record) sentAt.set(`${i}:${id}`, performance.now());
          s.send({ user: receivers[i].user }, id, `message ${sent[i]}`);
          sent[i]++;
          await sleep(40);
        }
      }),
    );
  };
  await drive(3000, false);
  await sleep(1000);
  const a0 = arrived.reduce((x, y) => x + y, 0);
  const t0 = performance.now();
  await drive(seconds * 1000, true);
  const rate = (arrived.reduce((x, y) => x + y, 0) - a0) / ((performance.now() - t0) / 1000);
  for (const c of [...senders, ...receivers]) c.close();
  if (mode === "tput") return rate;
  lat.sort((x, y) => x - y);
  return lat[Math.floor(lat.length / 2)];
}

async function group(root, server, make, connectAll, sleep) {
  const { createGroup } = await import(join(root, "bench", "scenarios", "groups.mjs"));
  const clients = Array.from({ length: 200 }, (_, i) => make(`g${i}`));
  const created = await createGroup({ base: server.url }, clients[0].user, clients.slice(1).map((c) => c.user), "ab");
  if (created.error) throw new Error(created.error);
  const arrivals = new Map();
  clients.forEach((c, i) => {
    c.opts.onFrame = (f, at) => {
      if (f.type !== "message" || i === 0) return;
      arrivals.set(f.id, [...(arrivals.get(f.id) ?? []), at]);
    };
  });
  await connectAll(clients, 16);
  const post = async (id) => {
    const t0 = performance.now();
    clients[0].send({ group: created.id }, id, `post ${id}`);
    while ((arrivals.get(id)?.length ?? 0) < 199 && performance.now() < t0 + 15_000) await sleep(2);
    if ((arrivals.get(id)?.length ?? 0) < 199) throw new Error(`post ${id} did not reach every member`);
    return Math.max(...arrivals.get(id)) - t0;
  };
  for (let i = 0; i < 5; i++) {
    await post(`w${i}`);
    await sleep(300);
  }
  await sleep(6000); // past the warm-up's backstop alarms
  const last = [];
  for (let i = 0; i < 20; i++) {
    last.push(await post(`p${i}`));
    await sleep(300);
  }
  for (const c of clients) c.close();
  last.sort((x, y) => x - y);
  return last[Math.floor(last.length / 2)];
}
