// What the fault tests share: a replayable random source, a server that can be
// started again on the same state and port after a kill, the storm of socket
// cuts and random sends the flaky tests run, and the client library set up as
// an app would (bundled for Node as the benchmark does).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startDevServer } from "../../scripts/dev-server.mjs";
import { sleep, tokenFor } from "../../bench/lib/client.mjs";
import { clientLibrary } from "../../bench/lib/chat-client.mjs";
import { chaosProxy } from "./proxy.mjs";

/** Polls pred every `everyMs` until it holds or `ms` have passed; resolves to its last answer. */
export async function waitFor(pred, ms, everyMs = 250) {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await sleep(everyMs);
  return pred();
}

/** A seeded random source (FAULT_SEED=n replays a run); says its seed in the test's output. */
export function seeded(t) {
  const seed = Number(process.env.FAULT_SEED ?? Date.now() % 100_000);
  let rnd = seed;
  const random = () => ((rnd = (rnd * 48271) % 2147483647) / 2147483647);
  return {
    random,
    say: (more = "") => t.diagnostic(`seed ${seed} (FAULT_SEED=${seed} to replay)${more ? `: ${more}` : ""}`),
  };
}

/**
 * A dev server on a state directory and port of its own that a test can kill
 * (SIGKILL to its whole process group, workerd included) and start again on
 * both: its url stays the same. close() stops it and deletes the state.
 */
export async function crashableServer(name) {
  const state = mkdtempSync(join(tmpdir(), `relay-${name}-`));
  const port = await freePort();
  let server = await startOn(state, port);
  return {
    url: server.url,
    kill: () => server.stop(),
    async restart() {
      await sleep(500);
      server = await startOn(state, port);
    },
    close() {
      server.stop();
      rmSync(state, { recursive: true, force: true });
    },
  };
}

/** Starts the dev server on `state` and `port`, keeping the state: a killed server restarts on it. */
async function startOn(state, port) {
  // The port of a killed server can take a moment to be free again.
  for (let attempt = 0; ; attempt++) {
    try {
      return await startDevServer({ persistTo: state, keepState: true, port, observability: false });
    } catch (err) {
      if (attempt >= 3) throw err;
      await sleep(1000);
    }
  }
}

/** The flaky tests' shape: 35 users, 15 of them with a phone and a laptop (50 devices), 12 messages each in 20 s. */
export const STORM = { users: 35, twoDevices: 15, perUser: 12, ms: 20_000 };

/**
 * The flaky tests' users (named <prefix><i>-<run>) and their devices, each
 * behind a cutting proxy of its own: make(userName, deviceName, proxy)
 * returns the device's { client, cut(), drop(), ... }, to which `user` (the
 * user's index) is added. close() closes every proxy.
 */
export async function flakyDevices(server, prefix, make) {
  const run = Date.now().toString(36);
  const users = Array.from({ length: STORM.users }, (_, i) => `${prefix}${i}-${run}`);
  const devices = [];
  const proxies = [];
  for (let u = 0; u < STORM.users; u++) {
    for (const name of u < STORM.twoDevices ? ["phone", "laptop"] : ["phone"]) {
      const proxy = await chaosProxy(server.port);
      proxies.push(proxy);
      devices.push({ ...(await make(users[u], name, proxy)), user: u });
    }
  }
  return { users, devices, close: () => proxies.forEach((p) => p.close()) };
}

/**
 * The flaky tests' storm over `devices` ({ user, cut(), drop() }): each is cut
 * every 0.2-2 s, half the time abruptly (cut) and half by its client (drop),
 * while every one of `users` sends STORM.perUser messages to random others,
 * from a random device of its own, through send(device, toIndex, k). Resolves
 * with the number of cuts once the sends are done and a quarter of STORM.ms
 * more passed.
 */
export async function storm({ devices, users, random, send }) {
  const { perUser, ms: stormMs } = STORM;
  let storming = true;
  let cuts = 0;
  const chaos = devices.map(async (d) => {
    await sleep(random() * 1000);
    while (storming) {
      await sleep(200 + random() * 1800);
      if (!storming) break;
      cuts++;
      if (random() < 0.5) d.cut();
      else d.drop();
    }
  });
  const sending = users.map(async (_, u) => {
    const mine = devices.filter((d) => d.user === u);
    for (let k = 0; k < perUser; k++) {
      await sleep(random() * (stormMs / perUser));
      let to = Math.floor(random() * users.length);
      if (to === u) to = (to + 1) % users.length;
      send(mine[Math.floor(random() * mine.length)], to, k);
    }
  });
  await Promise.all(sending);
  await sleep(stormMs / 4);
  storming = false;
  await Promise.all(chaos);
  return cuts;
}

/**
 * A ChatClient (src/client/) as an app makes one, against the server at `base`:
 * end-to-end encryption on, errors collected into `errors`. Short waits
 * between connection attempts keep the tests' length bounded; the logic is the app's.
 */
export async function libraryClient({ base, user, device, store, socketFactory, errors }) {
  const lib = await clientLibrary();
  const c = new lib.ChatClient({
    baseUrl: base,
    user,
    device,
    token: () => tokenFor(base, user),
    store: store ?? new lib.MemoryStore(),
    ...(socketFactory ? { socketFactory } : {}),
    backoff: { baseMs: 100, maxMs: 1000 },
  });
  c.on("error", (e) => errors.push(`${user}/${device}: ${e.code} ${e.message}`));
  return c;
}
