// The real client library (src/client/, TypeScript) for the benchmark's Node
// process: bundled with esbuild into a temporary file at first use (about
// 0.3 s; nothing is committed or left behind) and imported. It runs unchanged
// in Node 22 (global WebSocket, fetch, crypto; MemoryStore). Used by scenario 7
// (the cost of end-to-end encryption), so what is measured is what a real app
// pays: sealing per device, key bundles, ratchets, sender keys, the store write
// before the ack.
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { sleep, tokenFor } from "./client.mjs";

const root = new URL("../..", import.meta.url).pathname;
let loaded = null;

/**
 * The library's exports, plus `Secure` (secure.ts) so the bench can time the
 * seal and open calls (the crypto share of each latency).
 */
export function clientLibrary() {
  loaded ??= (async () => {
    const outfile = join(tmpdir(), `relay-bench-client-${process.pid}.mjs`);
    await build({
      stdin: {
        contents: `export * from "./src/client/index.ts"; export { Secure } from "./src/client/secure.ts";`,
        resolveDir: root,
        loader: "ts",
        sourcefile: "bench-client-entry.ts",
      },
      outfile,
      bundle: true,
      format: "esm",
      platform: "neutral",
      mainFields: ["module", "main"],
      target: ["es2022"],
      logLevel: "warning",
    });
    try {
      return await import(pathToFileURL(outfile).href);
    } finally {
      rmSync(outfile, { force: true });
    }
  })();
  return loaded;
}

/**
 * Time spent in Secure.seal / Secure.open (ms, count), summed over every client
 * of this process; and in Secure.checkAhead (a group message's signature checked
 * by WebCrypto before open: wall time of each call, which overlap).
 */
export const cryptoTime = { seal: 0, seals: 0, open: 0, opens: 0, ahead: 0, aheads: 0, aheadOk: 0 };
/** HTTP requests made by clients of this process, by kind (device lists, group rosters, key bundles, other). */
export const requests = { devices: 0, groups: 0, keys: 0, other: 0 };

function countingFetch(r) {
  const path = new URL(r.url).pathname;
  const kind = /\/devices$/.test(path) ? "devices" : path.startsWith("/v1/groups/") ? "groups" : /\/keys/.test(path) ? "keys" : "other";
  requests[kind]++;
  return fetch(r);
}

let instrumented = false;
function instrument(lib) {
  if (instrumented) return;
  instrumented = true;
  const proto = lib.Secure.prototype;
  const seal = proto.seal;
  // seal is async (device lists and bundles may be fetched): wall time of the call, awaits included.
  proto.seal = async function (e) {
    const t = performance.now();
    try {
      return await seal.call(this, e);
    } finally {
      cryptoTime.seal += performance.now() - t;
      cryptoTime.seals++;
    }
  };
  const checkAhead = proto.checkAhead;
  proto.checkAhead = function (f) {
    const t = performance.now();
    const p = checkAhead.call(this, f);
    return p?.then((ok) => {
      cryptoTime.ahead += performance.now() - t;
      cryptoTime.aheads++;
      if (ok) cryptoTime.aheadOk++;
      return ok;
    });
  };
  const open = proto.open;
  proto.open = function (f) {
    const t = performance.now();
    try {
      return open.call(this, f);
    } finally {
      cryptoTime.open += performance.now() - t;
      cryptoTime.opens++;
    }
  };
}

/**
 * A ChatClient for user/device, acking at once (ackDelayMs 0, as the bench's
 * plain client does) so `delivered` compares like with like.
 */
export async function chatClient(ctx, user, device, { e2ee }) {
  const lib = await clientLibrary();
  instrument(lib);
  return new lib.ChatClient({
    baseUrl: ctx.base,
    user,
    device,
    token: () => tokenFor(ctx.base, user),
    e2ee,
    ackDelayMs: 0,
    fetch: countingFetch,
    store: new lib.MemoryStore(),
  });
}

/** Starts a client and resolves once it is online and (with e2ee) its keys are published. */
export async function startClient(c, timeoutMs = 60_000) {
  const online = c.once("synced", () => true, timeoutMs);
  await c.start();
  await online;
  const deadline = performance.now() + timeoutMs;
  while (c.secure && !c.keysPublished) {
    if (performance.now() > deadline) throw new Error(`${c.user}/${c.device}: keys not published after ${timeoutMs} ms`);
    await sleep(20);
  }
}
