// Where a client keeps its state so a restart or a page reload loses nothing:
// the last applied inbox seq, the queue of sends not yet confirmed by `sent`,
// conversations and their messages. Records are JSON values under string keys;
// `write` applies puts and deletes atomically, and the client acknowledges an
// inbox entry only after the write holding it resolved.
//
// Key layout (owned by the client): "meta", "out:<id>", "conv:<chatKey>",
// "msg:<chatKey>|<from>|<id>".

export interface ClientStore {
  /** Every record (a chat client's state fits in memory; it is loaded once at start). */
  loadAll(): Promise<Array<[string, unknown]>>;
  /** Applies all puts and deletes, or none of them. */
  write(puts: Array<[string, unknown]>, deletes: string[]): Promise<void>;
  /** Removes everything (sign out). */
  clear(): Promise<void>;
}

/** The default store: lives as long as the process (tests, Node bots). */
export class MemoryStore implements ClientStore {
  private readonly records = new Map<string, string>();

  async loadAll(): Promise<Array<[string, unknown]>> {
    return [...this.records].map(([k, v]) => [k, JSON.parse(v) as unknown]);
  }

  async write(puts: Array<[string, unknown]>, deletes: string[]): Promise<void> {
    // Serialised copies: the caller keeps mutating its objects after the write.
    const encoded = puts.map(([k, v]) => [k, JSON.stringify(v)] as const);
    for (const k of deletes) this.records.delete(k);
    for (const [k, v] of encoded) this.records.set(k, v);
  }

  async clear(): Promise<void> {
    this.records.clear();
  }

  get size(): number {
    return this.records.size;
  }
}
