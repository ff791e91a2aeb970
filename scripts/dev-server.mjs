// Starts the local server the way `npm start` and the browser test need it:
// D1 migrations applied to the persistence directory, then `wrangler dev` on
// 127.0.0.1 with development variables, in its own process group so that
// stopping it stops workerd too (killing only the launcher leaves workerd
// holding the port). Plain JS, run by the Node 22 in node_modules/.bin.
import { spawn, spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const bin = `${root}node_modules/.bin`;

export const DEV_VARS = {
  DEV_AUTH: "true",
  // Development-only secrets: the server refuses to run without them.
  AUTH_SECRET: "dev-auth-secret-not-for-production",
  MEDIA_SIGNING_SECRET: "dev-media-secret-not-for-production",
};

function env() {
  return {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    // No prompts: `d1 migrations apply` asks for confirmation on a terminal.
    CI: "true",
  };
}

/**
 * @param {{ port: number, persistTo: string, inspectorPort?: number, stdio?: "inherit" | "pipe", log?: (line: string) => void }} o
 * @returns {{ child: import("node:child_process").ChildProcess, url: string, stop: () => void, ready: Promise<void> }}
 */
export function startDevServer(o) {
  const migrate = spawnSync(`${bin}/wrangler`, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", o.persistTo], {
    cwd: root,
    env: env(),
    stdio: o.stdio === "inherit" ? "inherit" : "pipe",
    timeout: 60_000,
  });
  if (migrate.status !== 0) {
    throw new Error(`d1 migrations failed (${migrate.status}): ${migrate.stderr?.toString() ?? ""}${migrate.stdout?.toString() ?? ""}`);
  }
  const vars = Object.entries(DEV_VARS).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const child = spawn(`${bin}/wrangler`, ["dev", "--ip", "127.0.0.1", "--port", String(o.port), "--persist-to", o.persistTo, "--show-interactive-dev-session=false", ...(o.inspectorPort ? ["--inspector-port", String(o.inspectorPort)] : []), ...vars], {
    cwd: root,
    env: env(),
    stdio: o.stdio === "inherit" ? "inherit" : ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: stop() kills the whole group
  });
  if (o.stdio !== "inherit" && o.log) {
    child.stdout?.on("data", (d) => o.log(String(d)));
    child.stderr?.on("data", (d) => o.log(String(d)));
  }
  const url = `http://127.0.0.1:${o.port}`;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
    // workerd sometimes ignores SIGTERM while busy: make sure.
    setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }, 2000).unref();
  };
  const ready = (async () => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}`);
      try {
        const res = await fetch(`${url}/v1/health`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error("wrangler dev did not answer /v1/health within 60 s");
  })();
  return { child, url, stop, ready };
}
