// Percentiles and small helpers for the benchmark's figures.
import { groupProcesses, workerdOf } from "./procs.mjs";

/** { n, p50, p95, p99, max, mean } of a list of milliseconds (nulls when empty). */
export function summarize(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { n: 0, p50: null, p95: null, p99: null, max: null, mean: null };
  // Nearest-rank percentile: the smallest value with at least p% of samples at or below it.
  const pct = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: pct(50), p95: pct(95), p99: pct(99), max: s[s.length - 1], mean };
}

export function ratio(a, b) {
  if (a === null || b === null || a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

/** Runs fn(i) for i in [0, n) with at most `limit` running at once. */
export async function pool(n, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** CPU and memory of the server's processes, for before/after deltas. */
export function serverSample(server) {
  const procs = groupProcesses(server.pid);
  const { runtime, proxy } = workerdOf(server);
  const ticks = (pid) => procs.find((p) => p.pid === pid)?.ticks ?? 0;
  return {
    at: performance.now(),
    groupTicks: procs.reduce((a, p) => a + p.ticks, 0),
    runtimeTicks: ticks(runtime),
    proxyTicks: ticks(proxy),
    client: process.cpuUsage(),
  };
}

/** Clock ticks per second of /proc/<pid>/stat on Linux (USER_HZ, 100 on every mainstream kernel). */
export const HZ = 100;

/** CPU spent between two samples: server ms (group and runtime workerd) and client %. */
export function cpuBetween(a, b) {
  const wall = b.at - a.at;
  const clientMs = (b.client.user - a.client.user + b.client.system - a.client.system) / 1000;
  return {
    wallMs: wall,
    serverMs: ((b.groupTicks - a.groupTicks) * 1000) / HZ,
    runtimeMs: ((b.runtimeTicks - a.runtimeTicks) * 1000) / HZ,
    proxyMs: ((b.proxyTicks - a.proxyTicks) * 1000) / HZ,
    clientPct: wall > 0 ? (100 * clientMs) / wall : null,
  };
}
