// The one piece of node:crypto the project uses (nodejs_compat provides it):
// a synchronous HMAC, so media URLs can be signed between a durable write and
// the socket send that follows it without an await (src/media/url.ts). Typed
// here rather than pulling in @types/node, whose globals clash with the
// Workers types.
declare module "node:crypto" {
  interface Hmac {
    update(data: string | ArrayBufferView): Hmac;
    digest(encoding: "base64url" | "hex" | "base64"): string;
  }
  export function createHmac(algorithm: "sha256", key: string | ArrayBufferView): Hmac;
}
