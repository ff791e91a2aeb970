// `npm run test:browser`: the web client in a real browser. Starts `wrangler
// dev` on a free 127.0.0.1 port with its own persistence directory (in its own
// process group, killed at the end whatever happens), drives Debian's Chromium
// with playwright-core in two contexts, Alice and Bob, and checks what a user
// sees. Checks that need a server part this build lacks (presence, media) are
// reported as "not run" with the reason, never as passed. Bounded: 110 s.
import { execSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { startDevServer } from "./dev-server.mjs";

const root = new URL("..", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const BUDGET_MS = 110_000;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"];

const results = [];
const started = Date.now();
const log = (...a) => console.log(`[browser ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  log("installing chromium (apt-get)...");
  execSync("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium", { stdio: "inherit", timeout: 600_000 });
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} still missing after apt-get install chromium`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A small gradient PNG, made here (no fixture files, no network). */
function png(width, height) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    for (let x = 0; x < width; x++) {
      const o = y * (width * 3 + 1) + 1 + x * 3;
      raw[o] = Math.round((x / width) * 255);
      raw[o + 1] = 168;
      raw[o + 2] = Math.round((y / height) * 255);
    }
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

async function check(name, fn) {
  try {
    await fn();
    results.push({ name, ok: true });
    log(`PASS ${name}`);
  } catch (err) {
    results.push({ name, ok: false, err });
    log(`FAIL ${name}: ${err instanceof Error ? err.message.split("\n").slice(0, 3).join(" / ") : err}`);
  }
}

function notRun(name, why) {
  results.push({ name, ok: null, why });
  log(`NOT RUN ${name}: ${why}`);
}

async function signIn(page, base, user) {
  await page.goto(`${base}/`);
  await page.fill("#signin-user", user);
  await page.click("#signin-submit");
  await page.waitForSelector("#chat-list");
  await page.waitForFunction(() => document.querySelector("#conn-status")?.getAttribute("data-state") === "online");
}

const bubble = (page, text) => page.locator(".row", { hasText: text }).last();

async function main() {
  ensureChromium();
  const port = await freePort();
  const persistTo = mkdtempSync(join(tmpdir(), "relay-browser-"));
  const serverLog = [];
  let server = null;
  // Whatever ends this process (a signal, a crash) ends the server's process group too.
  process.on("exit", () => server?.stop());
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => process.exit(1));
  let browser;
  const deadline = setTimeout(() => {
    log(`time budget of ${BUDGET_MS / 1000} s exceeded: stopping`);
    server?.stop();
    process.exit(1);
  }, BUDGET_MS);
  try {
    // Its own inspector port too: the default (9229) may be taken by another wrangler dev.
    server = await startDevServer({ port, persistTo, inspectorPort: await freePort(), log: (l) => serverLog.push(l) });
    log(`wrangler dev up at ${server.url}`);
    const base = server.url;
    // Which server parts exist decides which checks can run (the others are reported).
    const probeToken = (await (await fetch(`${base}/v1/dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user: "probe" }) })).json()).token;
    const auth = { Authorization: `Bearer ${probeToken}` };
    const hasPresence = (await fetch(`${base}/v1/users/probe/presence`, { headers: auth })).status !== 404;
    const mediaProbe = await fetch(`${base}/v1/media`, { method: "POST", headers: { ...auth, "content-type": "image/png" }, body: png(4, 4) });
    const hasMedia = mediaProbe.status !== 404;
    const hasGroups = (await fetch(`${base}/v1/groups`, { headers: auth })).status !== 404;

    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true, timeout: 30_000 });
    const run = Date.now().toString(36);
    const alice = `alice-${run}`;
    const bob = `bob-${run}`;
    const viewport = { width: 1100, height: 720 };
    // en-GB: 24-hour times, as in "last seen today at 14:02".
    const aliceCtx = await browser.newContext({ viewport, locale: "en-GB" });
    const bobCtx = await browser.newContext({ viewport, locale: "en-GB" });
    // Alice's socket passes through a route, so frames of server parts that are
    // missing can be injected to check the UI that shows them.
    let aliceWs = null;
    await aliceCtx.routeWebSocket(/\/v1\/connect/, (ws) => {
      ws.connectToServer();
      aliceWs = ws;
    });
    aliceCtx.setDefaultTimeout(10_000);
    bobCtx.setDefaultTimeout(10_000);
    const a = await aliceCtx.newPage();
    let b = await bobCtx.newPage();
    for (const [who, p] of [["alice", a], ["bob", b]]) p.on("pageerror", (e) => log(`${who} page error: ${e.message}`));

    // Bob signs in once (so the directory knows him), then leaves.
    await check("sign in with a development token", async () => {
      await signIn(b, base, bob);
      await signIn(a, base, alice);
    });
    await b.close();

    await check("Alice sends while Bob is away: one grey tick", async () => {
      await a.fill("#new-chat", bob);
      await a.press("#new-chat", "Enter");
      await a.waitForSelector(`.conv[data-chat="user:${bob}"]`);
      await a.fill("#composer-input", "Hi Bob! Lunch at 1?");
      await a.press("#composer-input", "Enter");
      await bubble(a, "Lunch at 1?").locator('[data-status="sent"], .tick.sent').first().waitFor();
      const tick = await bubble(a, "Lunch at 1?").locator(".tick").textContent();
      if (tick !== "✓") throw new Error(`tick is ${tick}`);
    });

    b = await bobCtx.newPage();
    b.on("pageerror", (e) => log(`bob page error: ${e.message}`));
    await check("Bob comes online: the message is in his list, unread, and Alice sees two grey ticks", async () => {
      await b.goto(`${base}/`);
      const item = b.locator(`.chat[data-chat="user:${alice}"]`);
      await item.waitFor();
      await item.locator(".badge", { hasText: "1" }).waitFor();
      const preview = await item.locator(".preview").textContent();
      if (!preview?.includes("Lunch at 1?")) throw new Error(`preview is ${preview}`);
      await a.locator('.row.mine[data-status="delivered"]', { hasText: "Lunch at 1?" }).waitFor();
      const tick = bubble(a, "Lunch at 1?").locator(".tick");
      if ((await tick.textContent()) !== "✓✓") throw new Error("not two ticks");
      if (await tick.evaluate((el) => el.classList.contains("read"))) throw new Error("already blue");
    });

    await check("Bob opens the chat: Alice's ticks turn blue", async () => {
      await b.click(`.chat[data-chat="user:${alice}"]`);
      await b.locator(".row.theirs", { hasText: "Lunch at 1?" }).waitFor();
      await a.locator('.row.mine[data-status="read"]', { hasText: "Lunch at 1?" }).waitFor();
      const color = await bubble(a, "Lunch at 1?").locator(".tick").evaluate((el) => getComputedStyle(el).color);
      if (color !== "rgb(83, 189, 235)") throw new Error(`read tick colour ${color}`);
      if ((await b.locator(`.chat[data-chat="user:${alice}"] .badge`).count()) !== 0) throw new Error("still unread at Bob");
    });

    await check("Bob replies and Alice sees it", async () => {
      await b.fill("#composer-input", "Sure, see you there!");
      await b.press("#composer-input", "Enter");
      await a.locator(".row.theirs", { hasText: "see you there" }).waitFor();
    });

    if (hasPresence) {
      await check("Alice sees Bob online, then typing", async () => {
        await a.locator("#peer-status", { hasText: "online" }).waitFor();
        await b.type("#composer-input", "typing something", { delay: 20 });
        await a.locator("#peer-status", { hasText: "typing" }).waitFor();
        await b.fill("#composer-input", "");
      });
    } else {
      notRun("Alice sees Bob online, then typing", "the server has no presence (GET /v1/users/:user/presence is 404)");
      await check("the header shows online, last seen and typing… (frames injected: the server has no presence yet)", async () => {
        const inject = (f) => aliceWs.send(JSON.stringify(f));
        inject({ type: "presence", user: bob, online: true, lastSeen: null });
        await a.locator("#peer-status", { hasText: /^online$/ }).waitFor();
        const seen = new Date();
        const today = seen.getHours() * 60 + seen.getMinutes() > 14 * 60 + 2;
        if (!today) seen.setDate(seen.getDate() - 1);
        seen.setHours(14, 2, 0, 0);
        inject({ type: "presence", user: bob, online: false, lastSeen: seen.getTime() });
        await a.locator("#peer-status", { hasText: `last seen ${today ? "today" : "yesterday"} at 14:02` }).waitFor();
        inject({ type: "typing", user: bob, chat: { user: bob }, on: true });
        await a.locator("#peer-status", { hasText: "typing…" }).waitFor();
        await a.locator(`.chat[data-chat="user:${bob}"] .preview`, { hasText: "typing…" }).waitFor();
        inject({ type: "typing", user: bob, chat: { user: bob }, on: false });
        await a.locator("#peer-status", { hasText: "last seen" }).waitFor();
      });
    }

    if (hasMedia) {
      await check("an image Alice sends renders inline at Bob's", async () => {
        const file = join(persistTo, "sunset.png");
        writeFileSync(file, png(320, 200));
        await a.setInputFiles("#attach-input", file);
        await a.fill("#media-caption", "Our view today");
        await a.click("#media-send");
        const img = b.locator(".row.theirs .media img").last();
        await img.waitFor();
        await b.waitForFunction(() => [...document.querySelectorAll(".row.theirs .media img")].some((i) => i.complete && i.naturalWidth === 320));
      });
    } else {
      notRun("an image Alice sends renders inline at Bob's", `the server has no media upload (POST /v1/media answered ${mediaProbe.status})`);
      await check("image send: preview, upload, inline at Bob's (media HTTP API mocked in the browser: the server has none yet)", async () => {
        const image = png(320, 200);
        const ref = { id: `med_${run}`, type: "image/png", size: image.length, sha256: "0".repeat(64) };
        await aliceCtx.route("**/v1/media", (route) => (route.request().method() === "POST" ? route.fulfill({ status: 201, json: ref }) : route.fallback()));
        await bobCtx.route(`**/v1/media/${ref.id}/url`, (route) => route.fulfill({ json: { url: `/__mock_media/${ref.id}.png`, urlExpiresAt: Date.now() + 3600_000 } }));
        await bobCtx.route("**/__mock_media/**", (route) => route.fulfill({ body: image, contentType: "image/png" }));
        const file = join(persistTo, "view.png");
        writeFileSync(file, image);
        await a.setInputFiles("#attach-input", file);
        await a.locator(".dialog .preview img").waitFor();
        await a.fill("#media-caption", "Our view today");
        await a.click("#media-send");
        await a.locator(".row.mine .media img").last().waitFor();
        await b.locator(".row.theirs", { hasText: "Our view today" }).waitFor();
        await b.waitForFunction(() => [...document.querySelectorAll(".row.theirs .media img")].some((i) => i.complete && i.naturalWidth === 320));
      });
    }

    await check("a reload of Bob's page loses nothing, even what arrived meanwhile", async () => {
      const before = await b.locator(".row.theirs, .row.mine").allTextContents();
      if (before.length < 2) throw new Error(`only ${before.length} messages before reload`);
      const reload = b.reload();
      await a.fill("#composer-input", "Sent while you reloaded");
      await a.press("#composer-input", "Enter");
      await reload;
      await b.locator(".row.theirs", { hasText: "Sent while you reloaded" }).waitFor();
      const after = await b.locator(".row.theirs, .row.mine").allTextContents();
      const missing = before.filter((t) => !after.includes(t));
      if (missing.length) throw new Error(`lost after reload: ${missing.join(" | ")}`);
      if (after.length !== before.length + 1) throw new Error(`expected ${before.length + 1} messages, have ${after.length}`);
      await a.locator('.row.mine[data-status="read"]', { hasText: "Sent while you reloaded" }).waitFor();
    });

    if (hasGroups) {
      await check("Alice creates a group with Bob; he gets its message; message info lists him", async () => {
        await a.click("#new-group");
        await a.fill("#group-name", "Lunch crew");
        await a.fill("#group-members", bob);
        await a.click("#group-create");
        await a.waitForSelector('.conv[data-chat^="group:"]');
        const key = await a.locator('.conv[data-chat^="group:"]').getAttribute("data-chat");
        await a.fill("#composer-input", "Group hello");
        await a.press("#composer-input", "Enter");
        await b.locator(`.chat[data-chat="${key}"]`, { hasText: "Group hello" }).waitFor();
        await b.click(`.chat[data-chat="${key}"]`);
        await b.locator(".row.theirs", { hasText: "Group hello" }).waitFor();
        await a.locator('.row.mine[data-status="read"]', { hasText: "Group hello" }).waitFor();
        await bubble(a, "Group hello").locator(".bubble").click();
        await a.locator("#message-info .receipts li", { hasText: bob }).waitFor();
        await a.click(".dialog .close");
        await a.click(`.chat[data-chat="user:${bob}"]`);
        await a.waitForSelector(`.conv[data-chat="user:${bob}"]`);
      });
    } else notRun("Alice creates a group with Bob; he gets its message; message info lists him", "the server has no groups (GET /v1/groups is 404)");

    await check("the client library runs in Node 22 (global WebSocket and fetch): Carol's message reaches Alice's page", async () => {
      // Bundled like the web client, but for Node; imported from the temp dir.
      const out = join(persistTo, "client-node.mjs");
      await build({ entryPoints: [join(root, "src/client/index.ts")], outfile: out, bundle: true, format: "esm", platform: "node", target: "node22", logLevel: "warning" });
      const { ChatClient } = await import(out);
      const carol = `carol-${run}`;
      const tok = (await (await fetch(`${base}/v1/dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user: carol }) })).json()).token;
      const client = new ChatClient({ baseUrl: base, user: carol, token: tok });
      await client.start();
      try {
        await client.once("synced", () => true, 10_000);
        const m = client.send({ user: alice }, { text: "Hello from Node" });
        await a.locator(`.chat[data-chat="user:${carol}"]`, { hasText: "Hello from Node" }).waitFor();
        await client.once("messageUpdated", (e) => e.message.key === m.key && e.message.status === "delivered", 10_000).catch(() => {});
        if (client.message(m.key)?.status !== "delivered") throw new Error(`status ${client.message(m.key)?.status}`);
      } finally {
        await client.stop();
      }
    });

    await check("group creation degrades or works without breaking the page", async () => {
      await a.click("#new-group");
      await a.fill("#group-name", "Lunch crew");
      await a.fill("#group-members", bob);
      await a.click("#group-create");
      // Either the group opens, or the dialog explains; the app keeps running either way.
      await a.waitForFunction(() => document.querySelector('.conv[data-chat^="group:"]') || document.querySelector(".dialog .error")?.textContent);
      if (await a.locator(".dialog .close").count()) await a.click(".dialog .close");
      await a.click(`.chat[data-chat="user:${bob}"]`);
      await a.waitForSelector(`.conv[data-chat="user:${bob}"]`);
    });

    await check("chat settings (permanent, disappearing) save or explain, and the page keeps working", async () => {
      await a.click("#chat-info");
      await a.selectOption("#retention", "permanent");
      await a.selectOption("#disappear", "86400");
      await a.click("#settings-save");
      await a.waitForFunction(() => /Saved|support|not/.test(document.querySelector(".dialog .hint:last-child")?.textContent ?? ""));
      await a.click(".dialog .close");
      await a.fill("#composer-input", "Still works after settings");
      await a.press("#composer-input", "Enter");
      await b.locator(".row.theirs", { hasText: "Still works after settings" }).waitFor();
    });

    mkdirSync(join(root, "docs"), { recursive: true });
    await a.screenshot({ path: join(root, "docs/screenshot.png") });
    log("screenshot saved to docs/screenshot.png");
  } catch (err) {
    results.push({ name: "browser test setup", ok: false, err });
    log(`ERROR ${err instanceof Error ? err.stack : err}`);
    if (serverLog.length) log(`server log tail:\n${serverLog.join("").split("\n").slice(-30).join("\n")}`);
  } finally {
    clearTimeout(deadline);
    await browser?.close().catch(() => {});
    server.stop();
    await new Promise((r) => setTimeout(r, 500));
    rmSync(persistTo, { recursive: true, force: true });
  }
  const passed = results.filter((r) => r.ok === true).length;
  const failed = results.filter((r) => r.ok === false).length;
  const skipped = results.filter((r) => r.ok === null).length;
  console.log(`browser: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

await main();
