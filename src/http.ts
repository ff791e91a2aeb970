// Small helpers shared by the HTTP routes: typed JSON bodies and the hono
// context type carrying the verified identity.
import type { Context } from "hono";
import type { z } from "zod";
import { AppError } from "./errors";
import { MAX_JSON_BODY_BYTES } from "./limits";
import { describeIssues } from "./protocol";
import type { Env } from "./env";
import type { Identity } from "./auth";

export type AppEnv = { Bindings: Env; Variables: { identity: Identity } };
export type AppContext = Context<AppEnv>;

/** Parses the request body as JSON against `schema`; bad_json / bad_frame / too_large otherwise. */
export async function readJson<S extends z.ZodType>(c: AppContext, schema: S): Promise<z.infer<S>> {
  const declared = Number(c.req.header("Content-Length") ?? "0");
  if (declared > MAX_JSON_BODY_BYTES) throw new AppError("too_large", `body over ${MAX_JSON_BODY_BYTES} bytes`);
  const text = await readText(c.req.raw, MAX_JSON_BODY_BYTES);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AppError("bad_json", "body is not valid JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new AppError("bad_frame", describeIssues(parsed.error));
  return parsed.data;
}

/**
 * The body as text, counted in bytes as it streams: a body sent without a
 * Content-Length (chunked) is refused once past `max`, not buffered whole first.
 */
async function readText(req: Request, max: number): Promise<string> {
  if (req.body === null) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw new AppError("too_large", `body over ${max} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** Validates a path parameter against a schema, as bad_frame naming the parameter. */
export function param<S extends z.ZodType>(c: AppContext, name: string, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.param(name));
  if (!parsed.success) throw new AppError("bad_frame", `${name}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return parsed.data;
}
