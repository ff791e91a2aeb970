// Stalls of the bench process itself: a timer that should fire every 10 ms and
// is late by more than STALL_MS means the event loop was blocked (GC, client
// work such as key generation). A latency sample that overlaps such a stall
// measures the client, not the server; scenarios use this to say so.
const TICK_MS = 10;
const STALL_MS = 100;

/** Starts watching; returns { overlaps(t0, t1) -> ms of stall inside [t0, t1], stop() }. */
export function watchStalls() {
  const stalls = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last > TICK_MS + STALL_MS) stalls.push([last, now]);
    last = now;
  }, TICK_MS);
  timer.unref?.();
  return {
    overlaps(t0, t1) {
      let ms = 0;
      for (const [a, b] of stalls) if (b > t0 && a < t1) ms += Math.min(b, t1) - Math.max(a, t0);
      return ms;
    },
    stop: () => clearInterval(timer),
  };
}
