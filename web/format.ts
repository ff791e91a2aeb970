// How times and statuses read in the UI: "14:02", "Yesterday", "last seen
// today at 14:02", and the ticks of an own message.
import type { ChatMessage, PresenceInfo } from "../src/client";

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const day = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "long" });

function startOfDay(ts: number): number {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export function clock(ts: number): string {
  return time.format(ts);
}

/** The day label of a date separator or chat list entry. */
export function dayLabel(ts: number, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days < 7) return weekday.format(ts);
  return day.format(ts);
}

/** Chat list: the time for today's messages, else the day. */
export function listTime(ts: number, now = Date.now()): string {
  return dayLabel(ts, now) === "Today" ? clock(ts) : dayLabel(ts, now);
}

export function lastSeen(p: PresenceInfo | undefined, now = Date.now()): string {
  if (!p) return "";
  if (p.online) return "online";
  if (p.lastSeen === null) return "";
  const label = dayLabel(p.lastSeen, now);
  if (label === "Today") return `last seen today at ${clock(p.lastSeen)}`;
  if (label === "Yesterday") return `last seen yesterday at ${clock(p.lastSeen)}`;
  return `last seen ${label} at ${clock(p.lastSeen)}`;
}

/** Ticks: clock while pending, ✓ sent, ✓✓ delivered, blue ✓✓ read, ! failed. */
export function ticks(m: ChatMessage): { glyph: string; cls: string; title: string } {
  switch (m.status) {
    case "pending":
      return { glyph: "", cls: "tick pending", title: "Sending" };
    case "sent":
      return { glyph: "✓", cls: "tick sent", title: "Sent" };
    case "delivered":
      return { glyph: "✓✓", cls: "tick delivered", title: "Delivered" };
    case "read":
      return { glyph: "✓✓", cls: "tick read", title: "Read" };
    case "failed":
      return { glyph: "!", cls: "tick failed", title: `Not sent: ${m.error?.message ?? "refused"}` };
    default:
      return { glyph: "", cls: "tick", title: "" };
  }
}

export function systemText(m: ChatMessage, name: (u: string) => string): string {
  const e = m.system ?? { kind: "" };
  const by = typeof e.by === "string" ? name(e.by) : "";
  const users = Array.isArray(e.users) ? (e.users as string[]).map(name).join(", ") : typeof e.user === "string" ? name(e.user) : "";
  switch (e.kind) {
    case "created":
      return `${by || "Someone"} created the group${typeof e.name === "string" ? ` "${e.name}"` : ""}`;
    case "member_added":
      return `${by || "An admin"} added ${users}`;
    case "member_removed":
      return `${by || "An admin"} removed ${users}`;
    case "member_left":
      return `${users || by} left`;
    case "admin_granted":
      return `${users} is now an admin`;
    case "renamed":
      return `${by || "Someone"} renamed the group to "${String(e.name ?? "")}"`;
    case "security_changed":
      return `${users}'s security code changed. Tap the lock to verify it.`;
    case "retention_changed": {
      const what = e.retention === "permanent" ? "kept on the server (permanent chat)" : "temporary";
      const dis = typeof e.disappearAfterSeconds === "number" && e.disappearAfterSeconds > 0 ? `; messages disappear after ${duration(e.disappearAfterSeconds)}` : "";
      return `${by || "Someone"} made messages ${what}${dis}`;
    }
    default:
      return e.kind.replace(/_/g, " ");
  }
}

export function duration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
