// The path of an upload's bytes from the request to R2, never buffered whole:
// request body -> check (magic number, length, SHA-256 on the way) ->
// FixedLengthStream (R2 needs a known length) -> R2 put or uploadPart.
// Used by src/media/upload.ts for single uploads and for each multipart part.
import { AppError } from "../errors";
import { MAGIC_BYTES, matchesType } from "./magic";

export interface Inspection {
  /** The bytes to hand to R2, with their length known. */
  readable: ReadableStream<Uint8Array>;
  /** Why the stream failed, when it failed because of what the client sent (else null). */
  failure(): AppError | null;
  /** SHA-256 (hex) of the bytes; resolves once the whole body went through. */
  sha256(): Promise<string>;
}

/**
 * Wraps a body of exactly `length` bytes. With `magicType`, the first bytes must
 * open a file of that type: nothing is passed on until they are checked, so a
 * refused body never reaches R2 (the stream errors and R2 stores nothing).
 */
export function inspect(body: ReadableStream<Uint8Array>, length: number, magicType: string | null): Inspection {
  const digest = new crypto.DigestStream("SHA-256");
  const hash = digest.digest.then(hex);
  hash.catch(() => {}); // observed through sha256() only when the body was complete
  const writer = digest.getWriter();
  let failure: AppError | null = null;
  let seen = 0;
  let held: Uint8Array[] = [];
  let checked = magicType === null;

  const refuse = (err: AppError): never => {
    failure = err;
    writer.abort(err).catch(() => {});
    throw err;
  };
  const release = (controller: TransformStreamDefaultController<Uint8Array>) => {
    const head = concat(held).subarray(0, MAGIC_BYTES);
    if (!matchesType(magicType!, head)) refuse(new AppError("bad_media", `the bytes are not ${magicType}`));
    checked = true;
    for (const c of held) controller.enqueue(c);
    held = [];
  };

  const check = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > length) refuse(new AppError("bad_frame", `body is longer than Content-Length (${length})`));
      // Hashed before it is passed on: R2 may take over (detach) the buffer.
      await writer.write(chunk);
      if (checked) controller.enqueue(chunk);
      else {
        held.push(chunk);
        if (seen >= MAGIC_BYTES) release(controller);
      }
    },
    async flush(controller) {
      if (seen !== length) refuse(new AppError("bad_frame", `body is ${seen} bytes, Content-Length said ${length}`));
      if (!checked) release(controller);
      await writer.close();
    },
  });
  // Explicit pipes whose failures are observed: the error reaches the consumer
  // (R2) through the streams, and an unobserved rejection would only be noise.
  const fixed = new FixedLengthStream(length);
  body.pipeTo(check.writable).catch(() => {});
  check.readable.pipeTo(fixed.writable).catch(() => {});
  return { readable: fixed.readable, failure: () => failure, sha256: () => hash };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export function hex(buf: ArrayBuffer): string {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 (hex) of a stream, read through once (the multipart complete hashes the assembled object). */
export async function sha256Of(stream: ReadableStream<Uint8Array>): Promise<string> {
  const digest = new crypto.DigestStream("SHA-256");
  await stream.pipeTo(digest);
  return hex(await digest.digest);
}
