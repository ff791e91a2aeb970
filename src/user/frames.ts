// Reading a client frame: the text of a socket message becomes a validated
// ClientFrame or a protocol error (PROTOCOL.md's codes). Nothing here touches
// storage, so a bad frame costs the object nothing but the error it sends back.
import { AppError } from "../errors";
import { MAX_FRAME_BYTES } from "../limits";
import { CLIENT_FRAME_TYPES, ClientFrame, describeIssues } from "../protocol";

/** A message that is JSON within the size limit, or the error frame's code and text. */
export type Decoded = { ok: true; raw: unknown; ref: string | undefined; type: unknown } | { ok: false; code: string; message: string };

/** The first checks, before the rate limiter: text, size, JSON. */
export function decodeFrame(message: string | ArrayBuffer): Decoded {
  if (typeof message !== "string") return { ok: false, code: "unsupported_frame", message: "binary frames are not supported; send JSON text" };
  // Only a frame that could be over the limit in UTF-8 is encoded to find out.
  if (message.length > MAX_FRAME_BYTES || (message.length * 3 > MAX_FRAME_BYTES && new TextEncoder().encode(message).length > MAX_FRAME_BYTES)) {
    return { ok: false, code: "too_large", message: `frames are at most ${MAX_FRAME_BYTES} bytes` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(message);
  } catch {
    return { ok: false, code: "bad_json", message: "frame is not valid JSON" };
  }
  return { ok: true, raw, ref: refOf(raw), type: typeOf(raw) };
}

/** Validates a decoded frame against the protocol; throws AppError("bad_frame") with what is wrong. */
export function parseFrame(raw: unknown): ClientFrame {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new AppError("bad_frame", "frame: must be a JSON object");
  const type = (raw as Record<string, unknown>).type;
  if (typeof type !== "string") throw new AppError("bad_frame", "type: required");
  if (!(CLIENT_FRAME_TYPES as readonly string[]).includes(type)) throw new AppError("bad_frame", `type: unknown frame type "${type.slice(0, 32)}"`);
  const parsed = ClientFrame.safeParse(raw);
  if (!parsed.success) throw new AppError("bad_frame", describeIssues(parsed.error));
  return parsed.data;
}

/** What an error about this frame refers to: its client id, or the message it names. */
function refOf(raw: unknown): string | undefined {
  if (raw && typeof raw === "object") {
    const r = raw as Record<string, unknown>;
    if (typeof r.id === "string" && r.id.length <= 64) return r.id;
    if (typeof r.msg === "string" && r.msg.length <= 64) return r.msg;
  }
  return undefined;
}

function typeOf(raw: unknown): unknown {
  return raw && typeof raw === "object" ? (raw as Record<string, unknown>).type : undefined;
}
