// The roster of one group: members (at most MAX_GROUP_MEMBERS, the creator
// included), their roles, the group's name, and every change to them as an
// event in the group log. Called by the GroupObject inside one synchronous
// transaction per request: no await splits a check from its write, so
// concurrent requests (which the object serializes) can never push the roster
// past the cap. Refusals throw AppError; the transaction then writes nothing.
import { AppError } from "../errors";
import { MAX_GROUP_MEMBERS } from "../limits";
import type { GroupEvent, GroupView } from "../protocol";
import type { GroupLog } from "./log";

type Role = "admin" | "member";

export class Roster {
  constructor(
    private readonly sql: SqlStorage,
    private readonly log: GroupLog,
  ) {}

  exists(): boolean {
    return this.log.meta("id") !== null;
  }

  /** Members in order of joining (longest-standing first). */
  members(): Array<{ user: string; role: Role }> {
    return this.sql.exec<{ user: string; role: Role }>("SELECT user, role FROM members ORDER BY ord").toArray();
  }

  users(): string[] {
    return this.members().map((m) => m.user);
  }

  roleOf(user: string): Role | null {
    return this.sql.exec<{ role: Role }>("SELECT role FROM members WHERE user = ?", user).toArray()[0]?.role ?? null;
  }

  view(): GroupView {
    return {
      id: this.log.meta("id") ?? "",
      name: this.log.meta("name") ?? "",
      members: this.members(),
      createdAt: Number(this.log.meta("created_at") ?? "0"),
      retention: this.log.meta("retention") === "permanent" ? "permanent" : "temporary",
    };
  }

  requireMember(user: string): Role {
    if (!this.exists()) throw new AppError("not_found", "no such group");
    const role = this.roleOf(user);
    if (role === null) throw new AppError("not_member", "you are not a member of this group");
    return role;
  }

  requireAdmin(user: string): void {
    if (this.requireMember(user) !== "admin") throw new AppError("not_admin", "only group admins can do this");
  }

  // ---- changes -------------------------------------------------------------

  create(id: string, creator: string, name: string, others: readonly string[], now: number): void {
    if (this.exists()) throw new AppError("internal", "group id already in use");
    const users = unique([creator, ...others]);
    if (users.length > MAX_GROUP_MEMBERS) throw new AppError("group_full", `a group has at most ${MAX_GROUP_MEMBERS} members`);
    this.log.setMeta("id", id);
    this.log.setMeta("name", name);
    this.log.setMeta("created_at", String(now));
    this.log.setMeta("created_by", creator);
    this.log.setMeta("retention", "temporary");
    for (const user of users) this.insert(user, user === creator ? "admin" : "member", now);
    this.emit({ kind: "created", by: creator, name, members: this.members(), retention: "temporary" }, now);
  }

  /** All or nothing: a batch that would pass the cap changes nothing. Existing members are skipped. */
  add(by: string, users: readonly string[], now: number): void {
    this.requireAdmin(by);
    const fresh = unique(users).filter((u) => this.roleOf(u) === null);
    if (fresh.length === 0) return;
    const count = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM members").one().n;
    if (count + fresh.length > MAX_GROUP_MEMBERS) {
      throw new AppError("group_full", `the group has ${count} members; adding ${fresh.length} would pass ${MAX_GROUP_MEMBERS}`);
    }
    for (const user of fresh) this.insert(user, "member", now);
    // Newcomers get this event too (they are members now): it tells them the name.
    this.emit({ kind: "member_added", by, users: fresh, name: this.log.meta("name") ?? "" }, now);
  }

  /**
   * An admin removes `user`, or `user === by` leaves. The event reaches the
   * remaining members and the one who went; nothing after it reaches them.
   * If no admin is left, the longest-standing member becomes one.
   */
  remove(by: string, user: string, now: number): void {
    const recipients = this.users();
    if (by === user) {
      this.requireMember(by);
    } else {
      this.requireAdmin(by);
      if (this.roleOf(user) === null) throw new AppError("not_found", `${user} is not a member of this group`);
    }
    this.sql.exec("DELETE FROM members WHERE user = ?", user);
    const event: GroupEvent = by === user ? { kind: "member_left", user } : { kind: "member_removed", by, user };
    this.log.append({ kind: "event", event }, recipients, now);
    this.succession(now);
  }

  grantAdmin(by: string, user: string, now: number): void {
    this.requireAdmin(by);
    const role = this.roleOf(user);
    if (role === null) throw new AppError("not_found", `${user} is not a member of this group`);
    if (role === "admin") return;
    this.sql.exec("UPDATE members SET role = 'admin' WHERE user = ?", user);
    this.emit({ kind: "admin_granted", user, by }, now);
  }

  rename(by: string, name: string, now: number): void {
    this.requireAdmin(by);
    if (this.log.meta("name") === name) return;
    this.log.setMeta("name", name);
    this.emit({ kind: "renamed", by, name }, now);
  }

  // ---- plumbing ----------------------------------------------------------

  /** A group always has an admin while it has members: the longest-standing member takes over. */
  private succession(now: number): void {
    const admins = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM members WHERE role = 'admin'").one().n;
    if (admins > 0) return;
    const heir = this.sql.exec<{ user: string }>("SELECT user FROM members ORDER BY ord LIMIT 1").toArray()[0];
    if (!heir) return;
    this.sql.exec("UPDATE members SET role = 'admin' WHERE user = ?", heir.user);
    this.emit({ kind: "admin_granted", user: heir.user }, now);
  }

  private insert(user: string, role: Role, now: number): void {
    this.sql.exec("INSERT INTO members (user, role, joined_at) VALUES (?, ?, ?)", user, role, now);
  }

  /** An event for every current member, in the group log. */
  private emit(event: GroupEvent, now: number): void {
    this.log.append({ kind: "event", event }, this.users(), now);
  }
}

function unique(users: readonly string[]): string[] {
  return [...new Set(users)];
}
