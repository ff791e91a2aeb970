// Disk syncs of a process, traced with strace: which file each fsync or
// fdatasync was for. Locally every SQLite commit of an object ends in one, so
// the files say which objects commit (bench/syncs.mjs, bench/eviction-stall.mjs).
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Throws unless strace can run here. */
export function requireStrace() {
  if (spawnSync("strace", ["-V"]).status !== 0) throw new Error("strace is not installed (apt-get install -y strace)");
}

/** Starts tracing `pid` (and its threads); stop() resolves to the path of the file synced by each call, in order. */
export function traceSyncs(pid) {
  const trace = traceWrites(pid);
  return { stop: async () => (await trace.stop()).syncs };
}

/**
 * Starts tracing `pid`'s syncs and SQLite write-ahead-log page writes; stop()
 * resolves to { syncs, pages }: for each sync and each page written to a WAL
 * (one 4 KiB frame), the path of its file, in order. Pages per commit is the
 * number of B-trees (tables and indexes) a transaction touched, near enough.
 */
export function traceWrites(pid) {
  const file = join(tmpdir(), `relay-syncs-${process.pid}-${Date.now()}.txt`);
  const trace = spawn("strace", ["-f", "-y", "-o", file, "-e", "trace=fsync,fdatasync,pwrite64", "-p", String(pid)], { stdio: "ignore" });
  return {
    async stop() {
      trace.kill("SIGINT");
      await new Promise((r) => trace.on("close", r));
      try {
        const syncs = [];
        const pages = [];
        for (const line of readFileSync(file, "utf8").split("\n")) {
          const sync = /sync\(\d+<([^>]*)>/.exec(line)?.[1];
          if (sync !== undefined) syncs.push(sync);
          const page = /pwrite64\(\d+<([^>]*-wal)>, .*, 4096, \d+\) = 4096/.exec(line)?.[1];
          if (page !== undefined) pages.push(page);
        }
        return { syncs, pages };
      } finally {
        rmSync(file, { force: true });
      }
    },
  };
}
