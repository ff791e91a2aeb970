// The server's inspector (`wrangler dev --inspector-port`, Chrome DevTools
// protocol) during a bench run: the JS heap a scenario leaves behind (scenario
// 5) and, with `node bench/run.mjs --profile`, one CPU profile per scenario
// (open it in Chrome DevTools' Performance panel) and a printed top-N of self time.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Connects to the worker's inspector; resolves to { call(method, params) -> result, close() }. */
export async function connectInspector(port) {
  let targets = [];
  for (let i = 0; i < 50 && targets.length === 0; i++) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
    } catch {
      // not up yet
    }
    if (targets.length === 0) await sleep(200);
  }
  const url = targets.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  // The proxy accepts only DevTools origins (undici takes extra headers here).
  const ws = new WebSocket(url, { headers: { Origin: "https://devtools.devprod.cloudflare.dev" } });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`inspector socket ${url} failed`));
  });
  let nextId = 1;
  const waiting = new Map();
  ws.onmessage = (e) => {
    const msg = JSON.parse(String(e.data));
    const w = msg.id !== undefined ? waiting.get(msg.id) : undefined;
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${msg.error.message}`));
    else w.resolve(msg.result);
  };
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { call, close: () => ws.close() };
}

/**
 * Bytes of the worker's JS heap in use after a full garbage collection (taking
 * a heap snapshot forces one; this runtime does not answer
 * HeapProfiler.collectGarbage). All objects of the worker share one isolate.
 */
export async function jsHeapUsed(inspector) {
  await inspector.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  return (await inspector.call("Runtime.getHeapUsage")).usedSize;
}

/** A CPU profiler on an inspector connection: { start(), stop() -> profile }. */
export async function profilerOn(inspector) {
  const { call } = inspector;
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  return {
    start: () => call("Profiler.start"),
    stop: async () => (await call("Profiler.stop")).profile,
  };
}

const frameKey = (f) => `${f.functionName || "(anonymous)"} ${(f.url || "").split("/").pop()}:${f.lineNumber + 1}`;

/**
 * Inclusive time per function of a CDP profile (the function and all it called,
 * each function counted once per sample), largest first: which of our paths
 * (an ack, a hand-off, the alarm look) costs what, where self time scatters the
 * same cost over the runtime's native calls. Shares are of the samples that ran
 * JavaScript (not idle, GC or "(program)").
 */
export function topInclusive(profile, n = 30) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const sampleUs = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length);
  const incl = new Map();
  let busy = 0;
  for (const id of profile.samples) {
    const top = byId.get(id).callFrame.functionName;
    if (top === "(idle)" || top === "(program)" || top === "(garbage collector)") continue;
    busy += sampleUs;
    const seen = new Set();
    for (let node = byId.get(id); node; node = byId.get(parent.get(node.id))) {
      const key = frameKey(node.callFrame);
      if (key.startsWith("(root)") || seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + sampleUs);
    }
  }
  const rows = [...incl].sort((a, b) => b[1] - a[1]);
  return { busyMs: busy / 1000, top: rows.slice(0, n).map(([k, us]) => ({ fn: k, ms: us / 1000, share: us / Math.max(1, busy) })) };
}

/** Self time per function (and per file) of a CDP profile, largest first. */
export function topSelf(profile, n = 25) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const total = profile.endTime - profile.startTime;
  const counts = new Map();
  for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const sampleUs = total / Math.max(1, profile.samples.length);
  for (const [id, c] of counts) {
    const key = frameKey(byId.get(id).callFrame);
    self.set(key, (self.get(key) ?? 0) + c * sampleUs);
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]);
  const busy = rows.filter(([k]) => !k.startsWith("(idle)")).reduce((s, [, v]) => s + v, 0);
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    top: rows.slice(0, n).map(([k, us]) => ({ fn: k, ms: us / 1000, share: us / Math.max(1, busy) })),
  };
}
