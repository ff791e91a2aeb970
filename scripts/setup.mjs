// Makes a fresh clone ready to run, with nothing but Node 20 and npm: installs
// the locked dependencies (which include Node 22 for wrangler) when they are
// missing or were installed from another package-lock.json. Plain JS so Node 20
// can run it.
//
// "Another lock" is told by content (a SHA-256 kept next to the install), not
// by file times: a fresh checkout's lock is newer than any install by mtime. A
// node_modules that is a link to another checkout's is never reinstalled from
// here: `npm ci` would empty the other one through the link.
import { execSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, statSync, writeFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const modules = `${root}node_modules`;
const npmMarker = `${modules}/.package-lock.json`;
const hashMarker = `${modules}/.relay-lock-sha256`;
const lock = `${root}package-lock.json`;
const lockHash = createHash("sha256").update(readFileSync(lock)).digest("hex");

const installed = existsSync(npmMarker) && existsSync(`${modules}/.bin/node`);
let stale = !installed;
if (installed) {
  if (existsSync(hashMarker)) stale = readFileSync(hashMarker, "utf8").trim() !== lockHash;
  // Installed before the hash was kept: trust the times once, then keep the hash.
  else if (statSync(lock).mtimeMs > statSync(npmMarker).mtimeMs) stale = true;
  else writeFileSync(hashMarker, `${lockHash}\n`);
}
if (stale) {
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
    console.error(`[setup] node_modules is a link (to another checkout?) and does not match package-lock.json.`);
    console.error(`[setup] not running npm ci through it; run it yourself, or replace the link with a copy.`);
    process.exit(1);
  }
  console.error("[setup] installing dependencies (npm ci)...");
  execSync("npm ci --no-audit --no-fund", { cwd: root, stdio: "inherit" });
  writeFileSync(hashMarker, `${lockHash}\n`);
}

// The web client's bundle (public/app.js) is built, not committed.
await import("./build-web.mjs");
