// Server message ids: unique across the system and sortable by time of
// acceptance. 9 base36 digits of milliseconds (good until the year 5188), a
// per-object counter so ids made in the same millisecond keep their order, then
// 10 random base36 digits so two objects never collide. Lowercase only, so
// string order is time order.

let lastMs = 0;
let counter = 0;

export function newMsgId(nowMs: number): string {
  if (nowMs === lastMs) counter++;
  else {
    lastMs = nowMs;
    counter = 0;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  let rand = "";
  for (const b of bytes) rand += (b % 36).toString(36);
  return nowMs.toString(36).padStart(9, "0") + counter.toString(36).padStart(3, "0") + rand;
}

/**
 * The lowest message id made at `ms` or later: ids begin with their time, fixed
 * width, so every id made before `ms` sorts below it and every later one at or above.
 */
export function msgIdFloor(ms: number): string {
  return Math.max(0, Math.floor(ms)).toString(36).padStart(9, "0");
}

/** The shape newGroupId() makes: anything else names no group (and must not wake an object). */
export const GROUP_ID = /^g_[0-9a-f]{32}$/;

/** Group ids: unguessable, so knowing one's name is not a way in. */
export function newGroupId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "g_" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A short stable digest of a string (cyrb53); detects a reused client id with other content. */
export function digest(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36) + ":" + text.length.toString(36);
}
