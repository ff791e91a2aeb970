// Server CPU per one-to-one message, for before/after comparisons of server
// changes: Alice sends Bob N messages one at a time (Bob acks, Alice gets
// `delivered` and acks it), and the CPU time of the workerd that runs the
// objects (utime + stime from /proc) is divided by N. Repeated; prints each
// round and the median. Usage: node bench/cpu.mjs [N] [rounds]
import { join } from "node:path";
import { startDevServer } from "../scripts/dev-server.mjs";
import { Client, sleep } from "./lib/client.mjs";
import { HZ } from "./lib/stats.mjs";
import { ticksOf, workerdOf } from "./lib/procs.mjs";

const N = Number(process.argv[2] ?? 300);
const ROUNDS = Number(process.argv[3] ?? 3);
const root = new URL("..", import.meta.url).pathname;
const ticks = ticksOf;
const server = await startDevServer({ config: join(root, "bench", "wrangler.toml"), observability: false });
try {
  const { runtime } = workerdOf(server);
  const perMessage = [];
  for (let r = 0; r < ROUNDS; r++) {
    const alice = new Client({ base: server.url, user: `cpu-a${r}-${Date.now()}`, device: "phone" });
    const bob = new Client({ base: server.url, user: `cpu-b${r}-${Date.now()}`, device: "phone" });
    await alice.connect();
    await bob.connect();
    const one = async (id) => {
      alice.send({ user: bob.user }, id, "x");
      await alice.until(() => alice.sent.has(id) && alice.delivered.has(alice.sent.get(id).msg), 10_000);
    };
    for (let i = 0; i < 20; i++) await one(`w${i}`);
    await sleep(1500);
    const t0 = ticks(runtime);
    const w0 = performance.now();
    for (let i = 0; i < N; i++) await one(`m${i}`);
    await sleep(1500); // the trailing alarm and acks belong to these messages
    const cpuMs = ((ticks(runtime) - t0) * 1000) / HZ;
    perMessage.push(cpuMs / N);
    console.log(`round ${r + 1}: ${(cpuMs / N).toFixed(2)} ms CPU per message (${N} messages in ${((performance.now() - w0) / 1000).toFixed(1)} s)`);
    alice.close();
    bob.close();
  }
  perMessage.sort((a, b) => a - b);
  console.log(`median: ${perMessage[Math.floor(perMessage.length / 2)].toFixed(2)} ms CPU per one-to-one message (send, deliver, ack, receipt, ack)`);
} finally {
  server.stop();
}
process.exit(0);
