// Magic numbers: the first bytes of a file must match the type its uploader
// declared, so a URL served as image/png is never an HTML page in disguise (the
// download also sends nosniff and a sandbox CSP; this is the first wall).
// Called by src/media/stream.ts on the first MAGIC_BYTES of a body.

/** How many leading bytes the checks look at. */
export const MAGIC_BYTES = 12;

const ascii = (b: Uint8Array, at: number, text: string): boolean => {
  if (b.length < at + text.length) return false;
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
};
const bytes = (b: Uint8Array, at: number, expected: number[]): boolean =>
  b.length >= at + expected.length && expected.every((v, i) => b[at + i] === v);

/** ISO base media (MP4, M4A, QuickTime): a size, then an `ftyp` box. */
const isoBmff = (b: Uint8Array): boolean => ascii(b, 4, "ftyp");
/** Old QuickTime files may open with another top-level atom instead of ftyp. */
const quicktime = (b: Uint8Array): boolean =>
  isoBmff(b) || ["moov", "mdat", "wide", "free", "skip", "pnot"].some((atom) => ascii(b, 4, atom));
/** MP3: an ID3 tag, or an MPEG audio frame sync (11 bits set, layer bits not 00). */
const mp3 = (b: Uint8Array): boolean =>
  ascii(b, 0, "ID3") || (b.length >= 2 && b[0] === 0xff && (b[1]! & 0xe0) === 0xe0 && (b[1]! & 0x06) !== 0);
/** AAC: ADTS frame sync (12 bits set, layer bits 00), ADIF, or an ID3 tag before ADTS. */
const aac = (b: Uint8Array): boolean =>
  (b.length >= 2 && b[0] === 0xff && (b[1]! & 0xf6) === 0xf0) || ascii(b, 0, "ADIF") || ascii(b, 0, "ID3");

const CHECKS: Readonly<Record<string, (b: Uint8Array) => boolean>> = {
  "image/jpeg": (b) => bytes(b, 0, [0xff, 0xd8, 0xff]),
  "image/png": (b) => bytes(b, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  "image/gif": (b) => ascii(b, 0, "GIF87a") || ascii(b, 0, "GIF89a"),
  "image/webp": (b) => ascii(b, 0, "RIFF") && ascii(b, 8, "WEBP"),
  "video/mp4": isoBmff,
  "video/quicktime": quicktime,
  "video/webm": (b) => bytes(b, 0, [0x1a, 0x45, 0xdf, 0xa3]), // EBML header
  "audio/ogg": (b) => ascii(b, 0, "OggS"),
  "audio/mpeg": mp3,
  "audio/mp4": isoBmff,
  "audio/aac": aac,
  // Ciphertext of an e2ee attachment: random-looking bytes, nothing to check. It
  // is served as an attachment with nosniff, and only e2ee messages may carry it.
  "application/octet-stream": () => true,
};

/** True when `head` (the first bytes, up to MAGIC_BYTES) opens a file of `type`. */
export function matchesType(type: string, head: Uint8Array): boolean {
  return CHECKS[type]?.(head) ?? false;
}
