// Starts a throwaway `wrangler dev` on 127.0.0.1 (a free port, its own state
// directory, its own process group) for scripts that need a real server:
// latency measurements, benchmarks, browser tests. stop() kills the whole group.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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

/**
 * @param {{ config?: string, vars?: Record<string,string>, log?: boolean }} opts
 * @returns {Promise<{ url: string, port: number, pid: number, stop: () => void }>}
 */
export async function startDevServer(opts = {}) {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), "relay-dev-"));
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
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const child = spawn(node, args, { cwd: root, env, detached: true, stdio: ["ignore", opts.log ? "inherit" : "ignore", opts.log ? "inherit" : "ignore"] });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    rmSync(state, { recursive: true, force: true });
  };
  process.on("exit", stop);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
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
  return { url, port, pid: child.pid, stop, state };
}
