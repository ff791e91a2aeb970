// Crash during group fan-out: members of a 40-member group post while the
// server is killed with SIGKILL (its whole process group, workerd included),
// then restarted on the same state directory and port. Twice:
//  1. while two members pipeline posts: the crash can land on a post still in
//     its sender's outbox, in the group's log with its fan-out half done, or in
//     a member's inbox not yet pushed; the senders resend what got no `sent`;
//  2. right after a burst of posts was all confirmed, while the group is still
//     fanning it out: after the restart nobody posts again, so the fan-out can
//     only resume from what the group stored (its alarm, or the members'
//     receipts that wake it).
// What must hold: every post reaches every other member exactly once, the
// offline member included, in each sender's order.
// Real processes, real sockets: `npm run test:faults`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, connectAll, sleep } from "../bench/lib/client.mjs";
import { createGroup } from "../bench/scenarios/groups.mjs";
import { crashableServer, seeded } from "./lib/run.mjs";

const MEMBERS = 40; // members 0 and 1 post; member MEMBERS-1 is offline
const PER_SENDER = 60; // phase 1, paced
const BURST = 40; // phase 2, each sender at once (the send burst allows 60)
const RATE = 20; // posts per second per sender in phase 1

test("kill -9 during a group fan-out: every post reaches every member exactly once, in order", { timeout: 240_000 }, async (t) => {
  const { random, say } = seeded(t);
  const killAfterMs = 500 + Math.floor(random() * 2500);
  say(`kill after ${killAfterMs} ms`);

  const server = await crashableServer("crash-group");
  const run = Date.now().toString(36);
  const users = Array.from({ length: MEMBERS }, (_, i) => `g${i}-${run}`);
  const clients = users.map((user, i) => new Client({ base: server.url, user, device: "phone", reconnect: i < MEMBERS - 1 }));
  const senders = clients.slice(0, 2);
  const offline = clients[MEMBERS - 1];
  let offline2 = null;
  try {
    const created = await createGroup({ base: server.url }, users[0], users.slice(1), `crash ${run}`);
    assert.equal(created.error, undefined, created.error);
    const group = created.id;
    await connectAll(clients, 16);
    // The offline member's device exists before anything is posted: it is owed all of it.
    offline.close();

    const crash = async (label) => {
      server.kill(); // SIGKILL to the whole group; the state directory stays
      t.diagnostic(`${label}: killed; confirmed before the crash: ${senders.map((s) => s.sent.size).join(", ")}`);
      await server.restart();
    };
    const receivers = () => [...clients.slice(0, MEMBERS - 1), offline2];
    const owed = (c, n) => senders.filter((s) => s.user !== c.user).flatMap((s) => Array.from({ length: n }, (_, k) => `${s.user}|p${k}`));
    const allSent = (n) => Promise.all(senders.map((s) => s.until(() => s.synced && s.pending.size === 0 && s.sent.size === n, 90_000, `${n} posts sent`)));

    // 1. A crash at a random moment while both senders pipeline their posts.
    const sending = senders.map(async (s) => {
      for (let k = 0; k < PER_SENDER; k++) {
        s.send({ group }, `p${k}`, `${s.user} post ${k}`);
        await sleep(1000 / RATE);
      }
    });
    await sleep(killAfterMs);
    await crash("phase 1");
    await Promise.all(sending);
    await allSent(PER_SENDER);
    await Promise.all(clients.slice(0, MEMBERS - 1).map((c) => c.until(() => owed(c, PER_SENDER).every((key) => c.seenIds.has(key)), 120_000, `phase 1 posts (${c.user})`)));

    // 2. A burst, all confirmed, then a crash while the group still fans it out.
    for (const s of senders) for (let k = PER_SENDER; k < PER_SENDER + BURST; k++) s.send({ group }, `p${k}`, `${s.user} post ${k}`);
    await allSent(PER_SENDER + BURST);
    const before = clients.slice(2, MEMBERS - 1).reduce((a, c) => a + c.messages.length, 0);
    await crash("phase 2");
    // Had the fan-out ended before the kill, this phase would test nothing: say how far it got.
    t.diagnostic(`phase 2: at the kill the online members held ${before} of ${(MEMBERS - 3) * 2 * (PER_SENDER + BURST)} copies`);

    offline2 = new Client({ base: server.url, user: offline.user, device: "phone", reconnect: true });
    await offline2.connect(60_000);
    const n = PER_SENDER + BURST;
    await Promise.all(receivers().map((c) => c.until(() => owed(c, n).every((key) => c.seenIds.has(key)), 120_000, `every post (${c.user})`)));
    await sleep(1500); // duplicates, if any, would arrive now

    for (const c of receivers()) {
      for (const key of owed(c, n)) assert.equal(c.seenIds.get(key), 1, `${c.user}: ${key} must arrive exactly once`);
      assert.equal(c.duplicates, 0, `${c.user} received duplicates`);
      // Per-sender order: by seq, each sender's post numbers only go up.
      const last = new Map();
      for (const { frame } of [...c.messages].sort((a, b) => a.frame.seq - b.frame.seq)) {
        if (frame.chat?.group !== group) continue;
        const k = Number(frame.id.slice(1));
        assert.ok((last.get(frame.from) ?? -1) < k, `${c.user}: ${frame.from} ${frame.id} arrived after a later post`);
        last.set(frame.from, k);
      }
    }
    const total = receivers().reduce((a, c) => a + c.messages.length, 0);
    t.diagnostic(`delivered ${total} copies to ${MEMBERS} members; replays dropped by seq: ${receivers().reduce((a, c) => a + c.replayedSeqs, 0)}`);
  } finally {
    for (const c of [...clients, offline2]) c?.close();
    server.close();
  }
});
