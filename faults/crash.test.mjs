// Crash: the server is killed with SIGKILL (its whole process group, workerd
// included) while five senders pipeline messages to an online and an offline
// recipient, then restarted on the same state directory and port.
//
// What must hold: every message that got `sent` is delivered exactly once, in
// each sender's order. A message that did not get `sent` is delivered once
// after its sender resends it with the same id, or, if the sender gives up,
// at most once (it may have been stored with its `sent` lost in the crash).
// Real processes, real sockets: `npm run test:faults`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, sleep } from "../bench/lib/client.mjs";
import { crashableServer, seeded } from "./lib/run.mjs";

const SENDERS = 5;
const PER_SENDER = 200;
const RATE = 25; // per second, below the send limit of 30/s
const RESENDING = 3; // senders 0..2 resend after the crash; 3..4 give up on unconfirmed sends

test("kill -9 mid-stream: every sent message arrives exactly once and in order, nothing unsent is duplicated", { timeout: 240_000 }, async (t) => {
  const { random, say } = seeded(t);
  const killAfterMs = 1000 + Math.floor(random() * 5000);
  say(`kill after ${killAfterMs} ms`);

  const server = await crashableServer("crash");
  const run = Date.now().toString(36);
  const base = server.url;
  const online = new Client({ base, user: `on-${run}`, device: "phone", reconnect: true });
  const offline = new Client({ base, user: `off-${run}`, device: "phone" });
  const senders = Array.from({ length: SENDERS }, (_, i) => new Client({ base, user: `s${i}-${run}`, device: "phone", reconnect: true, resend: i < RESENDING }));
  try {
    await online.connect();
    // The offline recipient's device exists before anything is sent: it is owed all of it.
    await offline.connect();
    offline.close();
    for (const s of senders) await s.connect();

    // Each sender pipelines its messages (no waiting for `sent`), alternating recipients.
    let crashed = false;
    const recipientOf = (k) => (k % 2 === 0 ? online.user : offline.user);
    const sending = senders.map(async (s, i) => {
      for (let k = 0; k < PER_SENDER; k++) {
        if (crashed && i >= RESENDING) return; // this app gave up
        s.send({ user: recipientOf(k) }, `m${k}`, `sender ${i} message ${k}`);
        await sleep(1000 / RATE);
      }
    });
    await sleep(killAfterMs);
    server.kill(); // SIGKILL to the whole group; the state directory stays
    crashed = true;
    const confirmed = senders.map((s) => new Set(s.sent.keys()));
    t.diagnostic(`killed; confirmed before the crash: ${confirmed.map((c) => c.size).join(", ")}`);
    await server.restart();
    await Promise.all(sending);

    // The resending senders end with everything confirmed.
    await Promise.all(senders.slice(0, RESENDING).map((s) => s.until(() => s.synced && s.pending.size === 0 && s.sent.size === PER_SENDER, 90_000, "all sent")));
    const expected = new Map(); // recipient -> Set of "from|id" that must arrive
    for (const r of [online.user, offline.user]) expected.set(r, new Set());
    senders.forEach((s, i) => {
      const ids = i < RESENDING ? [...s.sent.keys()] : [...confirmed[i]];
      for (const id of ids) expected.get(recipientOf(Number(id.slice(1)))).add(`${s.user}|${id}`);
    });
    const offline2 = new Client({ base, user: offline.user, device: "phone", reconnect: true });
    await offline2.connect(60_000);
    const hasAll = (c) => [...expected.get(c.user)].every((k) => c.seenIds.has(k));
    await online.until(() => hasAll(online), 90_000, "every confirmed message (online)");
    await offline2.until(() => hasAll(offline2), 90_000, "every confirmed message (offline)");
    await sleep(1500); // duplicates, if any, would arrive now

    for (const c of [online, offline2]) {
      const dups = [...c.seenIds].filter(([, n]) => n > 1).map(([k]) => k);
      assert.deepEqual(dups, [], `${c.user} received these more than once`);
      assert.equal(c.duplicates, 0);
      // Per-sender order: by seq, each sender's message numbers only go up.
      const bySeq = [...c.messages].sort((a, b) => a.frame.seq - b.frame.seq);
      const last = new Map();
      for (const { frame } of bySeq) {
        const k = Number(frame.id.slice(1));
        assert.ok((last.get(frame.from) ?? -1) < k, `${c.user}: ${frame.from} ${frame.id} arrived after a later message`);
        last.set(frame.from, k);
      }
    }
    // Everything confirmed arrived (checked by the waits above); the resending
    // senders' messages all arrived; the others' unconfirmed ones at most once.
    senders.forEach((s, i) => {
      for (let k = 0; k < PER_SENDER; k++) {
        const key = `${s.user}|m${k}`;
        const at = recipientOf(k) === online.user ? online : offline2;
        const n = at.seenIds.get(key) ?? 0;
        if (i < RESENDING || confirmed[i].has(`m${k}`)) assert.equal(n, 1, `${key} must arrive exactly once`);
        else assert.ok(n <= 1, `${key} (never confirmed, not resent) arrived ${n} times`);
      }
    });
    t.diagnostic(`delivered: online ${online.messages.length}, offline ${offline2.messages.length}; replays dropped by seq: ${online.replayedSeqs + offline2.replayedSeqs}`);
    offline2.close();
  } finally {
    for (const c of [online, offline, ...senders]) c.close();
    server.close();
  }
});
