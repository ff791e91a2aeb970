// A tiny typed event emitter (no DOM EventTarget, so it runs the same in
// browsers, Node and workerd). A throwing listener never breaks the client.

export class Emitter<Events extends object> {
  private listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof Events>(name: K, fn: (payload: Events[K]) => void): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn as (payload: never) => void);
    return () => set.delete(fn as (payload: never) => void);
  }

  /** Resolves with the first payload matching `pred` (rejects after `timeoutMs`). */
  once<K extends keyof Events>(name: K, pred: (payload: Events[K]) => boolean = () => true, timeoutMs = 10_000): Promise<Events[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`timed out waiting for ${String(name)}`));
      }, timeoutMs);
      const off = this.on(name, (p) => {
        if (!pred(p)) return;
        clearTimeout(timer);
        off();
        resolve(p);
      });
    });
  }

  protected emit<K extends keyof Events>(name: K, payload: Events[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (payload: Events[K]) => void)(payload);
      } catch (err) {
        console.error(`listener for ${String(name)} threw`, err);
      }
    }
  }
}
