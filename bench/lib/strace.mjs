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
  const file = join(tmpdir(), `relay-syncs-${process.pid}-${Date.now()}.txt`);
  const trace = spawn("strace", ["-f", "-y", "-o", file, "-e", "trace=fsync,fdatasync", "-p", String(pid)], { stdio: "ignore" });
  return {
    async stop() {
      trace.kill("SIGINT");
      await new Promise((r) => trace.on("close", r));
      try {
        return readFileSync(file, "utf8")
          .split("\n")
          .map((line) => /sync\(\d+<([^>]*)>/.exec(line)?.[1])
          .filter((path) => path !== undefined);
      } finally {
        rmSync(file, { force: true });
      }
    },
  };
}
