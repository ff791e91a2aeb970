// Starts a throwaway `wrangler dev` on 127.0.0.1 (a free port, its own state
// directory, its own process group) for scripts that need a real server:
// latency measurements, benchmarks, fault tests, browser tests. stop() kills
// the whole group (SIGKILL, which is also how the crash tests "pull the plug").
// With { state, keepState } a second server can be started on the state a
// killed one left behind.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/** Processes of a process group: [{ pid, comm, ticks }] from /proc (Linux only). */
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

/** Pids (among `pids`) that hold a listening TCP socket on 127.0.0.1:port. */
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

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * @param {{ config?: string, vars?: Record<string,string>, log?: boolean, logFile?: string,
 *           state?: string, keepState?: boolean, port?: number, inspectorPort?: number }} opts
 *   state: reuse this state directory (default: a fresh temporary one);
 *   keepState: do not delete it on stop (default: delete only a directory we made);
 *   port: listen here (default: a free port); logFile: append wrangler's output here.
 */
export async function startDevServer(opts = {}) {
  const port = opts.port ?? (await freePort());
  const state = opts.state ?? mkdtempSync(join(tmpdir(), "relay-dev-"));
  const ownsState = opts.state === undefined && !opts.keepState;
  const config = opts.config ?? join(root, "wrangler.toml");
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" };
  const node = bin("node");
  const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  const mig = spawnSync(node, [wrangler, "d1", "migrations", "apply", "DB", "--local", "--persist-to", state, "-c", config], {
    env,
    cwd: root,
    encoding: "utf8",
  });
  if (mig.status !== 0) throw new Error(`migrations failed: ${mig.stderr}`);
  const vars = { DEV_AUTH: "true", AUTH_SECRET: "dev-server-secret", MEDIA_SIGNING_SECRET: "dev-server-media", ...(opts.vars ?? {}) };
  const args = [wrangler, "dev", "-c", config, "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--show-interactive-dev-session=false"];
  if (opts.inspectorPort) args.push("--inspector-port", String(opts.inspectorPort));
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const logFd = opts.logFile ? openSync(opts.logFile, "a") : null;
  const out = logFd ?? (opts.log ? "inherit" : "ignore");
  const child = spawn(node, args, { cwd: root, env, detached: true, stdio: ["ignore", out, out] });
  if (logFd !== null) closeSync(logFd);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    if (ownsState) rmSync(state, { recursive: true, force: true });
  };
  process.on("exit", stop);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/v1/health`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      stop();
      throw new Error("wrangler dev did not start");
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const pgid = child.pid;
  return {
    url,
    port,
    pid: child.pid,
    state,
    stop,
    /** Every live process of the server's group (wrangler's node, workerd, esbuild). */
    processes: () => groupProcesses(pgid),
    /**
     * The workerd processes: wrangler runs one that listens on the public port
     * and proxies (`proxy`), and one that runs the Worker and its objects
     * (`runtime`). Either may be null if it cannot be told apart.
     */
    workerd: () => {
      const w = groupProcesses(pgid).filter((p) => p.comm === "workerd").map((p) => p.pid);
      const front = listeners(port, w);
      const proxy = front.length === 1 ? front[0] : null;
      const rest = w.filter((pid) => pid !== proxy);
      return { proxy, runtime: rest.length === 1 ? rest[0] : w.length === 1 ? w[0] : null, all: w };
    },
  };
}
