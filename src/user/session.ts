// Opening a device's session on a fresh socket: hello, the gaps it can no
// longer fill, every inbox entry after its ack, then synced (PROTOCOL.md,
// "Connecting"). Frames leave in inbox order; the output gate holds them
// until whatever the connect wrote is durable.
import type { Env } from "../env";
import { signFrame } from "../media/url";
import { PROTOCOL_VERSION } from "../protocol";
import { projectFor } from "./e2ee";
import type { DeviceRow, Inbox } from "./inbox";
import { safeSend } from "./sockets";

export function openSession(ws: WebSocket, inbox: Inbox, env: Env, user: string, device: string, row: DeviceRow, now: number): void {
  safeSend(ws, JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, user, device, head: inbox.head, serverTime: now }));
  for (const gap of inbox.gapsFor(row, now)) safeSend(ws, JSON.stringify({ type: "gap", ...gap, reason: "expired" }));
  for (const frame of inbox.replay(device, row.acked)) {
    // Stored frames carry no media URL (each replay signs a fresh one) and an
    // e2ee entry goes out with only this device's ciphertext.
    safeSend(ws, projectFor(signFrame(frame, env, now), user, device));
  }
  safeSend(ws, JSON.stringify({ type: "synced", head: inbox.head }));
}
