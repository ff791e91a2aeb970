// Scenario 3: group fan-out. A 200-member group, every member connected: one
// post at a time, post -> arrival at the LAST member (and at every member);
// then 10 groups of 200 posting at the same moment. Written against the
// protocol (POST /v1/groups {name, members} -> {id}; posts are `send` with
// to: {group}); when the server has no groups yet (404 or another error) the
// scenario is skipped with the reason, and only the floor is measured. The
// floor: a bare object that broadcasts a frame to as many sockets.
import { Client, connectAll, floorSocket, sleep, tokenFor } from "../lib/client.mjs";
import { pool, ratio, summarize } from "../lib/stats.mjs";
import { summarizeErrors } from "./latency.mjs";

const POST_TIMEOUT_MS = 15_000;
/** After the timed posts, how long late arrivals may still come in before they count as lost. */
const LATE_DRAIN_MS = 180_000;
const MIN_GAP_MS = 40;
/**
 * How long a group's set-up may still run on by itself after its members are
 * connected: their objects broadcast presence a second later and fire the
 * outbox's backstop alarms (5 s) for what the joins queued, 200 at once. Posts
 * measured inside that window took up to a second longer (the first measured
 * post, one run in two), a cost of the set-up and not of a post.
 */
const SETUP_SETTLE_MS = 6_000;
/**
 * The runtime evicts objects about 10 s after their sockets closed. 2,000 of
 * them at once (the relay floor's 10 rooms, which have no database for
 * ctx.settle to count) stalled the durable floor's posts 10 s later by 1.2 s.
 */
const EVICTION_MS = 12_000;

/** Creates a group as `admin`; returns { id } or { error } with what the server said. */
export async function createGroup(ctx, admin, members, name) {
  const token = await tokenFor(ctx.base, admin);
  let res;
  try {
    res = await fetch(`${ctx.base}/v1/groups`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ name, members }),
    });
  } catch (err) {
    return { error: `POST /v1/groups failed: ${err}` };
  }
  const text = await res.text();
  if (res.status !== 201 && res.status !== 200) return { error: `POST /v1/groups answered ${res.status} ${text.slice(0, 160)}` };
  try {
    const body = JSON.parse(text);
    if (typeof body.id !== "string") return { error: `POST /v1/groups answered without an id: ${text.slice(0, 160)}` };
    return { id: body.id };
  } catch {
    return { error: `POST /v1/groups answered non-JSON: ${text.slice(0, 160)}` };
  }
}

/** A group of `size` members (creator first), all connected; members record arrivals per post id. */
export async function realGroup(ctx, tag, size) {
  const users = Array.from({ length: size }, (_, i) => ctx.user(`s3-${tag}-m${i}`));
  const created = await createGroup(ctx, users[0], users.slice(1), `bench ${tag}`);
  if (created.error) return created;
  const arrivals = new Map(); // post id -> Map(member index -> at)
  const clients = users.map(
    (user, i) =>
      new Client({
        base: ctx.base,
        user,
        device: "phone",
        onFrame: (f, at) => {
          if (f.type === "message" && f.chat?.group === created.id) {
            let m = arrivals.get(f.id);
            if (!m) arrivals.set(f.id, (m = new Map()));
            if (!m.has(i)) m.set(i, at);
          }
        },
      }),
  );
  await connectAll(clients, 32);
  return { id: created.id, clients, arrivals, sentAt: new Map(), size };
}

/** Posts `id` from the creator and waits until every other member has it (or the timeout); returns latencies. */
export async function post(g, id) {
  const t0 = performance.now();
  g.sentAt.set(id, t0);
  g.clients[0].send({ group: g.id }, id, `post ${id}`);
  const deadline = t0 + POST_TIMEOUT_MS;
  while ((g.arrivals.get(id)?.size ?? 0) < g.size - 1 && performance.now() < deadline) await sleep(2);
  return settled(g, id);
}

/** What arrived of post `id` so far: the last member's latency once all have it. */
function settled(g, id) {
  const t0 = g.sentAt.get(id);
  const got = [...(g.arrivals.get(id)?.values() ?? [])].map((at) => at - t0);
  return { last: got.length === g.size - 1 ? Math.max(...got) : null, each: got, missing: g.size - 1 - got.length };
}

/**
 * Posts slower than the per-post timeout are late, not lost: wait (bounded)
 * until every member of every group has every post, then count what is still
 * missing as lost.
 */
async function drainLate(groups, ids, maxMs) {
  const deadline = performance.now() + maxMs;
  const missing = () => groups.reduce((n, g) => n + ids.reduce((m, id) => m + (g.size - 1 - (g.arrivals.get(id)?.size ?? 0)), 0), 0);
  while (missing() > 0 && performance.now() < deadline) await sleep(50);
  return missing();
}

/** `size` sockets in one floor room; with `durable`, on the durable floor, every socket a member of the room's group. */
export async function floorRoom(ctx, room, size, { durable = false } = {}) {
  const arrivals = new Map();
  const sockets = new Array(size);
  await pool(size, 32, async (i) => {
    sockets[i] = await floorSocket(ctx.base, room, `p${i}`, {
      durable,
      join: durable,
      onMessage: (data, at) => {
        const id = JSON.parse(data).id;
        // On the durable floor a member answers its group, as a device's ack turns into a receipt.
        if (durable) sockets[i].send(JSON.stringify({ to: "^", ack: id }));
        let m = arrivals.get(id);
        if (!m) arrivals.set(id, (m = new Map()));
        m.set(i, at);
      },
    });
  });
  return { sockets, arrivals, size };
}

export async function floorPost(r, id) {
  const t0 = performance.now();
  r.sockets[0].send(JSON.stringify({ to: "*", id, text: `post ${id}` }));
  const deadline = t0 + POST_TIMEOUT_MS;
  while ((r.arrivals.get(id)?.size ?? 0) < r.size - 1 && performance.now() < deadline) await sleep(1);
  const got = [...(r.arrivals.get(id)?.values() ?? [])].map((at) => at - t0);
  return { last: got.length === r.size - 1 ? Math.max(...got) : null, each: got };
}

/**
 * Waits out what our set-up left running (SETUP_SETTLE_MS); --quick only waits
 * for an idle runtime. The floors leave nothing running (no presence, no
 * alarms): they only wait for the runtime to be idle.
 */
async function settleSetup(ctx) {
  if (!ctx.quick) await sleep(SETUP_SETTLE_MS);
  await ctx.quiesce();
}

/** A floor room's posts, one at a time after the warm-up: the last-member latencies; closes the room. */
async function floorPosts(ctx, name, size, warmup, posts, { durable = false } = {}) {
  const room = await floorRoom(ctx, ctx.user(name), size, { durable });
  await ctx.quiesce();
  const last = [];
  for (let i = 0; i < warmup + posts; i++) {
    const r = await floorPost(room, i);
    if (i >= warmup && r.last !== null) last.push(r.last);
    await sleep(MIN_GAP_MS);
  }
  for (const ws of room.sockets) ws.close();
  return last;
}

/** `count` floor rooms of `size` posting at the same moment, `rounds` times after one unmeasured: the last-member latencies; closes the rooms. */
async function floorRoundsAtOnce(ctx, name, count, size, rounds, { durable = false } = {}) {
  const rooms = [];
  for (let gi = 0; gi < count; gi++) rooms.push(await floorRoom(ctx, ctx.user(`${name}-g${gi}`), size, { durable }));
  await ctx.quiesce();
  const last = [];
  for (let round = 0; round < rounds + 1; round++) {
    const rs = await Promise.all(rooms.map((r) => floorPost(r, `c${round}`)));
    if (round > 0) for (const r of rs) if (r.last !== null) last.push(r.last);
    await sleep(MIN_GAP_MS);
  }
  for (const r of rooms) for (const ws of r.sockets) ws.close();
  return last;
}

export async function scenarioGroups(ctx) {
  const size = Math.min(200, ctx.count(200, 50));
  const posts = ctx.count(20, 6);
  const groupsAtOnce = ctx.count(10, 2);
  const concurrentSize = Math.min(200, ctx.count(200, 30));
  // Rounds of the groups posting at once, after one unmeasured: each round is
  // a sample per group.
  const rounds = 2;
  const warmup = ctx.quick ? 2 : 3;

  // The floor first: it is measured whether or not the server has groups.
  const fLast = await floorPosts(ctx, "s3-floor", size, warmup, posts);
  const fConc = await floorRoundsAtOnce(ctx, "s3-floor", groupsAtOnce, concurrentSize, rounds);
  if (!ctx.quick) await sleep(EVICTION_MS);
  const floorOne = summarize(fLast);
  const floorMany = summarize(fConc);
  await ctx.quiesce();
  const durableOne = summarize(await floorPosts(ctx, "s3-durable-floor", size, warmup, posts, { durable: true }));

  // Its 200 objects checkpoint as they are evicted: not during our posts.
  await ctx.settle();
  const g = await realGroup(ctx, "one", size);
  if (g.error) {
    return {
      id: "s3",
      title: "3. Group fan-out",
      skipped: g.error,
      rows: [
        { measure: `floor only: broadcast → last of ${size} sockets`, real: null, floor: floorOne, floorLabel: `broadcast to ${size}` },
        { measure: `floor only: ${groupsAtOnce} rooms of ${concurrentSize} at once`, real: null, floor: floorMany, floorLabel: `${groupsAtOnce} broadcasts` },
      ],
      targets: [{ name: `${size}-member fan-out p50 ≤ 2× broadcast floor`, limit: 2, measured: null }],
      notes: [`skipped: ${g.error} (groups have not landed on this build); the floor was measured`],
    };
  }
  await settleSetup(ctx);
  const postIds = [];
  let lateAtTimeout = 0;
  for (let i = 0; i < warmup + posts; i++) {
    postIds.push(`p${i}`);
    lateAtTimeout += (await post(g, `p${i}`)).missing;
    await sleep(MIN_GAP_MS);
  }
  const missing = await drainLate([g], postIds, LATE_DRAIN_MS);
  const last = [];
  const each = [];
  for (const id of postIds.slice(warmup)) {
    const r = settled(g, id);
    if (r.last !== null) last.push(r.last);
    each.push(...r.each);
  }
  await sleep(500);
  const duplicated = g.clients.reduce((a, c) => a + c.duplicates, 0);
  const errors = g.clients.flatMap((c) => c.errors);
  for (const c of g.clients) c.close();

  // Several groups posting at the same moment.
  const many = [];
  for (let gi = 0; gi < groupsAtOnce; gi++) {
    const gg = await realGroup(ctx, `g${gi}`, concurrentSize);
    if (gg.error) throw new Error(`creating group ${gi}: ${gg.error}`);
    many.push(gg);
  }
  await settleSetup(ctx);
  const ids = [];
  for (let round = 0; round < rounds + 1; round++) {
    ids.push(`c${round}`);
    const rs = await Promise.all(many.map((gg) => post(gg, `c${round}`)));
    for (const r of rs) lateAtTimeout += r.missing;
    await sleep(MIN_GAP_MS);
  }
  const concMissing = await drainLate(many, ids, LATE_DRAIN_MS);
  const conc = [];
  for (const id of ids.slice(1)) for (const gg of many) {
    const r = settled(gg, id);
    if (r.last !== null) conc.push(r.last);
  }
  await sleep(500);
  const concDup = many.reduce((a, gg) => a + gg.clients.reduce((b, c) => b + c.duplicates, 0), 0);
  errors.push(...many.flatMap((gg) => gg.clients.flatMap((c) => c.errors)));
  for (const gg of many) for (const c of gg.clients) c.close();

  // The durable floor's groups at once come last: a quiet runtime for them, and
  // the eviction of their 2,000 objects, which follows their sockets' close by
  // about 10 s, cannot fall into our posts (the next scenario waits it out).
  await ctx.quiesce();
  const durableMany = summarize(await floorRoundsAtOnce(ctx, "s3-durable-floor", groupsAtOnce, concurrentSize, rounds, { durable: true }));

  const s = summarize(last);
  const m = summarize(conc);
  return {
    id: "s3",
    title: "3. Group fan-out",
    rows: [
      { measure: `post → last of ${size - 1} members`, real: s, floor: floorOne, floorLabel: `broadcast to ${size}`, lost: missing, duplicated },
      { measure: `post → each member (${size}-member group)`, real: summarize(each), floor: null, lost: null, duplicated: null },
      { measure: `durable floor: post → last of ${size - 1}, one commit in the group and in each member`, real: durableOne, floor: floorOne, floorLabel: `broadcast to ${size}`, lost: null, duplicated: null },
      {
        measure: `${groupsAtOnce} groups of ${concurrentSize} post at once → last member`,
        real: m,
        floor: floorMany,
        floorLabel: `${groupsAtOnce} broadcasts at once`,
        lost: concMissing,
        duplicated: concDup,
      },
      {
        measure: `durable floor: ${groupsAtOnce} groups of ${concurrentSize} post at once → last member`,
        real: durableMany,
        floor: floorMany,
        floorLabel: `${groupsAtOnce} broadcasts at once`,
        lost: null,
        duplicated: null,
      },
    ],
    durable: [
      { measure: `post → last of ${size - 1} members`, real: s, durable: durableOne, relay: floorOne },
      { measure: `${groupsAtOnce} groups of ${concurrentSize} post at once → last member`, real: m, durable: durableMany, relay: floorMany },
    ],
    targets: [
      { name: `${size}-member fan-out p50 ≤ 2× broadcast floor`, limit: 2, measured: ratio(s.p50, floorOne.p50), floorMeasured: ratio(durableOne.p50, floorOne.p50) },
      { name: "group fan-out: lost 0, duplicated 0", limit: 0, measured: missing + duplicated + concMissing + concDup },
    ],
    notes: [
      ...(lateAtTimeout > 0
        ? [`${lateAtTimeout} deliveries were not in within ${POST_TIMEOUT_MS / 1000} s of their post (the next post went on); they count as lost only if still missing ${LATE_DRAIN_MS / 1000} s after the last post, and their latency is taken when they arrived`]
        : []),
      ...(errors.length ? [`error frames: ${summarizeErrors(errors)}`] : []),
    ],
  };
}
