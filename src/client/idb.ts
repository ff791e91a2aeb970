// ClientStore on IndexedDB, for browsers: one database per signed-in user, one
// object store of records. Typed structurally (the project's type check runs
// without the DOM library), against the small part of the IndexedDB API used.

import type { ClientStore } from "./store";

interface IdbRequest<T> {
  result: T;
  error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: (() => void) | null;
  onblocked: (() => void) | null;
}
interface IdbObjectStore {
  put(value: unknown, key: string): unknown;
  delete(key: string): unknown;
  clear(): unknown;
  getAll(): IdbRequest<unknown[]>;
  getAllKeys(): IdbRequest<string[]>;
}
interface IdbTransaction {
  objectStore(name: string): IdbObjectStore;
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  error: unknown;
}
interface IdbDatabase {
  objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string): unknown;
  transaction(store: string, mode: "readonly" | "readwrite", opts?: { durability?: "strict" | "relaxed" | "default" }): IdbTransaction;
  close(): void;
}
interface IdbFactory {
  open(name: string, version: number): IdbOpenRequest;
}

const STORE = "records";

export function indexedDbAvailable(): boolean {
  return typeof (globalThis as { indexedDB?: unknown }).indexedDB === "object";
}

export class IndexedDbStore implements ClientStore {
  private db: Promise<IdbDatabase> | null = null;

  /** `name`: the database, e.g. `relay-chat:<user>` (one per user, so accounts never mix). */
  constructor(private readonly name: string) {}

  private open(): Promise<IdbDatabase> {
    if (this.db) return this.db;
    const factory = (globalThis as { indexedDB?: IdbFactory }).indexedDB;
    if (!factory) return Promise.reject(new Error("IndexedDB is not available"));
    this.db = new Promise((resolve, reject) => {
      const req = factory.open(this.name, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error("IndexedDB open blocked by another tab"));
    });
    return this.db;
  }

  async loadAll(): Promise<Array<[string, unknown]>> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readonly");
    const store = tx.objectStore(STORE);
    const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())]);
    return keys.map((k, i) => [k, values[i]]);
  }

  async write(puts: Array<[string, unknown]>, deletes: string[]): Promise<void> {
    if (puts.length === 0 && deletes.length === 0) return;
    const db = await this.open();
    // "strict": the transaction completes only once the data is on disk, since
    // the client acknowledges inbox entries to the server right after.
    const tx = db.transaction(STORE, "readwrite", { durability: "strict" });
    const store = tx.objectStore(STORE);
    for (const k of deletes) store.delete(k);
    // Structured clone happens synchronously in put(): later mutations do not leak in.
    for (const [k, v] of puts) store.put(v, k);
    await complete(tx);
  }

  async clear(): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).clear();
    await complete(tx);
  }
}

function request<T>(req: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function complete(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
}
