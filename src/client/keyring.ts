// This device's end-to-end keys and what it knows of other devices. Holds the
// E2eeDevice (src/client/e2ee/), publishes its keys on first start and refills
// one-time prekeys when the server runs low; keeps users' current device lists
// (cached briefly, corrected by devices_changed); fetches bundles for new
// sessions; remembers the identity keys each contact had, so a change is
// reported (their safety number changed) and a re-keyed device gets a new
// session; computes safety numbers. Its state is two store records written
// with everything else ("e2ee:device", "e2ee:meta"): a reload keeps keys and
// sessions. Used by Secure (secure.ts) and ChatClient.
import type { Api, DeviceIdentity } from "./api";
import { E2eeDevice, MAX_ONE_TIME_PREKEYS, address, bundlesByAddress, safetyNumber, type DeviceJSON, type PublicBundle } from "./e2ee";
import { ApiError } from "./api";

/** Upload more one-time prekeys when the server holds fewer than this. */
export const PREKEY_REFILL_BELOW = 25;
/** A new signed prekey this often (Signal: weekly to monthly). */
export const SIGNED_PREKEY_ROTATE_MS = 7 * 24 * 60 * 60 * 1000;
/** A user's device list is trusted this long; one-to-one sends are corrected by devices_changed anyway. */
export const DEVICE_LIST_TTL_MS = 60_000;
/**
 * Device lists fetched at once when many are due (a big group's post needs one
 * per member, and there is no bulk endpoint): a crowd of parallel requests only
 * queues up in the browser and on the server.
 */
export const DEVICE_LIST_CONCURRENCY = 8;

interface KeyringMeta {
  /** This device's keys are in the server's directory. */
  published: boolean;
  rotatedAt: number;
  /** Per contact: the identity keys of their devices when last looked at (sorted, joined). */
  identities: Record<string, string>;
}

export interface KeyringHost {
  readonly api: Api;
  record(key: string): unknown;
  setRecord(key: string, value: unknown): void;
  /** Writes every pending change to the store. */
  flush(): Promise<void>;
  /** A contact's keys changed after this device had seen them. */
  identityChanged(user: string): void;
}

export class Keyring {
  readonly device: E2eeDevice;
  private readonly meta: KeyringMeta;
  private readonly lists = new Map<string, { devices: DeviceIdentity[]; at: number }>();

  constructor(
    private readonly h: KeyringHost,
    readonly user: string,
    deviceId: string,
  ) {
    const saved = h.record("e2ee:device") as DeviceJSON | undefined;
    const meta = h.record("e2ee:meta") as KeyringMeta | undefined;
    if (saved && saved.user === user && saved.device === deviceId) {
      this.device = E2eeDevice.fromJSON(saved);
      this.meta = meta ?? { published: false, rotatedAt: Date.now(), identities: {} };
    } else {
      // No keys for this device in the store: new ones (publishing them replaces what the server had).
      this.device = E2eeDevice.create(user, deviceId);
      this.meta = { published: false, rotatedAt: Date.now(), identities: meta?.identities ?? {} };
    }
    this.changed();
  }

  get published(): boolean {
    return this.meta.published;
  }

  /** The device's state changed (encrypt, decrypt, prekeys): written with the next flush. */
  changed(): void {
    this.h.setRecord("e2ee:device", () => this.device.toJSON());
    this.h.setRecord("e2ee:meta", this.meta);
  }

  /**
   * Publishes the keys if they are not on the server, rotates the signed prekey
   * weekly and tops up one-time prekeys. The private halves are stored before
   * the server can hand out a public one.
   */
  async maintain(now = Date.now()): Promise<void> {
    const id = this.device.device;
    if (!this.meta.published) {
      // The server may hold these keys already (the record of publishing them was
      // lost with a reload): then only what it lacks goes up, and a full bundle on
      // top of its 100 would be refused on every start.
      const held = await this.h.api.keyCount(id).then(
        (r) => r.count,
        (err: unknown) => {
          if (err instanceof ApiError && err.status === 404) return 0;
          throw err;
        },
      );
      await this.publish(this.device.publishBundle(MAX_ONE_TIME_PREKEYS - held));
      this.meta.rotatedAt = now;
      this.changed();
      // Those prekeys may have been another identity's (a device re-keyed under its old
      // id): the server dropped them with it. The count below tops up what is missing.
    } else if (now - this.meta.rotatedAt > SIGNED_PREKEY_ROTATE_MS) {
      this.device.rotateSignedPrekey();
      this.meta.rotatedAt = now;
      await this.publish(this.device.publishBundle(0));
    }
    let count: number;
    try {
      count = (await this.h.api.keyCount(id)).count;
    } catch (err) {
      // The server no longer lists this device (removed, or a wiped server): publish again.
      if (err instanceof ApiError && err.status === 404) {
        this.meta.published = false;
        return this.maintain(now);
      }
      throw err;
    }
    if (count < PREKEY_REFILL_BELOW) await this.publish(this.device.publishBundle(MAX_ONE_TIME_PREKEYS - count));
  }

  private async publish(body: ReturnType<E2eeDevice["publishBundle"]>): Promise<void> {
    this.changed();
    await this.h.flush();
    await this.h.api.publishKeys(this.device.device, body);
    this.meta.published = true;
    this.changed();
    // Stored now, not with whatever writes next: a reload before that would publish again.
    await this.h.flush();
  }

  // ---- other devices -----------------------------------------------------------------

  /** A user's current devices (with keys); cached for `maxAgeMs`, an empty list never. */
  async devicesOf(user: string, maxAgeMs = DEVICE_LIST_TTL_MS): Promise<DeviceIdentity[]> {
    const cached = this.lists.get(user);
    if (cached && cached.devices.length > 0 && Date.now() - cached.at <= maxAgeMs) return cached.devices;
    const devices = await this.h.api.devices(user);
    this.lists.set(user, { devices, at: Date.now() });
    this.note(user, devices);
    return devices;
  }

  /** Several users' device lists (as devicesOf), in order, at most DEVICE_LIST_CONCURRENCY requests at a time. */
  async devicesOfMany(users: string[], maxAgeMs = DEVICE_LIST_TTL_MS): Promise<Array<readonly [string, DeviceIdentity[]]>> {
    const out: Array<readonly [string, DeviceIdentity[]]> = new Array(users.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < users.length) {
        const i = next++;
        out[i] = [users[i]!, await this.devicesOf(users[i]!, maxAgeMs)];
      }
    };
    await Promise.all(Array.from({ length: Math.min(DEVICE_LIST_CONCURRENCY, users.length) }, worker));
    return out;
  }

  /** Forgets what is cached about a user's devices (devices_changed named them). */
  forgetList(user: string): void {
    this.lists.delete(user);
  }

  /** Addresses of a one-to-one chat's devices: the peer's, and this user's other ones. */
  async chatAddresses(peer: string, maxAgeMs = DEVICE_LIST_TTL_MS): Promise<{ peer: string[]; own: string[] }> {
    const [theirs, mine] = await Promise.all([this.devicesOf(peer, maxAgeMs), this.devicesOf(this.user, maxAgeMs)]);
    return {
      peer: theirs.map((d) => address(peer, d.device)),
      own: mine.filter((d) => d.device !== this.device.device).map((d) => address(this.user, d.device)),
    };
  }

  /** Bundles (claiming a one-time prekey each) for the addresses without a session. */
  async bundlesFor(addrs: string[]): Promise<Record<string, PublicBundle>> {
    const byUser = new Map<string, string[]>();
    for (const a of this.device.needsBundle(addrs)) {
      const [u, d] = a.split("/") as [string, string];
      byUser.set(u, [...(byUser.get(u) ?? []), d]);
    }
    const out: Record<string, PublicBundle> = {};
    await Promise.all(
      [...byUser].map(async ([u, devices]) => {
        const body = await this.h.api.bundles(u, devices);
        Object.assign(out, bundlesByAddress(body));
      }),
    );
    return out;
  }

  /**
   * Compares a fresh device list with what this device knew: a device whose
   * identity key changed loses its session (a new one starts from its bundle),
   * and a contact whose keys changed is reported once.
   */
  private note(user: string, devices: DeviceIdentity[]): void {
    for (const d of devices) {
      const addr = address(user, d.device);
      const known = this.device.remoteIdentity(addr);
      if (known !== null && known !== d.identityKey) this.device.forgetDevice(addr);
    }
    if (user === this.user) return;
    const now = devices.map((d) => `${d.device}:${d.identityKey}:${d.signingKey}`).sort().join("\n");
    const before = this.meta.identities[user];
    if (before === now) return;
    this.meta.identities[user] = now;
    this.changed();
    // First contact, or a user who set up encryption only now: nothing to warn about.
    if (before) this.h.identityChanged(user);
  }

  /** A message started a session with a new identity key: look at the user's devices again. */
  async recheck(user: string): Promise<void> {
    this.forgetList(user);
    await this.devicesOf(user, 0);
  }

  /** The 60 digits two people compare: over both users' current device keys. */
  async safetyNumber(peer: string): Promise<{ digits: string; mine: number; theirs: number }> {
    const [mine, theirs] = await Promise.all([this.devicesOf(this.user, 0), this.devicesOf(peer, 0)]);
    return { digits: safetyNumber({ user: this.user, devices: mine }, { user: peer, devices: theirs }), mine: mine.length, theirs: theirs.length };
  }
}
