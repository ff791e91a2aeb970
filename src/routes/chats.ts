// Chat settings and history: PUT/GET /v1/chats/:chat/settings and
// GET /v1/chats/:chat/messages. A one-to-one chat is answered by the caller's
// own object (its copy of the settings and its history).
import { Hono } from "hono";
import { AppError } from "../errors";
import { readJson, type AppContext, type AppEnv } from "../http";
import { ChatSettingsBody, HistoryQuery, chatKey, describeIssues, parseChatParam, type Chat } from "../protocol";

function chatParam(c: AppContext): Chat {
  const chat = parseChatParam(c.req.param("chat") ?? "");
  if (!chat) throw new AppError("bad_frame", "chat: must be user:<id> or group:<id>");
  if ("user" in chat && chat.user === c.get("identity").user) throw new AppError("bad_frame", "chat: cannot be yourself");
  return chat;
}

function userChatOnly(chat: Chat): asserts chat is { user: string } {
  if (!("user" in chat)) throw new AppError("not_found", "group chats are not available yet");
}

export const chatRoutes = new Hono<AppEnv>()
  .get("/:chat/settings", async (c) => {
    const chat = chatParam(c);
    userChatOnly(chat);
    const me = c.get("identity").user;
    return c.json(await c.env.USERS.getByName(me).chatSettings(me, chatKey(chat)));
  })
  .put("/:chat/settings", async (c) => {
    const chat = chatParam(c);
    const body = await readJson(c, ChatSettingsBody);
    userChatOnly(chat);
    const me = c.get("identity").user;
    return c.json(await c.env.USERS.getByName(me).changeChatSettings(me, chatKey(chat), body));
  })
  .get("/:chat/messages", async (c) => {
    const chat = chatParam(c);
    const query = HistoryQuery.safeParse(c.req.query());
    if (!query.success) throw new AppError("bad_frame", describeIssues(query.error));
    userChatOnly(chat);
    const me = c.get("identity").user;
    const page = await c.env.USERS.getByName(me).chatHistory(me, chatKey(chat), query.data.before, query.data.limit);
    // Frames are stored as JSON: assembled, not re-parsed.
    const body = `{"messages":[${page.frames.join(",")}],"nextBefore":${JSON.stringify(page.nextBefore)}}`;
    return c.body(body, 200, { "Content-Type": "application/json" });
  });
