// Starts `wrangler dev` the way `npm start`, the browser test, the benchmarks and
// the fault tests need it: D1 migrations applied to the persistence directory,
// then the server on 127.0.0.1 with development variables, in its own process
// group so that stop() stops workerd too (killing only the launcher leaves
// workerd holding the port). Plain JS, run by the Node 22 in node_modules/.bin.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = join(root, "node_modules", ".bin");

export const DEV_VARS = {
  DEV_AUTH: "true",
  // Development-only secrets: the server refuses to run without them.
  AUTH_SECRET: "dev-auth-secret-not-for-production",
  MEDIA_SIGNING_SECRET: "dev-media-secret-not-for-production",
};

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

function childEnv(o = {}) {
  return {
    ...process.env,
    // wrangler dev records a trace of every invocation (each RPC between
    // objects too) into a local SQLite store for its Local Explorer: more disk
    // writes and syncs than the objects' own storage. Production has no such
    // cost in the object's thread, so measurements and tests turn it off.
    ...(o.observability === false ? { X_LOCAL_OBSERVABILITY: "false" } : {}),
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    // No prompts: `d1 migrations apply` asks for confirmation on a terminal.
    CI: "true",
  };
}

/**
 * Starts the server and resolves once /v1/health answers.
 * @param {{
 *   port?: number,            // default: a free port
 *   persistTo?: string,       // default: a fresh temporary directory, deleted by stop()
 *   keepState?: boolean,      // do not delete the state directory on stop() (crash tests restart on it)
 *   config?: string,          // wrangler config (default wrangler.toml)
 *   script?: string,          // the Worker's entry instead of the config's `main` (bench/trace-worker.ts)
 *   vars?: Record<string, string>,
 *   inspectorPort?: number,
 *   stdio?: "inherit" | "pipe",
 *   log?: (line: string) => void,
 *   handleSignals?: boolean,  // default true: SIGINT/SIGTERM/SIGHUP stop the server and exit
 *   observability?: boolean,  // default: wrangler's (on); false skips the local trace store
 * }} o
 */
export async function startDevServer(o = {}) {
  const port = o.port ?? (await freePort());
  const temp = o.persistTo === undefined;
  const state = o.persistTo ?? mkdtempSync(join(tmpdir(), "relay-dev-"));
  const config = o.config ?? join(root, "wrangler.toml");
  const env = childEnv(o);
  const migrate = spawnSync(`${bin}/wrangler`, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state, "-c", config], {
    cwd: root,
    env,
    stdio: o.stdio === "inherit" ? "inherit" : "pipe",
    timeout: 60_000,
  });
  if (migrate.status !== 0) {
    throw new Error(`d1 migrations failed (${migrate.status}): ${migrate.stderr?.toString() ?? ""}${migrate.stdout?.toString() ?? ""}`);
  }
  const vars = Object.entries({ ...DEV_VARS, ...(o.vars ?? {}) }).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const args = ["dev", "-c", config, "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--show-interactive-dev-session=false"];
  if (o.inspectorPort) args.push("--inspector-port", String(o.inspectorPort));
  if (o.script) args.splice(1, 0, o.script);
  const child = spawn(`${bin}/wrangler`, [...args, ...vars], {
    cwd: root,
    env,
    stdio: o.stdio === "inherit" ? "inherit" : ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: stop() kills the whole group
  });
  if (o.stdio !== "inherit") {
    child.stdout?.on("data", (d) => o.log?.(String(d)));
    child.stderr?.on("data", (d) => o.log?.(String(d)));
  }
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = (signal = "SIGKILL") => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
    if (signal !== "SIGKILL") {
      // workerd sometimes ignores SIGTERM while busy: make sure.
      setTimeout(() => {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // gone
        }
      }, 2000).unref();
    }
    if (temp && !o.keepState) rmSync(state, { recursive: true, force: true });
  };
  process.on("exit", () => stop());
  // "exit" does not run when a signal ends the process (a timeout's SIGTERM, Ctrl-C):
  // without these, an interrupted script would leave wrangler dev holding its port.
  if (o.handleSignals !== false) {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
      process.once(sig, () => {
        stop();
        process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
      });
    }
  }
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) {
      stop();
      throw new Error(`wrangler dev exited with ${child.exitCode}`);
    }
    try {
      const res = await fetch(`${url}/v1/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      stop();
      throw new Error("wrangler dev did not answer /v1/health within 90 s");
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { child, url, port, pid: child.pid, state, stop, ready: Promise.resolve() };
}
