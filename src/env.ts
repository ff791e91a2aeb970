// The Worker's bindings and variables (wrangler.toml), shared by the Worker and
// the Durable Objects.
import type { UserObject } from "./objects/UserObject";
import type { GroupObject } from "./objects/GroupObject";

export interface Env {
  USERS: DurableObjectNamespace<UserObject>;
  GROUPS: DurableObjectNamespace<GroupObject>;
  DB: D1Database;
  MEDIA: R2Bucket;
  ASSETS?: Fetcher;
  /** HS256 secret for client tokens (a wrangler secret). */
  AUTH_SECRET?: string;
  /** HMAC secret for media URLs (a wrangler secret); required: media URLs are refused without it. */
  MEDIA_SIGNING_SECRET?: string;
  /** "true" turns on POST /v1/dev/token. */
  DEV_AUTH?: string;
  ALLOWED_ORIGINS?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
}
