// The one error type of the project and the codes of PROTOCOL.md. Thrown
// anywhere; mapped to an HTTP body in src/index.ts and to an error frame in the
// user object. Nothing else ever reaches a client (no stack traces).

export const ERROR_CODES = [
  "bad_json",
  "bad_frame",
  "unsupported_frame",
  "too_large",
  "unauthorized",
  "forbidden",
  "not_found",
  "not_member",
  "not_admin",
  "group_full",
  "id_conflict",
  "bad_ack",
  "rate_limited",
  "bad_media",
  "devices_changed",
  "out_of_order",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Record<ErrorCode, number> = {
  bad_json: 400,
  bad_frame: 400,
  unsupported_frame: 400,
  too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  not_member: 403,
  not_admin: 403,
  group_full: 409,
  id_conflict: 409,
  bad_ack: 400,
  rate_limited: 429,
  bad_media: 415,
  devices_changed: 409,
  out_of_order: 409,
  internal: 500,
};

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Overrides the default HTTP status of the code (411 and 413 for media, say). */
    readonly status: number = HTTP_STATUS[code],
    /** Extra fields of the error frame (devices_changed: missing, extra). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function httpStatus(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}

/** Results that cross RPC: thrown errors lose their class there (PLATFORM.md). */
export type Result<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; message: string };

export function fail(code: ErrorCode, message: string): { ok: false; code: ErrorCode; message: string } {
  return { ok: false, code, message };
}
