// A device's socket: its attachment (what survives hibernation) and a send that
// never throws. Attachments are read defensively: an old or foreign shape is
// treated as no attachment.

export interface DeviceAttachment {
  device: string;
  /** When the token that opened the socket expires (ms). */
  expiresAt: number;
  connectedAt: number;
}

export function attachmentOf(ws: WebSocket): DeviceAttachment | null {
  try {
    const a = ws.deserializeAttachment() as Partial<DeviceAttachment> | null;
    if (a && typeof a.device === "string" && typeof a.expiresAt === "number") {
      return { device: a.device, expiresAt: a.expiresAt, connectedAt: a.connectedAt ?? 0 };
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
