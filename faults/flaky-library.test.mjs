// Flaky clients, through the client library: the storm of flaky.test.mjs, but
// every device is the real client library (src/client/, bundled for Node as
// the benchmark does), end-to-end encryption on, as an app ships it. 50
// devices (35 users, 15 of them with two), each socket cut every 0.2-2 s, half
// the time abruptly (a TCP reset through a proxy: frames in flight are lost),
// half the time by the library dropping it as a lost network would. Only the
// sockets go through the proxies; HTTP (keys, device lists) goes straight.
// After the storm: every message is in every device of its recipient and every
// other device of its sender exactly once, decrypted to what was sent, each
// sending device's messages in a chat in the order it sent them; every sender's
// device shows it delivered. `npm run test:faults`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startDevServer } from "../scripts/dev-server.mjs";
import { sleep } from "../bench/lib/client.mjs";
import { startClient } from "../bench/lib/chat-client.mjs";
import { flakyDevices, libraryClient, seeded, storm, waitFor } from "./lib/run.mjs";

test("50 client-library devices (e2ee) whose sockets drop every 0.2-2 s: every message reaches every device once, decrypted; every sender sees delivered", { timeout: 300_000 }, async (t) => {
  const { random, say } = seeded(t);
  say();

  const server = await startDevServer({ observability: false });
  const errors = [];
  let flaky = null;
  try {
    flaky = await flakyDevices(server, "L", async (user, name, proxy) => {
      const client = await libraryClient({
        base: server.url,
        user,
        device: name,
        // The socket, and only the socket, through this device's proxy.
        socketFactory: (url) => new WebSocket(url.replace(`:${server.port}/`, `:${proxy.port}/`)),
        errors,
      });
      const d = { name, client, arrivals: new Map(), delivered: new Set(), cut: () => proxy.cut(), drop: () => client.dropConnection() };
      client.on("message", ({ message: m, source }) => {
        if (source === "own" || m.chat?.user === undefined) return;
        d.arrivals.set(m.key, (d.arrivals.get(m.key) ?? 0) + 1);
      });
      client.on("messageUpdated", ({ message: m }) => {
        if (m.mine && (m.status === "delivered" || m.status === "read")) d.delivered.add(m.key);
      });
      return d;
    });
    const { users, devices } = flaky;
    assert.equal(devices.length, 50);
    // Started one at a time: each publishes its keys before anyone writes to it.
    for (const d of devices) await startClient(d.client);

    // The storm: every device is cut at random moments, abruptly or not, while
    // each user sends its messages to random others, from a random device of its own.
    const sent = []; // { from, to, id, device, text }
    const refused = [];
    const cuts = await storm({
      devices,
      users,
      random,
      send: (d, to, k) => {
        const text = `from ${users[d.user]} #${k}`;
        try {
          const m = d.client.send({ user: users[to] }, { text }, `m${k}`);
          sent.push({ from: d.user, to, id: m.id, device: d, text });
        } catch (err) {
          // The library refuses sends once it believes another tab took the device over.
          refused.push(`${users[d.user]}/${d.name} m${k}: ${err.message} (state ${d.client.connectionState})`);
        }
      },
    });
    assert.deepEqual(refused, [], "every device kept its connection (none was told another tab took over)");
    t.diagnostic(`${sent.length} messages sent during the storm, ${cuts} sockets cut`);

    // Calm: wait until every device holds what it is owed and every sender saw delivered.
    // A message is stored under <chat of the holder>|<sender>|<id>.
    const keyFor = (m, d) => `user:${users[d.user === m.from ? m.to : m.from]}|${users[m.from]}|${m.id}`;
    const owed = (d) => sent.filter((m) => m.to === d.user || (m.from === d.user && m.device !== d));
    const complete = () =>
      devices.every((d) => owed(d).every((m) => d.arrivals.has(keyFor(m, d)))) && sent.every((m) => m.device.delivered.has(keyFor(m, m.device)));
    await waitFor(complete, 120_000);
    await sleep(1500); // late duplicates would arrive now

    const missing = [];
    const dups = [];
    const extra = [];
    const wrong = [];
    const disorder = [];
    for (const d of devices) {
      const who = `${users[d.user]}/${d.name}`;
      for (const m of owed(d)) {
        const key = keyFor(m, d);
        if (!d.arrivals.has(key)) {
          // What each side knows of it, to tell a lost hand-off from a message the device holds but never showed.
          const mine = m.device.client.message(keyFor(m, m.device));
          const held = d.client.message(key);
          missing.push(
            `${who} lacks ${key} (sender: ${mine?.status ?? "no such message"}, msg ${mine?.msg}; this device: ${held ? `holds it, undecryptable ${held.undecryptable}, sealed ${!!held.sealed}` : "nothing"}, lastSeq ${d.client.lastSeq}, ${d.client.connectionState})`,
          );
        }
        const held = d.client.message(key);
        if (held && held.text !== m.text) wrong.push(`${who}: ${key} reads ${JSON.stringify(held.text)} (encrypted: ${held.encrypted})`);
      }
      for (const [k, n] of d.arrivals) if (n > 1) dups.push(`${who} got ${k} ${n} times`);
      // Each sending device's messages in a chat show in the order it sent them (arrivals keep
      // the order of first arrival; ids count up in sending order).
      const owedHere = new Map(owed(d).map((m) => [keyFor(m, d), m]));
      const lastOf = new Map();
      for (const k of d.arrivals.keys()) {
        const m = owedHere.get(k);
        if (!m) continue;
        const lane = `${users[m.from]}/${m.device.name} in ${k.split("|")[0]}`;
        const n = Number(m.id.slice(1));
        if ((lastOf.get(lane) ?? -1) > n) disorder.push(`${who}: ${lane}: ${m.id} after m${lastOf.get(lane)}`);
        lastOf.set(lane, Math.max(n, lastOf.get(lane) ?? -1));
      }
      const expected = new Set(owed(d).map((m) => keyFor(m, d)));
      for (const k of d.arrivals.keys()) if (!expected.has(k)) extra.push(`${who} got ${k}, which nobody sent it`);
    }
    assert.deepEqual(missing, [], "every device has every message it is owed");
    assert.deepEqual(dups, [], "no message was shown twice");
    assert.deepEqual(extra, [], "nothing arrived that nobody sent");
    assert.deepEqual(wrong, [], "every message reads as it was sent");
    assert.deepEqual(disorder, [], `each device's messages in a chat arrive in the order it sent them; error events: ${errors.slice(0, 10).join("; ") || "none"}`);
    const undelivered = sent
      .filter((m) => !m.device.delivered.has(keyFor(m, m.device)))
      .map((m) => {
        const held = m.device.client.message(keyFor(m, m.device));
        const others = devices.filter((o) => o.user === m.from && o !== m.device).map((o) => `${o.name}: ${o.client.message(keyFor(m, o))?.status}`);
        return `${users[m.from]}/${m.device.name}|${m.id} (there: ${held?.status}, msg ${held?.msg}; ${others.join(", ") || "no other device"})`;
      });
    assert.deepEqual(undelivered, [], "every sender saw `delivered`");
    const encrypted = devices.reduce((a, d) => a + owed(d).filter((m) => d.client.message(keyFor(m, d))?.encrypted).length, 0);
    const copies = devices.reduce((a, d) => a + owed(d).length, 0);
    t.diagnostic(`${copies} copies delivered, ${encrypted} of them end-to-end encrypted; ${errors.length} error events`);
    assert.equal(encrypted, copies, "every copy was encrypted end to end");
  } finally {
    for (const d of flaky?.devices ?? []) await d.client.stop().catch(() => {});
    flaky?.close();
    server.stop();
  }
});
