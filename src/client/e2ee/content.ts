// What is inside an end-to-end encrypted message: UTF-8 JSON that only the
// devices of the chat can read. The server never sees it; its format is a
// contract between clients (docs/PROTOCOL.md, "End-to-end encryption").
import { fromUtf8, utf8 } from "./bytes";
import { E2eeError } from "./errors";
import type { SenderKeyDistribution } from "./senderkeys";

export interface EncryptedMedia {
  /** The upload's id (POST /v1/media of the ciphertext, application/octet-stream). */
  id: string;
  /** The plaintext's MIME type, e.g. image/jpeg. */
  type: string;
  /** Plaintext size in bytes. */
  size: number;
  /** Base64 AES-256-GCM key, fresh for this file. */
  key: string;
  /** Hex SHA-256 of the plaintext: checked after decrypting. */
  sha256: string;
  caption?: string;
  width?: number;
  height?: number;
  durationMs?: number;
  /** Base64 thumbnail (plaintext: it is inside the encrypted message). */
  thumb?: string;
}

export interface E2eeContent {
  text?: string;
  media?: EncryptedMedia;
  replyTo?: string;
  /** A sender key for a group (alone, this is a control message the app does not show). */
  senderKey?: SenderKeyDistribution;
}

export function encodeContent(content: E2eeContent): Uint8Array {
  return utf8(JSON.stringify(content));
}

export function decodeContent(bytes: Uint8Array): E2eeContent {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(bytes));
  } catch {
    throw new E2eeError("malformed", "decrypted content is not UTF-8 JSON");
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new E2eeError("malformed", "decrypted content is not an object");
  const c = value as Record<string, unknown>;
  if (c.text !== undefined && typeof c.text !== "string") throw new E2eeError("malformed", "content.text must be a string");
  if (c.media !== undefined && (typeof c.media !== "object" || c.media === null)) throw new E2eeError("malformed", "content.media must be an object");
  if (c.senderKey !== undefined && (typeof c.senderKey !== "object" || c.senderKey === null)) throw new E2eeError("malformed", "content.senderKey must be an object");
  return c as E2eeContent;
}
