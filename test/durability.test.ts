/// <reference types="vite/client" />
// Nothing is lost or duplicated across evictions, resets, failures and expiry.
import { abortAllDurableObjects, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AlarmClock } from "../src/alarm";
import { msgIdFloor, newMsgId } from "../src/ids";
import { RETENTION_MS } from "../src/limits";
import { MEDIA_DUE_QUERIES } from "../src/user/media";
import { EXPIRY_QUERIES } from "../src/user/retention";
import { Outbox, type HandoffResult } from "../src/outbox";
import { GroupLog } from "../src/group/log";
import { GROUP_OPS, type GroupMessageItem } from "../src/group/handoff";
import { Stubs } from "../src/objects/stubs";
import { migrate, schemaOf } from "../src/sqlite";
import { USER_MIGRATIONS } from "../src/user/schema";
import { GROUP_MIGRATIONS } from "../src/group/schema";
import type { UserObject } from "../src/objects/UserObject";
import { connect, open, sleep, token, uid, type TestSocket } from "./helpers";

const stub = (user: string) => env.USERS.getByName(user);

async function drainMessages(s: TestSocket, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await s.next("message")).text ?? "");
  return out;
}

describe("durability", () => {
  it("an alarm whose setAlarm failed is not remembered as set: the next request sets one again", async () => {
    const calls: number[] = [];
    let fail = true;
    const storage = {
      setAlarm: async (t: number) => {
        calls.push(t);
        if (fail) throw new Error("storage unavailable");
      },
    } as unknown as DurableObjectStorage;
    const clock = new AlarmClock(storage);
    clock.request([5_000]);
    expect(clock.setFor).toBe(5_000);
    await sleep(0);
    expect(clock.setFor).toBeNull();
    // A later time would have been skipped had the failed one been kept.
    fail = false;
    clock.request([9_000]);
    await sleep(0);
    expect(calls).toEqual([5_000, 9_000]);
    expect(clock.setFor).toBe(9_000);
  });

  it("evicting both user objects mid-conversation loses and duplicates nothing", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const b = await connect(bob);
    for (let i = 0; i < 10; i++) {
      a.send({ type: "send", id: `m${i}`, to: { user: bob }, text: `t${i}` });
      await a.next("sent", (f) => f.id === `m${i}`);
      if (i % 3 === 0) await evictDurableObject(stub(bob));
      if (i % 3 === 1) await evictDurableObject(stub(alice));
    }
    // Hibernated sockets survive eviction: Bob keeps receiving on the same socket.
    expect(await drainMessages(b, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `t${i}`));
    await sleep(300);
    expect(b.all("message")).toHaveLength(0);
  });

  it("a hard reset of every object mid-conversation loses and duplicates nothing", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const tokA = await token(alice);
    let a = await connect(alice, "phone", tokA);
    const unacked = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const id = `m${i}`;
      unacked.set(id, `t${i}`);
      a.send({ type: "send", id, to: { user: bob }, text: `t${i}` });
      if (i % 4 === 3) {
        // Reset at the worst moment: right after sending, before `sent` is read.
        await abortAllDurableObjects();
        a = await connect(alice, "phone", tokA);
        // The client resends everything that never got `sent`, with the same id.
        for (const [rid, text] of unacked) a.send({ type: "send", id: rid, to: { user: bob }, text });
      }
      for (const f of a.all("sent")) unacked.delete(f.id);
    }
    while (unacked.size > 0) {
      const f = await a.next("sent");
      unacked.delete(f.id);
    }
    const b = await open(bob, "phone");
    await b.next("hello");
    const got = await drainMessages(b, 12);
    expect(got).toEqual(Array.from({ length: 12 }, (_, i) => `t${i}`));
    await b.next("synced");
    await sleep(300);
    expect(b.all("message")).toHaveLength(0);
  });

  it("a hand-off that fails is retried with backoff and delivered once", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const b = await connect(bob);
    await stub(bob).failNextHandoffs(2);
    const a = await connect(alice);
    a.send({ type: "send", id: "r1", to: { user: bob }, text: "eventually" });
    await a.next("sent");
    const pending = await runInDurableObject(stub(alice), (_o, state) =>
      state.storage.sql.exec<{ attempts: number }>("SELECT attempts FROM outbox").toArray(),
    );
    expect(pending.length).toBe(1);
    // Two failures: retried after ~1 s and ~2 s by the alarm.
    const m = await b.next("message", () => true, 10_000);
    expect(m.text).toBe("eventually");
    await sleep(300);
    expect(b.all("message")).toHaveLength(0);
    const left = await runInDurableObject(stub(alice), (_o, state) => state.storage.sql.exec("SELECT 1 FROM outbox").toArray().length);
    expect(left).toBe(0);
  });

  it("evicting the sender right after a hand-off, while the row's delete still waits in memory, duplicates nothing", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    a.send({ type: "send", id: "w1", to: { user: bob }, text: "once" });
    await a.next("sent");
    const rows = (user: string, query: string) => runInDurableObject(stub(user), (_o, state) => state.storage.sql.exec(query).toArray().length);
    for (let i = 0; (await rows(bob, "SELECT 1 FROM inbox")) === 0; i++) {
      if (i > 100) throw new Error("the hand-off did not reach bob");
      await sleep(20);
    }
    // The delete waits for Alice's next write (src/outbox.ts); the eviction loses it,
    // so the backstop alarm hands the row over again and Bob's object absorbs it.
    await evictDurableObject(stub(alice));
    await runDurableObjectAlarm(stub(alice));
    expect(await rows(alice, "SELECT 1 FROM outbox")).toBe(0);
    expect(await rows(bob, "SELECT 1 FROM inbox")).toBe(1);
    const b = await open(bob, "phone");
    await b.next("hello");
    expect((await b.next("message")).text).toBe("once");
    await b.next("synced");
    expect(b.all("message")).toHaveLength(0);
  });

  it("an ack whose transaction rolled back is not remembered: the same ack again moves the device and sends delivered", async () => {
    // A transaction that fails after moving a device's ack position must leave it
    // unmoved, in storage and in anything the object remembers of it.
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const b = await connect(bob);
    a.send({ type: "send", id: "r1", to: { user: bob }, text: "ack me" });
    const m = await b.next("message");
    type Internals = { transaction(fn: () => void): void; inbox: { ack(device: string, seq: number, now: number): number | null } };
    const failed = await runInDurableObject(stub(bob), (obj, state) => {
      const o = obj as unknown as Internals;
      try {
        o.transaction(() => {
          o.inbox.ack("phone", m.seq, Date.now());
          throw new Error("fails after the ack moved");
        });
      } catch (err) {
        return { error: String(err), acked: state.storage.sql.exec<{ acked: number }>("SELECT acked FROM devices WHERE device = 'phone'").one().acked };
      }
      return null;
    });
    expect(failed?.error).toContain("fails after the ack moved");
    expect(failed?.acked).toBeLessThan(m.seq);
    b.send({ type: "ack", seq: m.seq });
    const r = await a.next("receipt");
    expect(r).toMatchObject({ status: "delivered", msgs: [m.msg] });
    const acked = await runInDurableObject(stub(bob), (_o, state) => state.storage.sql.exec<{ acked: number }>("SELECT acked FROM devices WHERE device = 'phone'").one().acked);
    expect(acked).toBe(m.seq);
  });

  it("a temporary chat leaves nothing in the inbox once every device acked", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    const p = await connect(bob, "phone");
    const l = await connect(bob, "laptop");
    a.send({ type: "send", id: "gone", to: { user: bob }, text: "secret-text-123" });
    const mp = await p.next("message");
    const ml = await l.next("message");
    p.send({ type: "ack", seq: mp.seq });
    await a.next("receipt");
    const count = () =>
      runInDurableObject(stub(bob), (_o, state) => state.storage.sql.exec("SELECT 1 FROM inbox").toArray().length);
    expect(await count()).toBe(1); // the laptop has not acked yet
    l.send({ type: "ack", seq: ml.seq });
    await sleep(100);
    expect(await count()).toBe(0);
    const leftovers = await runInDurableObject(stub(bob), (_o, state) =>
      state.storage.sql.exec<{ frame: string }>("SELECT frame FROM inbox").toArray(),
    );
    expect(JSON.stringify(leftovers)).not.toContain("secret-text-123");
  });

  it("a sender with no other device spends no inbox entry on its own copy; with one, the copy is kept for it", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice, "phone");
    const b = await connect(bob);
    const head = () =>
      runInDurableObject(stub(alice), (_o, state) => Number(state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'head'").toArray()[0]?.value ?? 0));
    const before = await head();
    a.send({ type: "send", id: "solo", to: { user: bob }, text: "one device" });
    await a.next("sent");
    expect((await b.next("message")).text).toBe("one device");
    expect(await head()).toBe(before);
    const laptop = await connect(alice, "laptop");
    a.send({ type: "send", id: "duo", to: { user: bob }, text: "two devices" });
    await a.next("sent");
    const own = await laptop.next("message");
    expect(own).toMatchObject({ id: "duo", from: alice, chat: { user: bob }, text: "two devices" });
    expect(await head()).toBe(own.seq);
    expect(await b.next("message")).toMatchObject({ text: "two devices" });
  });

  it("entries nobody acknowledged for 30 days are purged and the device is told with gap", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const b0 = await connect(bob, "phone"); // the device exists and holds nothing yet
    b0.close();
    await sleep(50);
    const a = await connect(alice);
    for (let i = 0; i < 3; i++) {
      a.send({ type: "send", id: `old${i}`, to: { user: bob }, text: `old ${i}` });
      await a.next("sent");
    }
    await sleep(200);
    // Age the first two by more than the retention period and let housekeeping run.
    await runInDurableObject(stub(bob), (_o, state) => {
      state.storage.sql.exec("UPDATE inbox SET ts = ts - ? WHERE seq <= 2", RETENTION_MS + 1000);
      state.storage.sql.exec("UPDATE meta SET value = '0' WHERE key = 'housekeeping_at'");
    });
    expect(await runDurableObjectAlarm(stub(bob))).toBe(true);
    a.send({ type: "send", id: "new", to: { user: bob }, text: "new" });
    await a.next("sent");
    await sleep(200);
    const b = await open(bob, "phone");
    await b.next("hello");
    expect(await b.next("gap")).toMatchObject({ from: 1, to: 2, reason: "expired" });
    expect((await b.next("message")).text).toBe("old 2");
    expect((await b.next("message")).text).toBe("new");
    await b.next("synced");
  });

  it("a socket whose token expires is closed with 4001", async () => {
    const alice = uid("alice");
    const s = await connect(alice, "phone", await token(alice, 1));
    const closed = await s.waitClosed(6000);
    expect(closed.code).toBe(4001);
  });
});

/** The server's source (not the client library's), for the checks of its SQL below. */
const sources = import.meta.glob<string>(["../src/**/*.ts", "!../src/client/**"], { query: "?raw", import: "default", eager: true });

describe("statements", () => {
  // SQLite (3.46+, as workerd ships it) plans `LIMIT ?` with the bound value and
  // marks the statement to be re-prepared whenever that parameter is bound
  // again: every run parsed and planned the statement anew. Found by perf on
  // the outbox drain (3% of the runtime's CPU per one-to-one message). Limits
  // are literals in the SQL; only rare per-request reads may bind theirs.
  const REPREPARED_ON_PURPOSE = [
    "SELECT msg, frame FROM history WHERE chat = ? AND msg < ? ORDER BY msg DESC LIMIT ?",
    "SELECT msg, frame FROM history WHERE chat = ? ORDER BY msg DESC LIMIT ?",
    "SELECT msg, frame FROM history WHERE msg >= ? AND msg < ? AND ts >= ? ORDER BY msg DESC LIMIT ?",
    "SELECT msg, frame FROM history WHERE msg >= ? AND ts >= ? ORDER BY msg DESC LIMIT ?",
  ];

  it("no statement on a hot path binds its LIMIT or OFFSET (SQLite would re-prepare it on every run)", () => {
    expect(Object.keys(sources).length).toBeGreaterThan(20);
    const offenders: string[] = [];
    for (const [file, text] of Object.entries(sources)) {
      // SQL here is written in capitals (a lower-case "limit ?" would be JavaScript's `limit ??`).
      for (const m of text.matchAll(/["`]([^"`]*\b(?:LIMIT|OFFSET)\s+\?[^"`]*)["`]/g)) {
        if (!REPREPARED_ON_PURPOSE.includes(m[1]!)) offenders.push(`${file}: ${m[1]}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe("query plans", () => {
  // Statements that run per message must not read a whole table that grows with
  // messages or media. Found in review: the alarm's media deadlines (asked on
  // every message) and the media references of a message (looked up by msg when
  // its last holder lets go) each read their whole table.
  const GROWING = ["inbox", "received", "outgoing", "sent_ids", "history", "media", "media_refs", "media_grants", "outbox", "messages", "msg_status", "log"];
  /** Whole-table reads that are fine, and why. */
  const ALLOWED: Array<[RegExp, string]> = [
    [/^DELETE FROM (outgoing|received|sent_ids|messages) WHERE ts < \?/, "daily housekeeping"],
    [/WHERE msg IN \(SELECT msg FROM messages WHERE ts < \?\)/, "daily housekeeping"],
    [/FROM log WHERE kind = /, "the group log holds only entries still being handed over"],
    [/^UPDATE log SET body = json_remove/, "the group log holds only entries still being handed over"],
    [/JOIN \(SELECT MIN\(id\) AS id FROM outbox GROUP BY target\)/, "the outbox holds only hand-offs not yet made"],
    [/^SELECT seq FROM inbox WHERE ts >= \? ORDER BY seq LIMIT 1$/, "daily housekeeping: passes only the expired entries it then deletes"],
    [/\bLIMIT (\d+|\(SELECT \?\))/, "reads a bounded batch or one row (is it empty?)"],
  ];

  it("a group's history page is a range of message ids from the member's join on, the same rows as `ts >= joined`", () => {
    // The read is bounded by msgIdFloor(joined) (it walked the whole history when a member
    // who joined late had a short page); that is only right if ids sort by the time they carry
    // (9 base-36 digits of milliseconds: until the year 5188).
    for (const ms of [0, 1, 35, 36, 1_700_000_000_000, 1_795_000_000_123, 36 ** 9 - 2]) {
      const floor = msgIdFloor(ms);
      expect(newMsgId(ms) >= floor).toBe(true);
      expect(newMsgId(ms + 1) >= floor).toBe(true);
      if (ms > 0) expect(newMsgId(ms - 1) < floor).toBe(true);
    }
  });

  it("each deadline query the user object asks per message reads an index", async () => {
    const plans = await runInDurableObject(stub(uid("plans")), (_o, state) =>
      [...MEDIA_DUE_QUERIES, ...EXPIRY_QUERIES].map((q) => ({
        q,
        steps: state.storage.sql.exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${q}`).toArray().map((r) => r.detail),
      })),
    );
    expect(plans).toHaveLength(4);
    // A MIN over a partial index is planned as a bare "SEARCH media" (a full read) unless the query repeats the index's WHERE.
    expect(plans.filter((p) => p.steps.some((d) => !/USING (COVERING )?INDEX/.test(d)))).toEqual([]);
  });

  it("no statement reads a whole table that grows with messages, but daily housekeeping", async () => {
    const statements = Object.entries(sources).flatMap(([file, text]) =>
      [...text.matchAll(/["`]((?:SELECT|UPDATE|DELETE|INSERT)\b[^"`]*)["`]/g)]
        .map((m) => ({ file: file.replace("../src/", ""), q: m[1]!.replace(/\s+/g, " ").trim() }))
        .filter((s) => !s.q.includes("${")),
    );
    const explain = (which: DurableObjectStub, files: RegExp) =>
      runInDurableObject(which, (_o, state) =>
        statements
          .filter((s) => files.test(s.file))
          .flatMap((s) => {
            const params = new Set(s.q.match(/\?\d*/g) ?? []);
            const n = [...params].some((p) => p.length > 1) ? Math.max(...[...params].map((p) => Number(p.slice(1)) || 0)) : (s.q.match(/\?/g) ?? []).length;
            let steps: string[];
            try {
              steps = state.storage.sql.exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${s.q}`, ...Array<null>(n).fill(null)).toArray().map((r) => r.detail);
            } catch {
              return []; // another object's table
            }
            return [{ ...s, steps }];
          }),
      );
    const planned = [...(await explain(stub(uid("plans")), /^(user|outbox|sqlite)/)), ...(await explain(env.GROUPS.getByName(uid("plans")), /^(group|outbox|sqlite)/))];
    expect(planned.length).toBeGreaterThan(100);
    expect(planned.some((p) => p.q.startsWith("DELETE FROM media_refs WHERE msg = ?"))).toBe(true);
    const offenders = planned
      .filter((p) => p.steps.some((d) => GROWING.some((t) => d === `SCAN ${t}` || d.startsWith(`SCAN ${t} USING`))))
      .filter((p) => !ALLOWED.some(([re]) => re.test(p.q)))
      .map((p) => `${p.file}: ${p.q.slice(0, 120)} :: ${p.steps.join(" | ")}`);
    expect(offenders).toEqual([]);
  });
});

/** Empties the database (all but SQLite's and workerd's own tables). */
function emptied(sql: SqlStorage): SqlStorage {
  const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) <> 'sqlite_' AND substr(name, 1, 4) <> '_cf_'").toArray();
  for (const t of tables) sql.exec(`DROP TABLE "${t.name}"`);
  return sql;
}

/** Empties the database and runs the first `version` migrations, one by one (a new list: never the fresh schema). */
function schemaAt(sql: SqlStorage, version: number, migrations: readonly string[] = USER_MIGRATIONS): void {
  migrate(emptied(sql), migrations.slice(0, version));
}

/** Everything SQLite keeps of the schema, but the sequence table AUTOINCREMENT once left behind. */
const masterRows = (sql: SqlStorage) =>
  sql.exec("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name <> 'sqlite_sequence' ORDER BY type, name").toArray();

describe("migrations", () => {
  for (const [kind, migrations] of [["user", USER_MIGRATIONS], ["group", GROUP_MIGRATIONS]] as const) {
    it(`a fresh ${kind} database gets, in one step, exactly the schema that running every migration leads to`, async () => {
      const ns = kind === "user" ? env.USERS : env.GROUPS;
      const out = await runInDurableObject(ns.getByName(uid("fresh")), (_o, state) => {
        const sql = state.storage.sql;
        schemaAt(sql, migrations.length, migrations);
        const stepByStep = { master: masterRows(sql), version: sql.exec("SELECT version FROM _schema").one().version };
        // This object's constructor migrated the list itself: the fresh schema is known,
        // and goes in as one statement, not one per migration.
        const execs: string[] = [];
        const counted = { exec: (q: string, ...args: unknown[]) => (execs.push(q), sql.exec(q, ...args)) } as unknown as SqlStorage;
        migrate(emptied(sql) && counted, migrations);
        const oneStep = { master: masterRows(sql), version: sql.exec("SELECT version FROM _schema").one().version };
        // Whatever follows a fresh schema still applies on top of it.
        migrate(sql, [...migrations, "CREATE TABLE later (x INTEGER)"]);
        return { stepByStep, oneStep, execs: execs.length, replay: schemaOf(sql), after: sql.exec("SELECT version FROM _schema").one().version };
      });
      expect(out.stepByStep.master.length).toBeGreaterThan(5);
      expect(out.oneStep).toEqual(out.stepByStep);
      expect(out.execs).toBe(5); // look for _schema, create it, read its version, the schema, the version
      expect(out.stepByStep.version).toBe(migrations.length);
      expect(out.replay).toContain("CREATE TABLE later");
      expect(out.after).toBe(migrations.length + 1);
    });
  }

  it("16 keeps every outbox, sent_ids and outgoing row; new outbox ids follow the highest row left", async () => {
    const rows = await runInDurableObject(stub(uid("migrate")), (_o, state) => {
      const sql = state.storage.sql;
      // The schema as it was before 16, with rows in it.
      schemaAt(sql, 15);
      sql.exec("INSERT INTO outbox (target, op, payload, next_at, created_at) VALUES ('user:b', 'deliver', '{}', 1, 1), ('user:c', 'deliver', '{}', 2, 2)");
      sql.exec("DELETE FROM outbox WHERE target = 'user:c'"); // the highest id is gone
      sql.exec("INSERT INTO sent_ids (id, msg, ts, digest) VALUES ('c1', 'm1', 5, 'd')");
      sql.exec("INSERT INTO outgoing (msg, chat, ts, delivered_at, expires_at, amended_n, deleted, encrypted) VALUES ('m1', 'user:b', 5, 6, 9, 2, 1, 1)");
      migrate(sql, USER_MIGRATIONS);
      sql.exec("INSERT INTO outbox (target, op, payload, next_at, created_at) VALUES ('user:d', 'deliver', '{}', 3, 3)");
      const schema = (name: string) => sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = ?", name).one().sql;
      return {
        outbox: sql.exec("SELECT id, target FROM outbox ORDER BY id").toArray(),
        sent: sql.exec("SELECT * FROM sent_ids").toArray(),
        outgoing: sql.exec("SELECT * FROM outgoing").toArray(),
        schemas: [schema("outbox"), schema("sent_ids"), schema("outgoing")],
        indexes: sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('outbox', 'sent_ids', 'outgoing') ORDER BY name").toArray().map((r) => r.name),
      };
    });
    expect(rows.outbox).toEqual([
      { id: 1, target: "user:b" },
      { id: 2, target: "user:d" },
    ]);
    expect(rows.sent).toEqual([{ id: "c1", msg: "m1", ts: 5, digest: "d" }]);
    expect(rows.outgoing).toEqual([{ msg: "m1", chat: "user:b", ts: 5, delivered_at: 6, read_at: null, expires_at: 9, amended_n: 2, deleted: 1, encrypted: 1 }]);
    expect(rows.schemas[0]).not.toContain("AUTOINCREMENT");
    expect(rows.schemas[1]).toContain("WITHOUT ROWID");
    expect(rows.schemas[2]).toContain("WITHOUT ROWID");
    expect(rows.indexes).toEqual(["outbox_target"]);
  });

  it("17 keeps every received row and both its indexes", async () => {
    const rows = await runInDurableObject(stub(uid("migrate")), (_o, state) => {
      const sql = state.storage.sql;
      schemaAt(sql, 16);
      sql.exec(
        `INSERT INTO received (msg, chat, sender, seq, ts, delivered, read, expires_at, amended_n, deleted)
         VALUES ('m1', 'user:a', 'a', 3, 10, 1, 0, NULL, 0, 0), ('m2', 'group:g', 'b', 4, 11, 1, 1, 99, 2, 1)`,
      );
      migrate(sql, USER_MIGRATIONS.slice(0, 17));
      return {
        received: sql.exec("SELECT * FROM received ORDER BY msg").toArray(),
        schema: sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'received'").one().sql,
        indexes: sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'received' AND sql IS NOT NULL ORDER BY name").toArray().map((r) => r.name),
        bySeq: sql.exec("EXPLAIN QUERY PLAN SELECT msg FROM received WHERE seq > 3").toArray().map((r) => String(r.detail)),
      };
    });
    expect(rows.received).toEqual([
      { msg: "m1", chat: "user:a", sender: "a", seq: 3, ts: 10, delivered: 1, read: 0, expires_at: null, amended_n: 0, deleted: 0 },
      { msg: "m2", chat: "group:g", sender: "b", seq: 4, ts: 11, delivered: 1, read: 1, expires_at: 99, amended_n: 2, deleted: 1 },
    ]);
    expect(rows.schema).toContain("WITHOUT ROWID");
    expect(rows.indexes).toEqual(["received_chat", "received_seq"]);
    expect(rows.bySeq.join(" ")).toContain("received_seq");
  });

  it("18 drops received_seq: an ack finds the messages it delivers by the inbox entries it covers", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await connect(alice);
    for (const [id, text] of [["q1", "one"], ["q2", "two"], ["q3", "three"]]) {
      a.send({ type: "send", id, to: { user: bob }, text });
      await a.next("sent", (f) => f.id === id);
    }
    const b = await open(bob, "phone");
    const [m1, m2, m3] = [await b.next("message"), await b.next("message"), await b.next("message")];
    await b.next("synced");
    b.send({ type: "ack", seq: m2.seq });
    expect(await a.next("receipt")).toMatchObject({ status: "delivered", msgs: [m1.msg, m2.msg] });
    b.send({ type: "ack", seq: m3.seq });
    expect(await a.next("receipt")).toMatchObject({ status: "delivered", msgs: [m3.msg] });
    const indexes = await runInDurableObject(stub(bob), (_o, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'received' AND sql IS NOT NULL ORDER BY name")
        .toArray()
        .map((r) => r.name),
    );
    expect(indexes).toEqual(["received_chat"]);
  });
});

describe("stubs", () => {
  // A namespace whose stubs count their calls and throw while `failing` is set.
  function fakeNamespace() {
    const made: string[] = [];
    let failing = false;
    const ns = {
      getByName(name: string) {
        made.push(name);
        return {
          ping: async () => {
            if (failing) throw new Error(`${name} unreachable`);
            return name;
          },
        };
      },
    };
    return { made, ns: ns as unknown as DurableObjectNamespace<UserObject>, fail: (on: boolean) => (failing = on) };
  }
  const ping = (s: unknown) => (s as { ping(): Promise<string> }).ping();

  it("reuses a stub, builds a fresh one after a call on it threw, and keeps at most 256", async () => {
    const { made, ns, fail } = fakeNamespace();
    const stubs = new Stubs(ns);
    expect(await stubs.call("a", ping)).toBe("a");
    expect(await stubs.call("a", ping)).toBe("a");
    expect(made).toEqual(["a"]);
    fail(true);
    await expect(stubs.call("a", ping)).rejects.toThrow("a unreachable");
    fail(false);
    expect(await stubs.call("a", ping)).toBe("a");
    expect(made).toEqual(["a", "a"]);
    for (let i = 0; i < 256; i++) await stubs.call(`u${i}`, ping);
    await stubs.call("a", ping); // the oldest of 257 went
    expect(made.filter((n) => n === "a")).toHaveLength(3);
    await stubs.call("u255", ping);
    expect(made.filter((n) => n === "u255")).toHaveLength(1);
  });
});

describe("outbox drain", () => {
  it("a handed-over row's delete rides along only with a transaction that queues rows, whose commit writes the outbox anyway", async () => {
    const out = await runInDurableObject(stub(uid("outbox")), async (_o, state) => {
      const sql = state.storage.sql;
      const outbox = new Outbox(sql, async (_t, items) => items.map(() => ({ ok: true as const })), () => {});
      const ids = () => sql.exec<{ id: number }>("SELECT id FROM outbox ORDER BY id").toArray().map((r) => r.id);
      outbox.transaction(state.storage, () => outbox.enqueue("user:b", "op", { n: 1 }), () => {});
      const queued = ids();
      await outbox.drain();
      const handed = { ids: ids(), unsettled: outbox.unsettled() };
      // A write that queues nothing (a hand-off being accepted) leaves the delete waiting.
      outbox.transaction(state.storage, () => sql.exec("INSERT INTO meta (key, value) VALUES ('scratch', '1') ON CONFLICT(key) DO UPDATE SET value = excluded.value"), () => {});
      const afterPlain = ids();
      outbox.transaction(state.storage, () => outbox.enqueue("user:b", "op", { n: 2 }), () => {});
      return { queued, handed, afterPlain, afterQueue: ids(), unsettled: outbox.unsettled() };
    });
    expect(out.handed).toEqual({ ids: out.queued, unsettled: 1 });
    expect(out.afterPlain).toEqual(out.queued);
    expect(out.afterQueue).toHaveLength(1);
    expect(out.afterQueue[0]).toBeGreaterThan(out.queued[0]!);
    expect(out.unsettled).toBe(0);
  });

  it("enqueueAll queues a row for each target in the order given, behind rows already queued to them", async () => {
    const out = await runInDurableObject(stub(uid("outbox")), async (_o, state) => {
      const handed: Array<[string, unknown[]]> = [];
      const handoff = async (target: string, items: unknown[]): Promise<HandoffResult[]> => {
        handed.push([target, items]);
        return items.map(() => ({ ok: true }));
      };
      const outbox = new Outbox(state.storage.sql, handoff, () => {});
      let outside = "";
      try {
        outbox.enqueueAll(["user:x"], "fan", {});
      } catch (err) {
        outside = String(err);
      }
      outbox.transaction(
        state.storage,
        () => {
          outbox.enqueue("user:b", "first", { n: 0 });
          outbox.enqueueAll(["user:c", "user:b", "user:a"], "fan", { gseq: 7 });
          outbox.enqueueAll([], "none", {});
        },
        () => {},
      );
      const rows = state.storage.sql.exec<{ id: number; target: string; op: string; payload: string }>("SELECT id, target, op, payload FROM outbox ORDER BY id").toArray();
      await outbox.drain();
      outbox.settle();
      return { outside, rows, handed, left: state.storage.sql.exec("SELECT 1 FROM outbox").toArray().length };
    });
    expect(out.outside).toContain("outside a transaction");
    expect(out.rows.map((r) => [r.target, r.op, r.payload])).toEqual([
      ["user:b", "first", '{"n":0}'],
      ["user:c", "fan", '{"gseq":7}'],
      ["user:b", "fan", '{"gseq":7}'],
      ["user:a", "fan", '{"gseq":7}'],
    ]);
    expect(out.rows.map((r) => r.id)).toEqual([...out.rows.map((r) => r.id)].sort((a, b) => a - b));
    expect(out.handed).toHaveLength(3);
    expect(out.handed).toContainEqual([
      "user:b",
      [
        { op: "first", payload: { n: 0 } },
        { op: "fan", payload: { gseq: 7 } },
      ],
    ]);
    expect(out.left).toBe(0);
  });

  // The user object looks at its alarm again after a drain only when the drain
  // says so: a failure set a retry time, or a refusal may have released media.
  it("reports whether every hand-off went through: true when all did, false after a failure or a refusal", async () => {
    const user = uid("outbox");
    const outcomes = await runInDurableObject(stub(user), async (_o, state) => {
      const answers: Array<"ok" | "throw" | "refuse"> = ["ok", "throw", "refuse"];
      let answer: "ok" | "throw" | "refuse" = "ok";
      const refusedOps: string[] = [];
      const handoff = async (_target: string, items: unknown[]): Promise<HandoffResult[]> => {
        if (answer === "throw") throw new Error("unreachable");
        return items.map(() => (answer === "ok" ? { ok: true } : { ok: false, code: "not_member", message: "no" }));
      };
      const outbox = new Outbox(state.storage.sql, handoff, (_t, item) => refusedOps.push(item.op));
      const results: Array<{ answer: string; clean: boolean; rows: number }> = [];
      for (const a of answers) {
        answer = a;
        outbox.transaction(state.storage, () => outbox.enqueue(`user:peer-${a}`, `op-${a}`, { a }), () => {});
        const clean = await outbox.drain();
        outbox.settle();
        results.push({ answer: a, clean, rows: state.storage.sql.exec("SELECT 1 FROM outbox").toArray().length });
      }
      return { results, refusedOps };
    });
    expect(outcomes.results).toEqual([
      { answer: "ok", clean: true, rows: 0 },
      // The failed row stays, with a retry time; the refused one is done with.
      { answer: "throw", clean: false, rows: 1 },
      { answer: "refuse", clean: false, rows: 1 },
    ]);
    expect(outcomes.refusedOps).toEqual(["op-refuse"]);
  });

  it("a drain whose one target throws ends only when its other targets are done: a drain asked meanwhile hands nothing over twice", async () => {
    // Review K of 2026-11-28: the drain was marked finished at the first error while
    // its other workers still waited on their hand-offs, so the next drain took the
    // same rows again.
    const user = uid("outbox");
    const out = await runInDurableObject(stub(user), async (_o, state) => {
      let slowCalls = 0;
      let open: () => void = () => {};
      const gate = new Promise<void>((r) => (open = r));
      const handoff = async (target: string, items: unknown[]): Promise<HandoffResult[]> => {
        if (target === "user:slow") {
          slowCalls++;
          await gate;
          return items.map(() => ({ ok: true }));
        }
        return items.map(() => ({ ok: false, code: "not_member", message: "no" }));
      };
      const outbox = new Outbox(state.storage.sql, handoff, () => {
        throw new Error("the refusal handler failed");
      });
      outbox.transaction(state.storage, () => {
        outbox.enqueue("user:slow", "op", {});
        outbox.enqueue("user:bad", "op", {});
      }, () => {});
      const first = outbox.drain().then(() => "resolved", (e: unknown) => String(e));
      await new Promise((r) => setTimeout(r, 20));
      const second = outbox.drain().then(() => "resolved", (e: unknown) => String(e));
      await new Promise((r) => setTimeout(r, 20));
      const callsWhileWaiting = slowCalls;
      open();
      return { callsWhileWaiting, first: await first, second: await second, slowCalls };
    });
    expect(out.callsWhileWaiting).toBe(1);
    expect(out.slowCalls).toBe(1);
    expect(out.first).toContain("the refusal handler failed");
  });

  it("settles the rows of many targets at once and keeps every row not handed over", async () => {
    const user = uid("outbox");
    const left = await runInDurableObject(stub(user), async (_o, state) => {
      const handoff = async (target: string, items: unknown[]): Promise<HandoffResult[]> => {
        if (target === "user:c") throw new Error("unreachable");
        return items.map(() => ({ ok: true }));
      };
      const outbox = new Outbox(state.storage.sql, handoff, () => {});
      outbox.transaction(state.storage, () => {
        for (const t of ["a", "b", "c", "a", "b"]) outbox.enqueue(`user:${t}`, "op", { t });
      }, () => {});
      await outbox.drain();
      // Queued after the drain: not handed over, so not deleted by the settle.
      outbox.transaction(state.storage, () => outbox.enqueue("user:a", "late", {}), () => {});
      outbox.settle();
      return state.storage.sql.exec<{ target: string; op: string }>("SELECT target, op FROM outbox ORDER BY id").toArray();
    });
    expect(left).toEqual([
      { target: "user:c", op: "op" },
      { target: "user:a", op: "late" },
    ]);
  });
});

describe("group log", () => {
  // Each member's hand-off of a post reads the same log entry, so entries are
  // kept once read. A rewrite of an entry still being fanned out (a disappearing
  // message's time coming, a delete) must reach the members not reached yet.
  it("hands over an entry as it is now: a rewrite or a scrub after it was read is what the next member gets", async () => {
    const out = await runInDurableObject(env.GROUPS.getByName(uid("g")), async (_o, state) => {
      const outbox = new Outbox(state.storage.sql, async () => [], () => {});
      const log = new GroupLog(state.storage.sql, outbox);
      const message = { msg: "m1", id: "c1", from: "alice", ts: 1, device: "phone", text: "secret words" };
      let post = 0;
      let edit = 0;
      outbox.transaction(state.storage, () => {
        post = log.append({ kind: "message", message }, ["bob"], 1);
        edit = log.append({ kind: "event", event: { kind: "edited", msg: "m1", text: "edited secret", by: "alice" } as never }, ["bob"], 2);
      }, () => {});
      const resolved = () =>
        JSON.stringify(log.resolve("g", [{ op: GROUP_OPS.message, payload: { gseq: post } }, { op: GROUP_OPS.event, payload: { gseq: edit } }]));
      const before = resolved();
      // Each write alone, each followed by a read: a clear missing from either shows.
      outbox.transaction(state.storage, () => log.scrubEdits("m1"), () => {});
      const scrubbed = resolved();
      outbox.transaction(state.storage, () => log.rewriteMessage("m1", () => null), () => {});
      const rewritten = resolved();
      const tomb = (log.resolve("g", [{ op: GROUP_OPS.message, payload: { gseq: post } }])[0]!.payload as GroupMessageItem).message;
      return { before, scrubbed, rewritten, tomb };
    });
    expect(out.before).toContain("secret words");
    expect(out.before).toContain("edited secret");
    expect(out.scrubbed).toContain("secret words");
    expect(out.scrubbed).not.toContain("edited secret");
    expect(out.rewritten).not.toContain("secret words");
    expect(out.rewritten).not.toContain("edited secret");
    expect(out.tomb.deleted).toBe(true);
  });
});
