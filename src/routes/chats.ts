// Chat settings and history: PUT/GET /v1/chats/:chat/settings and
// GET /v1/chats/:chat/messages. A one-to-one chat is answered by the caller's
// own object (its copy of the settings and its history); a group chat by the
// group's object, which checks membership and, for changes, the admin role.
import { Hono } from "hono";
import { AppError, type Result } from "../errors";
import { readJson, type AppContext, type AppEnv } from "../http";
import { ChatSettingsBody, HistoryQuery, chatKey, describeIssues, parseChatParam, type Chat } from "../protocol";
import type { HistoryPage } from "../user/retention";
import { GROUP_ID } from "../ids";

function chatParam(c: AppContext): Chat {
  const chat = parseChatParam(c.req.param("chat") ?? "");
  if (!chat) throw new AppError("bad_frame", "chat: must be user:<id> or group:<id>");
  if ("user" in chat && chat.user === c.get("identity").user) throw new AppError("bad_frame", "chat: cannot be yourself");
  // Ids the server never makes name no group (and wake no object).
  // not_found, as /v1/groups answers for them and for a well-formed id nobody created.
  if ("group" in chat && !GROUP_ID.test(chat.group)) throw new AppError("not_found", "no such group");
  return chat;
}

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new AppError(result.code, result.message);
  return result.value;
}

function historyResponse(c: AppContext, page: HistoryPage): Response {
  // Frames are stored as JSON: assembled, not re-parsed.
  const body = `{"messages":[${page.frames.join(",")}],"nextBefore":${JSON.stringify(page.nextBefore)}}`;
  return c.body(body, 200, { "Content-Type": "application/json" });
}

export const chatRoutes = new Hono<AppEnv>()
  .get("/:chat/settings", async (c) => {
    const chat = chatParam(c);
    const me = c.get("identity").user;
    if ("group" in chat) return c.json(unwrap(await c.env.GROUPS.getByName(chat.group).chatSettings(me)));
    return c.json(await c.env.USERS.getByName(me).chatSettings(me, chatKey(chat)));
  })
  .put("/:chat/settings", async (c) => {
    const chat = chatParam(c);
    const body = await readJson(c, ChatSettingsBody);
    const me = c.get("identity").user;
    if ("group" in chat) return c.json(unwrap(await c.env.GROUPS.getByName(chat.group).changeChatSettings(me, body)));
    return c.json(await c.env.USERS.getByName(me).changeChatSettings(me, chatKey(chat), body));
  })
  .get("/:chat/messages", async (c) => {
    const chat = chatParam(c);
    const query = HistoryQuery.safeParse(c.req.query());
    if (!query.success) throw new AppError("bad_frame", describeIssues(query.error));
    const me = c.get("identity").user;
    const { before, limit } = query.data;
    if ("group" in chat) return historyResponse(c, unwrap(await c.env.GROUPS.getByName(chat.group).chatHistory(me, before, limit)));
    return historyResponse(c, await c.env.USERS.getByName(me).chatHistory(me, chatKey(chat), before, limit));
  });
