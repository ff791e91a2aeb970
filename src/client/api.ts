// The HTTP half of the protocol (/v1/...): profiles, presence, privacy, groups,
// chat settings, history, media URLs and the e2ee key directory. Every answer is parsed with a schema;
// failures throw ApiError with the server's error code, so an app can tell
// "not available on this server" (not_found on a route) from a real refusal.
import { z } from "zod";
import { Chat, ChatSettings as ChatSettingsAnswer, KeyBundle, MediaRef, MediaUrl, MessageFrame, PrivacySettings, Profile, SignedMedia, chatKey } from "../protocol";
import type { PublishKeys } from "./e2ee";

export type FetchLike = (input: Request) => Promise<Response>;
export type TokenSource = string | (() => string | Promise<string>);

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

// Response shapes of PROTOCOL.md's HTTP table. Lenient (passthrough) where the
// server may add fields; only what the client reads is required.
export const GroupMember = z.object({ user: z.string(), role: z.string() }).passthrough();
export const Group = z
  .object({
    id: z.string(),
    name: z.string(),
    members: z.array(GroupMember),
    createdAt: z.number().optional(),
    retention: z.unknown().optional(),
  })
  .passthrough();
export type Group = z.infer<typeof Group>;
const GroupList = z.object({ groups: z.array(z.object({ id: z.string(), name: z.string(), role: z.string() }).passthrough()) });
export const Presence = z.object({ user: z.string(), online: z.boolean(), lastSeen: z.number().nullable() });
export const MemberReceipt = z.object({ user: z.string(), deliveredAt: z.number().nullish(), readAt: z.number().nullish() }).passthrough();
export type MemberReceipt = z.infer<typeof MemberReceipt>;
/** A history item: a message frame without the inbox seq (and maybe without `chat`). */
export const HistoryMessage = MessageFrame.omit({ seq: true, type: true, chat: true })
  .extend({ chat: Chat.optional(), media: SignedMedia.partial({ url: true, urlExpiresAt: true }).optional() })
  .passthrough();
export type HistoryMessage = z.infer<typeof HistoryMessage>;

/** GET /v1/users/:user/devices: the user's current e2ee devices and their public identity. */
export const DeviceIdentity = z.object({ device: z.string(), identityKey: z.string(), signingKey: z.string() });
export type DeviceIdentity = z.infer<typeof DeviceIdentity>;
const DeviceList = z.object({ user: z.string(), devices: z.array(DeviceIdentity) });
const BundleList = z.object({ user: z.string(), devices: z.array(KeyBundle) });
const KeyCount = z.object({ device: z.string(), count: z.number().int() });

export interface HistoryAnswer {
  messages: HistoryMessage[];
  /** Pass as `before` for the next (older) page; null at the end. */
  nextBefore: string | null;
}

export interface ChatSettings {
  retention: "temporary" | "permanent";
  disappearAfterSeconds?: number | null;
}

export interface ApiOptions {
  baseUrl: string;
  token: TokenSource;
  fetch?: FetchLike;
}

export class Api {
  private readonly fetcher: FetchLike;

  constructor(private readonly o: ApiOptions) {
    this.fetcher = o.fetch ?? ((req) => fetch(req));
  }

  async token(): Promise<string> {
    return typeof this.o.token === "string" ? this.o.token : await this.o.token();
  }

  url(path: string): string {
    return new URL(path, this.o.baseUrl).toString();
  }

  /** One authenticated request; parses JSON answers with `schema`. */
  async request<T>(method: string, path: string, schema: z.ZodType<T> | null, body?: unknown): Promise<T> {
    const headers = new Headers({ Authorization: `Bearer ${await this.token()}` });
    let payload: string | undefined;
    if (body !== undefined) {
      headers.set("Content-Type", "application/json");
      payload = JSON.stringify(body);
    }
    const res = await this.fetcher(new Request(this.url(path), { method, headers, body: payload }));
    return readAnswer(res, schema);
  }

  // ---- profiles, presence, privacy -----------------------------------------
  me() {
    return this.request("GET", "/v1/me", Profile);
  }
  setDisplayName(displayName: string) {
    return this.request("PUT", "/v1/me", Profile, { displayName });
  }
  user(user: string) {
    return this.request("GET", `/v1/users/${encodeURIComponent(user)}`, Profile);
  }
  presence(user: string) {
    return this.request("GET", `/v1/users/${encodeURIComponent(user)}/presence`, Presence);
  }
  privacy() {
    return this.request("GET", "/v1/me/privacy", PrivacySettings);
  }
  setPrivacy(settings: { lastSeen?: "everyone" | "nobody"; readReceipts?: boolean }) {
    return this.request("PUT", "/v1/me/privacy", PrivacySettings, settings);
  }

  // ---- groups ----------------------------------------------------------------
  createGroup(name: string, members: string[]) {
    return this.request("POST", "/v1/groups", Group, { name, members });
  }
  /** The caller's groups as its own object knows them: `{id, name, role}` each. */
  async groups(): Promise<Array<{ id: string; name: string; role: string }>> {
    return (await this.request("GET", "/v1/groups", GroupList)).groups;
  }
  group(id: string) {
    return this.request("GET", `/v1/groups/${encodeURIComponent(id)}`, Group);
  }
  renameGroup(id: string, name: string) {
    return this.request("PATCH", `/v1/groups/${encodeURIComponent(id)}`, z.unknown(), { name });
  }
  addMembers(id: string, users: string[]) {
    return this.request("POST", `/v1/groups/${encodeURIComponent(id)}/members`, z.unknown(), { users });
  }
  /** An admin removes `user`; with the caller's own id, leaves the group. */
  removeMember(id: string, user: string) {
    return this.request("DELETE", `/v1/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(user)}`, z.unknown());
  }
  makeAdmin(id: string, user: string) {
    return this.request("POST", `/v1/groups/${encodeURIComponent(id)}/admins`, z.unknown(), { user });
  }
  /** "Message info" of a group message: each member's delivered and read times. */
  async messageReceipts(group: string, msg: string): Promise<MemberReceipt[]> {
    const raw = await this.request("GET", `/v1/groups/${encodeURIComponent(group)}/messages/${encodeURIComponent(msg)}/receipts`, z.unknown());
    const list = Array.isArray(raw) ? raw : ((raw as { receipts?: unknown })?.receipts ?? []);
    return z.array(MemberReceipt).parse(list);
  }

  // ---- chats -----------------------------------------------------------------
  chatSettings(chat: Chat) {
    return this.request("GET", `/v1/chats/${encodeURIComponent(chatKey(chat))}/settings`, ChatSettingsAnswer);
  }
  setChatSettings(chat: Chat, settings: Partial<ChatSettings>) {
    return this.request("PUT", `/v1/chats/${encodeURIComponent(chatKey(chat))}/settings`, ChatSettingsAnswer, settings);
  }
  /** One page of history, newest first (permanent chats only), and the cursor of the next. */
  async history(chat: Chat, opts: { before?: string; limit?: number } = {}): Promise<HistoryAnswer> {
    const q = new URLSearchParams();
    if (opts.before) q.set("before", opts.before);
    q.set("limit", String(opts.limit ?? 50));
    const raw = await this.request("GET", `/v1/chats/${encodeURIComponent(chatKey(chat))}/messages?${q}`, z.object({ messages: z.array(z.unknown()), nextBefore: z.string().nullable() }));
    // Items the client cannot read are skipped rather than failing the page.
    const messages = raw.messages.flatMap((item) => {
      const p = HistoryMessage.safeParse(item);
      return p.success ? [p.data] : [];
    });
    return { messages, nextBefore: raw.nextBefore };
  }

  // ---- media -----------------------------------------------------------------
  /** A fresh signed URL for a media id, relative to the server as it answers (resolve with `url()`). */
  mediaUrl(id: string) {
    return this.request("GET", `/v1/media/${encodeURIComponent(id)}/url`, MediaUrl);
  }

  /** The bytes behind a signed media URL (relative to the server, or absolute). It needs no token: it is the grant. */
  async download(url: string): Promise<Uint8Array> {
    const res = await this.fetcher(new Request(this.url(url)));
    if (!res.ok) await readAnswer(res, null);
    return new Uint8Array(await res.arrayBuffer());
  }

  // ---- e2ee key directory ----------------------------------------------------
  publishKeys(device: string, body: PublishKeys) {
    return this.request("PUT", `/v1/keys/${encodeURIComponent(device)}`, KeyCount, body);
  }
  keyCount(device: string) {
    return this.request("GET", `/v1/keys/${encodeURIComponent(device)}/count`, KeyCount);
  }
  removeKeys(device: string) {
    return this.request("DELETE", `/v1/keys/${encodeURIComponent(device)}`, z.unknown());
  }
  /** A user's current devices (claims nothing). */
  async devices(user: string): Promise<DeviceIdentity[]> {
    return (await this.request("GET", `/v1/users/${encodeURIComponent(user)}/devices`, DeviceList)).devices;
  }
  /** Bundles of some of a user's devices; each claims one one-time prekey. */
  bundles(user: string, devices: string[]) {
    return this.request("GET", `/v1/users/${encodeURIComponent(user)}/keys?devices=${devices.map(encodeURIComponent).join(",")}`, BundleList);
  }
}

export async function readAnswer<T>(res: Response, schema: z.ZodType<T> | null): Promise<T> {
  const text = await res.text();
  let raw: unknown = undefined;
  try {
    raw = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: reported below when it matters
  }
  if (!res.ok) {
    const err = (raw as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof err?.code === "string" ? err.code : res.status === 404 ? "not_found" : "internal";
    const message = typeof err?.message === "string" ? err.message : `HTTP ${res.status}`;
    throw new ApiError(code, message, res.status);
  }
  if (schema === null) return undefined as T;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiError("bad_answer", `unexpected answer: ${parsed.error.message.slice(0, 200)}`, res.status);
  return parsed.data;
}

export { MediaRef };
