// The benchmark's Worker with every SQL statement counted: bench/work.mjs runs
// `wrangler dev bench/trace-worker.ts -c bench/wrangler.toml`, so the objects
// are the production classes with `sql.exec` and `transactionSync` wrapped.
// Statement counts, like WAL pages, do not depend on how busy the machine is;
// the timed benchmark never runs this entry.
//
//   POST /bench/trace/start   forget what was recorded, record from now on
//   POST /bench/trace/stop    stop; answers { statements: {class: {sql: n}}, sequence: [...] }
//
// All objects and the Worker share one isolate under `wrangler dev`, so one
// module-level record sees them all.
import bench from "./worker";
import { GroupObject as Group, UserObject as User } from "../src/index";
import type { Env } from "../src/env";
import type { HandoffResult } from "../src/outbox";

export * from "./worker";

/** The sequence kept is bounded: enough for a few messages, read with `--sequence`. */
const SEQUENCE_MAX = 5000;

const record = {
  on: false,
  statements: {} as Record<string, Record<string, number>>,
  sequence: [] as string[],
};

function note(cls: string, who: string, what: string): void {
  if (!record.on) return;
  if (what.startsWith("SQL ")) {
    const byClass = (record.statements[cls] ??= {});
    byClass[what.slice(4)] = (byClass[what.slice(4)] ?? 0) + 1;
  }
  if (record.sequence.length < SEQUENCE_MAX) record.sequence.push(`${cls}:${who} ${what}`);
}

/** Wraps the storage of one object before the production constructor sees it. */
function instrument(cls: string, ctx: DurableObjectState): void {
  const who = ctx.id.toString().slice(0, 6);
  const sql = ctx.storage.sql;
  const exec = sql.exec.bind(sql);
  sql.exec = ((query: string, ...bindings: unknown[]) => {
    note(cls, who, `SQL ${query.replace(/\s+/g, " ").trim()}`);
    return exec(query, ...bindings);
  }) as typeof sql.exec;
  const transactionSync = ctx.storage.transactionSync.bind(ctx.storage);
  ctx.storage.transactionSync = (<T>(fn: () => T): T => {
    note(cls, who, "BEGIN");
    const r = transactionSync(fn);
    note(cls, who, "COMMIT");
    return r;
  }) as typeof ctx.storage.transactionSync;
}

// The overrides mark where an event starts in the sequence (a frame, an RPC).
// Methods, not instance properties: RPC calls only what the class defines.
type Items = Parameters<User["handoff"]>[2];
interface Traceable {
  webSocketMessage?(ws: WebSocket, message: string | ArrayBuffer): void | Promise<void>;
  handoff(to: string, from: string, items: Items): Promise<HandoffResult[]>;
  alarm(): Promise<void>;
}

/**
 * The production class `Base` with its storage wrapped and its events marked.
 * (A mixin's constructor takes `...args: any[]`: TypeScript's rule for mixins.)
 */
function traced<B extends new (...args: any[]) => Traceable>(Base: B, cls: string) {
  return class extends Base {
    private readonly who: string;
    constructor(...args: any[]) {
      const ctx = args[0] as DurableObjectState;
      instrument(cls, ctx);
      super(...args);
      this.who = ctx.id.toString().slice(0, 6);
    }
    private mark(what: string): void {
      note(cls, this.who, `>> ${what}`);
    }
    override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
      this.mark("frame");
      return super.webSocketMessage?.(ws, message);
    }
    override async handoff(to: string, from: string, items: Items) {
      this.mark(`handoff from ${from.split(":")[0]}: ${items.map((i) => i.op).join(",")}`);
      return super.handoff(to, from, items);
    }
    override async alarm(): Promise<void> {
      this.mark("alarm");
      return super.alarm();
    }
  };
}

export const UserObject = traced(User, "user");
export const GroupObject = traced(Group, "group");

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/bench/trace/start") {
      Object.assign(record, { on: true, statements: {}, sequence: [] });
      return Response.json({ ok: true });
    }
    if (request.method === "POST" && url.pathname === "/bench/trace/stop") {
      record.on = false;
      return Response.json({ statements: record.statements, sequence: record.sequence });
    }
    return bench.fetch(request, env as Parameters<typeof bench.fetch>[1], ctx);
  },
};
