// The wire format of end-to-end encryption (docs/PROTOCOL.md, "End-to-end
// encryption"): the `e2ee` field of send/edit/message frames and the key
// directory's HTTP bodies. Kept beside protocol.ts, which imports the frame
// parts; the server only ever sees public keys and ciphertext here.
import { z } from "zod";
import { ID_PATTERN, ID_RULE, MAX_E2EE_ATTACHMENTS, MAX_E2EE_CIPHERTEXT_CHARS, MAX_E2EE_RECIPIENTS, MAX_KEY_DEVICES_PER_USER, MAX_ONE_TIME_PREKEYS } from "./limits";

const DeviceId = z.string().regex(ID_PATTERN, ID_RULE);
const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, "must be base64");
/** A 32-byte public key (X25519 or Ed25519), base64. */
export const PublicKey = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, "must be a 32-byte key in base64");
/** An Ed25519 signature, base64. */
export const Signature = z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "must be a 64-byte signature in base64");
export const PrekeyId = z.number().int().nonnegative().max(0xfffffffe);
/** A device of some user: "user/device". */
export const DeviceAddress = z.string().regex(/^[A-Za-z0-9_.-]{1,64}\/[A-Za-z0-9_.-]{1,64}$/, 'must be "user/device"');

export const E2eeCiphertext = z.object({
  type: z.enum(["prekey", "msg"]),
  body: Base64.min(1).max(MAX_E2EE_CIPHERTEXT_CHARS),
});

/**
 * `e2ee` of a send (or edit): one-to-one chats carry `recipients` (one
 * ciphertext per current device of the peer and per other current device of
 * the sender); groups carry one `senderKeyCiphertext` fanned out unchanged.
 */
export const E2eeSend = z.object({
  v: z.literal(1),
  sender: DeviceId,
  recipients: z
    .record(DeviceAddress, E2eeCiphertext)
    .refine((r) => Object.keys(r).length <= MAX_E2EE_RECIPIENTS, `at most ${MAX_E2EE_RECIPIENTS} devices`)
    .optional(),
  senderKeyCiphertext: Base64.min(1).max(MAX_E2EE_CIPHERTEXT_CHARS).optional(),
  /**
   * Ids of the encrypted uploads (POST /v1/media) the message refers to, in the
   * clear: the server can then grant their download to the recipients and delete
   * them with the message. They say nothing about the content.
   */
  attachments: z.array(DeviceId).max(MAX_E2EE_ATTACHMENTS).optional(),
});
export type E2eeSend = z.infer<typeof E2eeSend>;

/** `e2ee` of a message as one device receives it: only its own ciphertext (none if it was not a recipient). */
export const E2eeDelivered = z.object({
  v: z.literal(1),
  sender: DeviceId,
  type: z.enum(["prekey", "msg"]).optional(),
  body: z.string().optional(),
  senderKeyCiphertext: z.string().optional(),
  attachments: z.array(z.string()).optional(),
});

type SendLike = { to: { user: string } | { group: string }; text?: string; media?: unknown; e2ee?: E2eeSend };

/** Cross-field rules of an encrypted send; zod superRefine of SendFrame. */
export function checkE2eeSend(f: SendLike, ctx: z.RefinementCtx): void {
  const e = f.e2ee;
  if (!e) return;
  const issue = (path: string[], message: string) => ctx.addIssue({ code: "custom", path: ["e2ee", ...path], message });
  if (f.text !== undefined || f.media !== undefined) issue([], "an encrypted message carries no text or media (they go inside the ciphertext)");
  const problem = e2eeShapeProblem(e, "user" in f.to ? "user" : "group");
  if (problem) issue(problem.path, problem.message);
}

/**
 * What is wrong with an encrypted payload for a chat of this kind, or null:
 * a ciphertext per device one-to-one, one sender-key ciphertext in a group.
 * Sends (checkE2eeSend) and edits (src/user/chat.ts, once the message's chat is known).
 */
export function e2eeShapeProblem(e: E2eeSend, chat: "user" | "group"): { path: string[]; message: string } | null {
  if (e.recipients !== undefined && e.senderKeyCiphertext !== undefined) return { path: [], message: "give recipients or senderKeyCiphertext, not both" };
  if (chat === "user" && e.recipients === undefined) return { path: ["recipients"], message: "a one-to-one message needs a ciphertext per device" };
  if (chat === "group" && e.senderKeyCiphertext === undefined) return { path: ["senderKeyCiphertext"], message: "a group message needs one sender-key ciphertext" };
  return null;
}

// ---- HTTP: the key directory -------------------------------------------------

export const SignedPrekey = z.object({ id: PrekeyId, publicKey: PublicKey, signature: Signature });
export const OneTimePrekey = z.object({ id: PrekeyId, publicKey: PublicKey });

/** PUT /v1/keys/:device */
export const PublishKeysBody = z
  .object({
    identityKey: PublicKey,
    signingKey: PublicKey,
    signedPrekey: SignedPrekey,
    oneTimePrekeys: z.array(OneTimePrekey).max(MAX_ONE_TIME_PREKEYS).default([]),
  })
  .refine((b) => new Set(b.oneTimePrekeys.map((k) => k.id)).size === b.oneTimePrekeys.length, {
    message: "ids must be unique",
    path: ["oneTimePrekeys"],
  });
export type PublishKeysBody = z.infer<typeof PublishKeysBody>;

/** One device's bundle in GET /v1/users/:user/keys. */
export const KeyBundle = z.object({
  device: DeviceId,
  identityKey: PublicKey,
  signingKey: PublicKey,
  signedPrekey: SignedPrekey,
  oneTimePrekey: OneTimePrekey.optional(),
});
export type KeyBundle = z.infer<typeof KeyBundle>;

/** GET /v1/users/:user/keys?devices=a,b (the filter is optional). */
export const KeyDevicesQuery = z
  .string()
  .transform((s) => s.split(",").filter(Boolean))
  .pipe(z.array(DeviceId).min(1).max(MAX_KEY_DEVICES_PER_USER));
