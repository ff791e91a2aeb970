// /v1/groups: create a group, list the caller's groups, and manage one group
// (read, rename, add and remove members, grant admin, a message's receipts).
// Each request goes to the group's object, which checks the caller's role and
// answers with a Result; the caller's list comes from the caller's own object.
import { Hono } from "hono";
import { AppError, type Result } from "../errors";
import { param, readJson, type AppContext, type AppEnv } from "../http";
import { GROUP_ID, newGroupId } from "../ids";
import { AddMembersBody, CreateGroupBody, GrantAdminBody, MsgId, RenameGroupBody, UserId } from "../protocol";

/** Ids newGroupId() makes: anything else names no group, and is refused without waking an object. */


function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new AppError(result.code, result.message);
  return result.value;
}

function groupOf(c: AppContext) {
  const id = c.req.param("id") ?? "";
  if (!GROUP_ID.test(id)) throw new AppError("not_found", "no such group");
  return c.env.GROUPS.getByName(id);
}

export const groupRoutes = new Hono<AppEnv>()
  .post("/", async (c) => {
    const body = await readJson(c, CreateGroupBody);
    const id = newGroupId();
    const group = unwrap(await c.env.GROUPS.getByName(id).create(id, c.get("identity").user, body.name, body.members));
    return c.json(group, 201);
  })
  .get("/", async (c) => {
    const user = c.get("identity").user;
    return c.json({ groups: await c.env.USERS.getByName(user).listGroups() });
  })
  .get("/:id", async (c) => c.json(unwrap(await groupOf(c).view(c.get("identity").user))))
  .patch("/:id", async (c) => {
    const stub = groupOf(c);
    const body = await readJson(c, RenameGroupBody);
    return c.json(unwrap(await stub.rename(c.get("identity").user, body.name)));
  })
  .post("/:id/members", async (c) => {
    const stub = groupOf(c);
    const body = await readJson(c, AddMembersBody);
    return c.json(unwrap(await stub.addMembers(c.get("identity").user, body.users)));
  })
  .delete("/:id/members/:user", async (c) => {
    const stub = groupOf(c);
    unwrap(await stub.removeMember(c.get("identity").user, param(c, "user", UserId)));
    return c.body(null, 204);
  })
  .post("/:id/admins", async (c) => {
    const stub = groupOf(c);
    const body = await readJson(c, GrantAdminBody);
    return c.json(unwrap(await stub.grantAdmin(c.get("identity").user, body.user)));
  })
  .get("/:id/messages/:msg/receipts", async (c) => {
    const stub = groupOf(c);
    const me = c.get("identity").user;
    const [detail, privacy] = await Promise.all([stub.messageReceipts(me, param(c, "msg", MsgId)), c.env.USERS.getByName(me).privacySettings(me)]);
    const members = unwrap(detail);
    // With read receipts off the user is shown none either (as in receipt frames).
    return c.json(privacy.readReceipts ? members : members.map(({ readAt: _, ...rest }) => rest));
  });
