// What the benchmark reads about the server's processes, from /proc (Linux):
// the processes of wrangler dev's process group (CPU ticks), which workerd
// proxies the public port and which runs the Worker and its objects, their
// resident memory and what their allocator has in use.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** Processes of a process group: [{ pid, comm, ticks }] (ticks = utime + stime). */
export function groupProcesses(pgid) {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // comm is in parentheses and may contain spaces: split after the last ")".
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const f = stat.slice(close + 2).split(" ");
      // fields after comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
      if (Number(f[2]) !== pgid || f[0] === "Z") continue;
      out.push({ pid: Number(name), comm, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** CPU ticks of one process: { user: utime, kernel: stime }. */
export function cpuTicksOf(pid) {
  const t = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = t.slice(t.lastIndexOf(")") + 2).split(" ");
  return { user: Number(f[11]), kernel: Number(f[12]) };
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Pids (among `pids`) that hold a listening TCP socket on `port`. */
export function listeners(port, pids) {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is "ADDR:PORT" in hex; st 0A = LISTEN; inode is field 9
      if (f.length > 9 && f[1].endsWith(`:${hex}`) && f[3] === "0A") inodes.add(f[9]);
    }
  }
  return pids.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
          return m !== null && inodes.has(m[1]);
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

/**
 * The workerd processes of a dev server ({ pid, port } from startDevServer;
 * its pid leads its own process group): wrangler runs one that listens on the
 * public port and proxies (`proxy`, absent in production) and one that runs
 * the Worker and its objects (`runtime`). Either is null if it cannot be told apart.
 */
export function workerdOf(server) {
  const w = groupProcesses(server.pid).filter((p) => p.comm === "workerd").map((p) => p.pid);
  const front = listeners(server.port, w);
  const proxy = front.length === 1 ? front[0] : null;
  const rest = w.filter((pid) => pid !== proxy);
  return { proxy, runtime: rest.length === 1 ? rest[0] : w.length === 1 ? w[0] : null, all: w };
}

/**
 * How many SQLite databases a process has open (main files only): locally each
 * awake object with storage holds its own, and closes it when evicted.
 */
export function openDatabases(pid) {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith(".sqlite")) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

/**
 * Resolves to the bytes the process's allocator has handed out and not had back (workerd links
 * tcmalloc; its mallinfo().uordblks is "bytes in use by application"), read by
 * attaching gdb for a moment; null without gdb, ptrace or libc's type info.
 * Unlike RSS, it goes down when memory is freed, so it can be compared across
 * the steps of one run: RSS keeps whatever the allocator took at its peak.
 */
export function mallocInUse(pid) {
  return new Promise((resolve) => {
    execFile("gdb", ["-p", String(pid), "-batch", "-ex", "p ((struct mallinfo (*)(void))mallinfo)()"], { encoding: "utf8", timeout: 60_000 }, (err, out) => {
      const m = err ? null : /uordblks = (-?\d+)/.exec(out);
      // The field is an int: past 2 GiB it wraps, and then it says nothing.
      resolve(m && Number(m[1]) >= 0 ? Number(m[1]) : null);
    });
  });
}
