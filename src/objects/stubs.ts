// Stubs to other Durable Objects, kept for reuse. getByName() hashes the name
// and builds a new stub on every call, which a hand-off pays per message (per
// member in a group fan-out). Calls on one stub also keep the order they were
// made in (E-order), which fresh stubs do not promise.
//
// A stub that threw is dropped: after an exception a stub fails every call
// made on it later, so the next call builds a fresh one.
/** Most stubs kept per object; the oldest goes first. */
const MAX_STUBS = 256;

export class Stubs<T extends Rpc.DurableObjectBranded> {
  private readonly stubs = new Map<string, DurableObjectStub<T>>();

  constructor(private readonly ns: DurableObjectNamespace<T>) {}

  /** Runs `fn` on the stub for `name`; a stub whose call throws is not used again. */
  async call<R>(name: string, fn: (stub: DurableObjectStub<T>) => Promise<R>): Promise<R> {
    let stub = this.stubs.get(name);
    if (stub === undefined) {
      stub = this.ns.getByName(name);
      if (this.stubs.size >= MAX_STUBS) this.stubs.delete(this.stubs.keys().next().value!);
      this.stubs.set(name, stub);
    }
    try {
      return await fn(stub);
    } catch (err) {
      if (this.stubs.get(name) === stub) this.stubs.delete(name);
      throw err;
    }
  }
}
