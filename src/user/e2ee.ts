// The server's part of end-to-end encrypted one-to-one messages. The server
// never decrypts; it checks that a send carries one ciphertext for exactly the
// current devices of both parties (so no device is silently left out), splits
// the map between the two users' inboxes, and gives each device only its own
// ciphertext when it pushes or replays an inbox entry.
//
// Storage choice: the inbox keeps ONE entry per message (one seq for all the
// user's devices) holding the map of this user's devices' ciphertexts, and
// projectFor() cuts it down per device at push/replay time. Per-device rows
// would need per-device seqs or a side table joined on replay, for no gain:
// a device can only decrypt its own entry anyway.
import { AppError } from "../errors";
import type { E2eeSend } from "../protocol";

/** "user/device" */
export function deviceAddress(user: string, device: string): string {
  return `${user}/${device}`;
}

/**
 * Refuses a one-to-one e2ee send whose recipient set is not exactly the peer's
 * current devices plus the sender's other current devices: `devices_changed`
 * with {missing, extra}, nothing stored. The client fetches the missing
 * bundles, drops the extra ones and sends again with the same id.
 */
export function checkRecipients(e2ee: E2eeSend, sendingDevice: string, self: string, ownDevices: string[], peer: string, peerDevices: string[]): void {
  if (e2ee.sender !== sendingDevice) throw new AppError("bad_frame", "e2ee.sender: must be the device that sends the frame");
  if (peerDevices.length === 0) throw new AppError("not_found", `${peer} has no devices with published keys: cannot send encrypted`);
  const expected = new Set([
    ...peerDevices.map((d) => deviceAddress(peer, d)),
    ...ownDevices.filter((d) => d !== sendingDevice).map((d) => deviceAddress(self, d)),
  ]);
  const given = Object.keys(e2ee.recipients ?? {});
  const missing = [...expected].filter((a) => !given.includes(a)).sort();
  const extra = given.filter((a) => !expected.has(a)).sort();
  if (missing.length > 0 || extra.length > 0) {
    throw new AppError("devices_changed", "the devices of this chat changed: encrypt for the missing ones, drop the extra ones, send again with the same id", 409, {
      missing,
      extra,
    });
  }
}

/** The part of the map that belongs in `user`'s inbox: that user's devices only. */
export function recipientsOf(e2ee: E2eeSend, user: string): E2eeSend {
  const prefix = `${user}/`;
  const recipients: NonNullable<E2eeSend["recipients"]> = {};
  for (const [addr, c] of Object.entries(e2ee.recipients ?? {})) if (addr.startsWith(prefix)) recipients[addr] = c;
  const part: E2eeSend = { v: e2ee.v, sender: e2ee.sender, recipients };
  if (e2ee.attachments !== undefined) part.attachments = e2ee.attachments;
  return part;
}

type Pairwise = { v: number; sender: string; recipients?: Record<string, { type: string; body: string }>; attachments?: string[] };

function project(e: Pairwise, addr: string): Record<string, unknown> {
  const mine = e.recipients && Object.hasOwn(e.recipients, addr) ? e.recipients[addr] : undefined;
  const out: Record<string, unknown> = mine ? { v: e.v, sender: e.sender, type: mine.type, body: mine.body } : { v: e.v, sender: e.sender };
  if (e.attachments !== undefined) out.attachments = e.attachments;
  return out;
}

/**
 * An inbox frame as one device sees it: an `e2ee.recipients` map (on a message,
 * or on an event such as an encrypted edit) becomes that device's own
 * {type, body}, or no ciphertext at all if it was not a recipient.
 */
export function projectFor(json: string, user: string, device: string): string {
  if (!json.includes('"recipients"')) return json; // cheap: most frames carry no map
  const frame = JSON.parse(json) as { e2ee?: Pairwise; event?: { e2ee?: Pairwise } };
  const addr = deviceAddress(user, device);
  let changed = false;
  if (frame.e2ee?.recipients) {
    frame.e2ee = project(frame.e2ee, addr) as Pairwise;
    changed = true;
  }
  if (frame.event?.e2ee?.recipients) {
    frame.event.e2ee = project(frame.event.e2ee, addr) as Pairwise;
    changed = true;
  }
  return changed ? JSON.stringify(frame) : json;
}
