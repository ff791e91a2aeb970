// The HTTP half of the protocol (/v1/...): profiles, presence, privacy, groups,
// chat settings, history and media URLs. Every answer is parsed with a schema;
// failures throw ApiError with the server's error code, so an app can tell
// "not available on this server" (not_found on a route) from a real refusal.
import { z } from "zod";
import { Chat, MediaRef, MessageFrame, Profile, SignedMedia, chatKey } from "../protocol";

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
export const Presence = z.object({ user: z.string(), online: z.boolean(), lastSeen: z.number().nullable() });
export const MemberReceipt = z.object({ user: z.string(), deliveredAt: z.number().nullish(), readAt: z.number().nullish() }).passthrough();
export type MemberReceipt = z.infer<typeof MemberReceipt>;
/** A history item: a message frame without the inbox seq (and maybe without `chat`). */
export const HistoryMessage = MessageFrame.omit({ seq: true, type: true, chat: true })
  .extend({ chat: Chat.optional(), media: SignedMedia.partial({ url: true, urlExpiresAt: true }).optional() })
  .passthrough();
export type HistoryMessage = z.infer<typeof HistoryMessage>;
export const SignedUrl = z.object({ url: z.string() }).passthrough();

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
  setPrivacy(settings: { lastSeen?: "everyone" | "nobody"; readReceipts?: boolean }) {
    return this.request("PUT", "/v1/me/privacy", null, settings);
  }

  // ---- groups ----------------------------------------------------------------
  createGroup(name: string, members: string[]) {
    return this.request("POST", "/v1/groups", Group, { name, members });
  }
  async groups(): Promise<Group[]> {
    // An array, or an object wrapping one: both are read.
    const raw = await this.request("GET", "/v1/groups", z.unknown());
    const list = Array.isArray(raw) ? raw : ((raw as { groups?: unknown })?.groups ?? []);
    return z.array(Group).parse(list);
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
  setChatSettings(chat: Chat, settings: ChatSettings) {
    return this.request("PUT", `/v1/chats/${encodeURIComponent(chatKey(chat))}/settings`, z.unknown(), settings);
  }
  /** History, newest first (permanent chats only). */
  async history(chat: Chat, opts: { before?: string; limit?: number } = {}): Promise<HistoryMessage[]> {
    const q = new URLSearchParams();
    if (opts.before) q.set("before", opts.before);
    q.set("limit", String(opts.limit ?? 50));
    const raw = await this.request("GET", `/v1/chats/${encodeURIComponent(chatKey(chat))}/messages?${q}`, z.unknown());
    const list = Array.isArray(raw) ? raw : ((raw as { messages?: unknown })?.messages ?? []);
    // Items the client cannot read are skipped rather than failing the page.
    return (list as unknown[]).flatMap((item) => {
      const p = HistoryMessage.safeParse(item);
      return p.success ? [p.data] : [];
    });
  }

  // ---- media -----------------------------------------------------------------
  /** A fresh signed URL for a media id (absolute). */
  async mediaUrl(id: string): Promise<{ url: string; urlExpiresAt?: number }> {
    const raw = await this.request("GET", `/v1/media/${encodeURIComponent(id)}/url`, SignedUrl);
    const exp = (raw as { urlExpiresAt?: unknown; expiresAt?: unknown }).urlExpiresAt ?? (raw as { expiresAt?: unknown }).expiresAt;
    return { url: this.url(raw.url), ...(typeof exp === "number" ? { urlExpiresAt: exp } : {}) };
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
