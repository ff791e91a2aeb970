// The options of a ChatClient, and the ids it makes. Kept apart from sync.ts so
// that file holds behaviour only.
import type { TokenSource, FetchLike } from "./api";
import type { BackoffOptions, SocketFactory } from "./connection";
import type { EphemeralOptions } from "./ephemeral";
import type { Uploader } from "./media";
import type { ClientStore } from "./store";

export interface ChatClientOptions {
  /** Origin of the server, e.g. "https://chat.example.com" (ws/wss is derived). */
  baseUrl: string;
  /** The signed-in user (the token's `sub`). */
  user: string;
  /** A JWT, or a function returning a fresh one (called per connect and request). */
  token: TokenSource;
  /** Device id; default: the one in the store, else a new random one. */
  device?: string;
  store?: ClientStore;
  socketFactory?: SocketFactory;
  fetch?: FetchLike;
  uploader?: Uploader;
  backoff?: Partial<BackoffOptions>;
  /** Acks are batched: sent this long after the first unacknowledged entry, or at `synced`. */
  ackDelayMs?: number;
  ephemeral?: Partial<EphemeralOptions>;
  /** Keepalive: ping after this much silence, give up after the pong timeout. */
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /** How long a connection attempt may take to say hello (token, socket, hello); default 15 s. */
  helloTimeoutMs?: number;
  /**
   * End-to-end encryption (default true): keys are made and published on first
   * start, and every message is encrypted when all its recipients have keys.
   */
  e2ee?: boolean;
}

/** Ids for devices and messages: prefix, time and randomness, within the protocol's id set. */
export function randomId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `${prefix}${Date.now().toString(36)}${[...bytes].map((b) => (b % 36).toString(36)).join("")}`;
}
