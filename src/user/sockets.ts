// A device's socket: its attachment (what survives hibernation) and a send that
// never throws. Attachments are read defensively: an old or foreign shape is
// treated as no attachment.

export interface DeviceAttachment {
  device: string;
  /** When the token that opened the socket expires (ms). */
  expiresAt: number;
  connectedAt: number;
  /** The client's connection number (`conn`), when it sent one. */
  conn?: number;
}

/**
 * Whether socket `a` of a device wins over socket `b` of the same device: the
 * higher connection number when both have one (the order the client opened
 * them in), else the one accepted later.
 */
export function supersedes(a: DeviceAttachment, b: DeviceAttachment): boolean {
  if (a.conn !== undefined && b.conn !== undefined && a.conn !== b.conn) return a.conn > b.conn;
  return a.connectedAt > b.connectedAt;
}

/**
 * Attachments already read. A socket's attachment is written once, when it is
 * accepted, and never changes; reading it is a structured-clone decode that ran
 * for every socket several times per message (alarm, push, replaced checks).
 * After hibernation the sockets are new objects and are read again.
 */
const attachments = new WeakMap<WebSocket, DeviceAttachment>();

export function attachmentOf(ws: WebSocket): DeviceAttachment | null {
  const known = attachments.get(ws);
  if (known) return known;
  try {
    const a = ws.deserializeAttachment() as Partial<DeviceAttachment> | null;
    if (a && typeof a.device === "string" && typeof a.expiresAt === "number") {
      // Shared by every caller: frozen, so nobody changes it in place.
      const read: DeviceAttachment = Object.freeze({
        device: a.device,
        expiresAt: a.expiresAt,
        connectedAt: a.connectedAt ?? 0,
        ...(typeof a.conn === "number" ? { conn: a.conn } : {}),
      });
      attachments.set(ws, read);
      return read;
    }
  } catch {
    // fall through
  }
  return null;
}

/** Sends a frame; a closing socket may throw, and delivery is confirmed by ack anyway. */
export function safeSend(ws: WebSocket, data: string): boolean {
  try {
    ws.send(data);
    return true;
  } catch {
    return false;
  }
}

export function safeClose(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed
  }
}

export function errorFrame(code: string, message: string, ref?: string, details?: Record<string, unknown>): string {
  const frame = ref === undefined ? { type: "error", code, message } : { type: "error", code, message, ref };
  return JSON.stringify(details === undefined ? frame : { ...frame, ...details });
}
