// A test client for end-to-end encryption: one device of one user with its
// e2ee state (src/client/e2ee), its token and its socket, doing what a real
// client does: publish keys, learn device lists, fetch bundles, encrypt per
// device, retry on devices_changed with the same id, decrypt what arrives.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import {
  E2eeDevice,
  E2eeError,
  bundlesByAddress,
  decodeContent,
  encodeContent,
  type Ciphertext,
  type E2eeContent,
  type PublicBundle,
  type PublishKeys,
} from "../src/client/e2ee";
import type { MessageFrame } from "../src/protocol";
import { call, connect, sleep, token, type TestSocket } from "./helpers";

type Outcome = { type: "sent"; msg: string; ts: number } | { type: "error"; code: string; missing?: string[]; extra?: string[] };

export class Phone {
  sock: TestSocket | null = null;
  /** Device lists this client believes current, per user (refreshed by devices_changed). */
  readonly known = new Map<string, string[]>();

  private constructor(
    readonly user: string,
    readonly device: string,
    readonly token: string,
    public dev: E2eeDevice,
  ) {}

  /** A new device: keys made, published, socket connected. */
  static async setup(user: string, device = "phone", prekeys = 100): Promise<Phone> {
    const p = new Phone(user, device, await token(user), E2eeDevice.create(user, device));
    await p.publish(prekeys);
    await p.connect();
    return p;
  }

  get address(): string {
    return `${this.user}/${this.device}`;
  }

  async publish(prekeys = 100): Promise<void> {
    const res = await call(`/v1/keys/${this.device}`, { method: "PUT", token: this.token, json: this.dev.publishBundle(prekeys) });
    expect(res.status, await res.clone().text()).toBe(200);
  }

  async connect(): Promise<TestSocket> {
    this.sock = await connect(this.user, this.device, this.token);
    return this.sock;
  }

  disconnect(): void {
    this.sock?.close();
    this.sock = null;
  }

  /** Saves and reloads the e2ee state, as a client does across app restarts. */
  reload(): void {
    this.dev = E2eeDevice.fromJSON(JSON.parse(JSON.stringify(this.dev.toJSON())));
  }

  async devicesOf(user: string): Promise<string[]> {
    const cached = this.known.get(user);
    if (cached) return cached;
    const res = await call(`/v1/users/${user}/devices`, { token: this.token });
    const body = (await res.json()) as { devices: Array<{ device: string }> };
    const list = body.devices.map((d) => d.device);
    this.known.set(user, list);
    return list;
  }

  /** Bundles for the addresses that have no session yet (claims one one-time prekey each). */
  async bundlesFor(addrs: string[]): Promise<Record<string, PublicBundle>> {
    const byUser = new Map<string, string[]>();
    for (const a of this.dev.needsBundle(addrs)) {
      const [u, d] = a.split("/") as [string, string];
      byUser.set(u, [...(byUser.get(u) ?? []), d]);
    }
    const out: Record<string, PublicBundle> = {};
    for (const [u, devices] of byUser) {
      const res = await call(`/v1/users/${u}/keys?devices=${devices.join(",")}`, { token: this.token });
      expect(res.status).toBe(200);
      Object.assign(out, bundlesByAddress((await res.json()) as { user: string; devices: PublicBundle[] }));
    }
    return out;
  }

  async recipientsFor(peer: string): Promise<string[]> {
    const theirs = (await this.devicesOf(peer)).map((d) => `${peer}/${d}`);
    const mine = (await this.devicesOf(this.user)).filter((d) => d !== this.device).map((d) => `${this.user}/${d}`);
    return [...theirs, ...mine];
  }

  /**
   * Sends encrypted content to `peer` and waits for `sent`. On devices_changed
   * it keeps the ciphertexts of devices still there (their ratchets already
   * moved), encrypts for the missing ones, drops the extra ones and resends
   * with the same id. Returns the sent frame and the number of attempts.
   */
  async send(peer: string, id: string, content: E2eeContent, attachments?: string[]): Promise<{ msg: string; attempts: number; frame: { id: string } & Record<string, unknown> }> {
    const plaintext = encodeContent(content);
    const addrs = await this.recipientsFor(peer);
    const recipients: Record<string, Ciphertext> = this.dev.encryptFor(addrs, plaintext, await this.bundlesFor(addrs)).recipients;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const e2ee = { v: 1, sender: this.device, recipients: { ...recipients }, ...(attachments ? { attachments } : {}) };
      const frame = { type: "send", id, to: { user: peer }, e2ee };
      const outcome = await this.sendRaw(frame);
      if (outcome.type === "sent") return { msg: outcome.msg, attempts: attempt, frame };
      if (outcome.code !== "devices_changed") throw new Error(`send failed: ${outcome.code}`);
      for (const a of outcome.extra ?? []) {
        delete recipients[a];
        this.dev.forgetDevice(a);
      }
      for (const a of [...(outcome.missing ?? []), ...(outcome.extra ?? [])]) {
        const [u, d] = a.split("/") as [string, string];
        const list = (this.known.get(u) ?? []).filter((x) => x !== d);
        this.known.set(u, outcome.missing?.includes(a) ? [...list, d] : list);
      }
      const missing = outcome.missing ?? [];
      Object.assign(recipients, this.dev.encryptFor(missing, plaintext, await this.bundlesFor(missing)).recipients);
    }
    throw new Error("devices kept changing");
  }

  /** Sends any frame carrying `id` and waits for its `sent` or its error. */
  async sendRaw(frame: { id: string } & Record<string, unknown>): Promise<Outcome> {
    const sock = this.sock!;
    sock.send(frame);
    for (let waited = 0; waited < 5000; waited += 10) {
      const i = sock.frames.findIndex((f) => (f.type === "sent" && f.id === frame.id) || (f.type === "error" && f.ref === frame.id));
      if (i >= 0) {
        const [f] = sock.frames.splice(i, 1);
        if (f!.type === "sent") return { type: "sent", msg: f!.msg, ts: f!.ts };
        if (f!.type === "error") return { type: "error", code: f!.code, missing: f!.missing, extra: f!.extra };
      }
      await sleep(10);
    }
    throw new Error(`no answer to ${frame.id}`);
  }

  /** The next message frame (optionally with this client id). */
  async nextMessage(id?: string): Promise<MessageFrame> {
    return this.sock!.next("message", (m) => id === undefined || m.id === id);
  }

  /** Decrypts a message frame's e2ee content. */
  open(m: MessageFrame): E2eeContent {
    expect(m.e2ee, "message carries e2ee").toBeDefined();
    return decodeContent(this.dev.decryptMessage(m.from, m.e2ee!).plaintext);
  }

  async receiveText(id?: string): Promise<string | undefined> {
    const m = await this.nextMessage(id);
    return this.open(m).text;
  }
}

// ---- helpers for looking at what the server stored, and at ciphertexts ----

export const stub = (user: string) => env.USERS.getByName(user);

/** Every row of every table of a user's object, and its KV storage, as one string. */
export async function dumpStorage(user: string): Promise<string> {
  return runInDurableObject(stub(user), async (_o, state) => {
    const tables = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'")
      .toArray()
      .map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(["inbox", "key_devices", "one_time_prekeys", "sent_ids", "outbox"]));
    const rows = tables.map((t) => JSON.stringify(state.storage.sql.exec(`SELECT * FROM "${t}"`).toArray()));
    const kv = JSON.stringify([...(await state.storage.list()).entries()]);
    return rows.join("\n") + kv;
  });
}

export async function dumpR2(): Promise<string> {
  const listed = await env.MEDIA.list();
  const parts: string[] = [];
  for (const o of listed.objects) {
    const body = await env.MEDIA.get(o.key);
    parts.push(new TextDecoder("latin1").decode(await body!.arrayBuffer()));
  }
  return parts.join("\n");
}

export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof E2eeError) return err.code;
    throw err;
  }
  return "no error";
}

export function flipByte(c: Ciphertext, at: number): Ciphertext {
  const raw = Uint8Array.from(atob(c.body), (ch) => ch.charCodeAt(0));
  raw[at < 0 ? raw.length + at : at]! ^= 0x01;
  let s = "";
  for (const b of raw) s += String.fromCharCode(b);
  return { type: c.type, body: btoa(s) };
}

/** A bundle as the server would hand it out, straight from a device (crypto-level tests). */
export function bundleOf(p: PublishKeys, device: string, otk = 0): PublicBundle {
  return { device, identityKey: p.identityKey, signingKey: p.signingKey, signedPrekey: p.signedPrekey, oneTimePrekey: p.oneTimePrekeys[otk] };
}
