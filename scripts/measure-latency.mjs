// One-to-one latency against a real `wrangler dev`: Alice sends N messages one
// at a time to Bob (both connected, Bob acks each, paced under the send rate
// limit); reports send -> arrival at
// Bob and send -> `delivered` back at Alice. Usage: node scripts/measure-latency.mjs [N]
import { startDevServer } from "./dev-server.mjs";

const N = Number(process.argv[2] ?? 300);
const WARMUP = 20;
const server = await startDevServer({ observability: false });
try {
  const token = async (user) =>
    (await (await fetch(`${server.url}/v1/dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user }) })).json()).token;
  const connect = async (user, device) => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/connect?device=${device}&access_token=${await token(user)}`);
    const queue = [];
    let wake = null;
    ws.onmessage = (ev) => {
      queue.push(JSON.parse(ev.data));
      wake?.();
    };
    const next = async (pred) => {
      for (;;) {
        const i = queue.findIndex(pred);
        if (i >= 0) return queue.splice(i, 1)[0];
        await new Promise((r) => (wake = r));
      }
    };
    await next((f) => f.type === "synced");
    return { ws, next };
  };
  const run = Date.now().toString(36);
  const alice = await connect(`alice-${run}`, "phone");
  const bob = await connect(`bob-${run}`, "phone");
  const arrive = [];
  const delivered = [];
  // Paced under the per-device send limit (30/s): a faster loop measures rate_limited, not latency.
  const PACE_MS = 40;
  let last = 0;
  for (let i = 0; i < N + WARMUP; i++) {
    const wait = last + PACE_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    last = performance.now();
    const t0 = performance.now();
    alice.ws.send(JSON.stringify({ type: "send", id: `m${i}`, to: { user: `bob-${run}` }, text: `message ${i}` }));
    const m = await bob.next((f) => f.type === "message");
    const t1 = performance.now();
    bob.ws.send(JSON.stringify({ type: "ack", seq: m.seq }));
    await alice.next((f) => f.type === "receipt" && f.status === "delivered");
    const t2 = performance.now();
    if (i >= WARMUP) {
      arrive.push(t1 - t0);
      delivered.push(t2 - t0);
    }
  }
  const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2);
  };
  for (const [name, xs] of [["send -> message at recipient", arrive], ["send -> delivered at sender", delivered]]) {
    console.log(`${name}: n=${xs.length} p50=${pct(xs, 50)} ms p95=${pct(xs, 95)} ms p99=${pct(xs, 99)} ms max=${pct(xs, 100)} ms`);
  }
  alice.ws.close();
  bob.ws.close();
} finally {
  server.stop();
}
process.exit(0);
