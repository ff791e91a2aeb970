// Makes a fresh clone ready to run, with nothing but Node 20 and npm: installs
// the locked dependencies (which include Node 22 for wrangler) when they are
// missing or older than package-lock.json. Plain JS so Node 20 can run it.
import { execSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const marker = `${root}node_modules/.package-lock.json`;
const lock = `${root}package-lock.json`;
const stale = !existsSync(marker) || !existsSync(`${root}node_modules/.bin/node`) || statSync(lock).mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error("[setup] installing dependencies (npm ci)...");
  execSync("npm ci --no-audit --no-fund", { cwd: root, stdio: "inherit" });
}

// The web client's bundle (public/app.js) is built, not committed.
await import("./build-web.mjs");
