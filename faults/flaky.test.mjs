// Flaky clients: 50 devices (35 users, 15 of them with two devices) send and
// receive while each device's connection is cut every 0.2-2 s, half the time
// abruptly (a TCP reset through a proxy: frames in flight are lost), half the
// time with a normal close. The clients do what the protocol asks of an app:
// resend unconfirmed sends with the same id, drop seqs they hold, ack.
// After the storm: every message reached every device of its recipient and
// every other device of its sender exactly once, and every sender saw
// `delivered` for each of its messages. `npm run test:faults`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startDevServer } from "../scripts/dev-server.mjs";
import { Client, sleep } from "../bench/lib/client.mjs";
import { flakyDevices, seeded, storm, waitFor } from "./lib/run.mjs";

test("50 devices whose connections drop every 0.2-2 s: every message reaches every device exactly once, every sender sees delivered", { timeout: 300_000 }, async (t) => {
  const { random, say } = seeded(t);
  say();

  const server = await startDevServer({ observability: false });
  let flaky = null;
  try {
    flaky = await flakyDevices(server, "u", (user, device, proxy) => {
      const client = new Client({ base: proxy.url, tokenBase: server.url, user, device, reconnect: true });
      return { client, cut: () => proxy.cut(), drop: () => client.drop() };
    });
    const { users, devices } = flaky;
    assert.equal(devices.length, 50);
    for (const d of devices) await d.client.connect();

    // The storm: every device is cut at random moments, abruptly or not, while
    // each user sends its messages to random others, from a random device of its own.
    const sent = []; // { from, to, id, device }
    const cuts = await storm({
      devices,
      users,
      random,
      send: (d, to, k) => {
        const id = `m${k}`;
        sent.push({ from: d.user, to, id, device: d });
        d.client.send({ user: users[to] }, id, `from ${users[d.user]} #${k}`);
      },
    });
    t.diagnostic(`${sent.length} messages sent during the storm, ${cuts} connections cut`);

    // Calm: wait until every device holds what it is owed and every sender saw delivered.
    const owed = (d) =>
      sent.filter((m) => m.to === d.user || (m.from === d.user && m.device !== d)).map((m) => `${users[m.from]}|${m.id}`);
    const complete = () =>
      devices.every((d) => d.client.pending.size === 0 && owed(d).every((k) => d.client.seenIds.has(k))) &&
      sent.every((m) => {
        const s = m.device.client.sent.get(m.id);
        return s !== undefined && m.device.client.delivered.has(s.msg);
      });
    await waitFor(complete, 120_000);
    await sleep(1500); // late duplicates would arrive now

    const missing = [];
    const dups = [];
    for (const d of devices) {
      for (const k of owed(d)) if (!d.client.seenIds.has(k)) missing.push(`${d.client.user}/${d.client.device} lacks ${k}`);
      for (const [k, n] of d.client.seenIds) if (n > 1) dups.push(`${d.client.user}/${d.client.device} got ${k} ${n} times`);
    }
    assert.deepEqual(missing, [], "every device has every message it is owed");
    assert.deepEqual(dups, [], "no message arrived twice under different seqs");
    const unconfirmed = sent.filter((m) => !m.device.client.sent.has(m.id)).map((m) => `${users[m.from]}|${m.id}`);
    assert.deepEqual(unconfirmed, [], "every send got `sent`");
    const undelivered = sent.filter((m) => !m.device.client.delivered.has(m.device.client.sent.get(m.id).msg)).map((m) => `${users[m.from]}|${m.id}`);
    assert.deepEqual(undelivered, [], "every sender saw `delivered`");
    // Nothing arrived that nobody sent.
    for (const d of devices) assert.equal(d.client.messages.length, owed(d).length, `${d.client.user}/${d.client.device} got extra messages`);
    const reconnects = devices.reduce((a, d) => a + d.client.connects, 0) - devices.length;
    t.diagnostic(`reconnects ${reconnects}, replayed seqs dropped ${devices.reduce((a, d) => a + d.client.replayedSeqs, 0)}`);
    assert.ok(reconnects > 50, "the storm really did cut connections");
  } finally {
    for (const d of flaky?.devices ?? []) d.client.close();
    flaky?.close();
    server.stop();
  }
});
