// The app shell: sidebar (who I am, connection state, chat list with unread
// counts and last messages, new chat / new group) and the open conversation
// (conversation.ts). Re-renders are coalesced per animation frame.
import { ApiError, chatKey, parseChatParam, type Chat, type ChatClient, type Conversation } from "../src/client";
import { ConversationView } from "./conversation";
import { newGroupDialog } from "./dialogs";
import { avatar, coalesce, h, toast } from "./dom";
import { listTime, systemText, ticks } from "./format";
import { icon } from "./icons";

export class App {
  private readonly names = new Map<string, string>();
  private readonly asked = new Set<string>();
  private list!: HTMLElement;
  private status!: HTMLElement;
  private main!: HTMLElement;
  private view: ConversationView | null = null;
  readonly renderList = coalesce(() => this.drawList());

  constructor(
    readonly client: ChatClient,
    private readonly root: HTMLElement,
    private readonly signOut: () => void,
  ) {}

  get me(): string {
    return this.client.user;
  }

  /** A user's display name (the id until the directory answers). */
  name(user: string): string {
    if (!user) return ""; // a notice without a person (member_left, security changed)
    if (user === this.me) return "You";
    const known = this.names.get(user);
    if (known) return known;
    if (!this.asked.has(user)) {
      this.asked.add(user);
      this.client.api.user(user).then(
        (p) => {
          this.names.set(user, p.displayName);
          this.renderList();
          this.view?.render();
        },
        () => {},
      );
    }
    return user;
  }

  title(conv: Conversation): string {
    // name() asks the directory once for a name it does not have (after a reload, say) and redraws.
    if ("user" in conv.chat) return this.names.get(conv.chat.user) ?? conv.title ?? this.name(conv.chat.user);
    return conv.title ?? "Group";
  }

  mount(): void {
    const search = h("input", {
      id: "new-chat",
      placeholder: "Start a chat: type a user id and press Enter",
      onkeydown: (ev: Event) => {
        const e = ev as KeyboardEvent;
        if (e.key === "Enter") void this.startChat((e.target as HTMLInputElement).value.trim(), e.target as HTMLInputElement);
      },
    });
    this.status = h("div", { class: "conn", id: "conn-status" });
    this.list = h("ul", { class: "chats", id: "chat-list" });
    this.main = h("main", { class: "conversation empty" }, h("div", { class: "placeholder" }, h("div", { class: "logo" }, icon("chat", 64)), h("p", {}, "Pick a chat, or start one with a user id.")));
    const sidebar = h(
      "aside",
      { class: "sidebar" },
      h(
        "header",
        { class: "me" },
        avatar(this.me),
        h("div", { class: "who" }, h("strong", { id: "me-name" }, this.me), this.status),
        h("button", { class: "icon", title: "New group", id: "new-group", onclick: () => newGroupDialog(this) }, icon("group")),
        h("button", { class: "icon", title: "Sign out", onclick: () => this.signOut() }, icon("logout")),
      ),
      h("div", { class: "search" }, search),
      this.list,
    );
    this.root.replaceChildren(h("div", { class: "app" }, sidebar, this.main));

    const c = this.client;
    c.on("conversation", () => this.renderList());
    c.on("message", () => this.renderList());
    c.on("messageUpdated", () => this.renderList());
    c.on("typing", () => this.renderList());
    // "retrying in N s" counts down while the client waits to reconnect.
    let countdown: ReturnType<typeof setInterval> | undefined;
    const showConnection = (e: { state: string; retryInMs?: number }) => {
      clearInterval(countdown);
      countdown = undefined;
      const retryAt = e.retryInMs !== undefined ? Date.now() + e.retryInMs : undefined;
      const offline = () => (retryAt !== undefined ? `offline, retrying in ${Math.max(0, Math.ceil((retryAt - Date.now()) / 1000))} s` : "offline");
      const text: Record<string, string> = {
        connecting: "connecting…",
        syncing: "syncing…",
        online: "online",
        offline: offline(),
        replaced: "open in another tab",
        stopped: "signed out",
        idle: "",
      };
      this.status.textContent = text[e.state] ?? e.state;
      if (e.state === "offline" && retryAt !== undefined) {
        countdown = setInterval(() => {
          this.status.textContent = offline();
          if (Date.now() >= retryAt) clearInterval(countdown);
        }, 1000);
      }
      this.status.dataset.state = e.state;
      if (e.state === "replaced") toast("Relay is open in another tab; this one stopped.", "error");
      // A stopped tab sends nothing: what it queued would be sealed with keys the other tab has moved on from.
      document.body.classList.toggle("stopped", e.state === "replaced" || e.state === "stopped");
    };
    c.on("connection", showConnection);
    showConnection({ state: c.connectionState });
    c.on("synced", () => this.renderList());
    c.on("gap", (g) => toast(`Some messages expired before this device got them (${g.to - g.from + 1}).`, "error"));
    // A send's failure is said when the message turns failed (its "!" tick says it too).
    c.on("messageUpdated", (e) => {
      if (e.message.status === "failed" && e.previousStatus !== undefined && e.previousStatus !== "failed") {
        toast(`Not sent: ${e.message.error?.message ?? "refused"}`, "error");
      }
    });
    c.on("error", (e) => {
      // Retried by the client (sealing and key upload wait for the network), or nothing the user can act on.
      const quiet = ["bad_server_frame", "seal_failed", "keys_failed", "devices_changed"];
      // About a queued send: the client sends it again, or it turned failed (said above).
      if (e.send || /not supported/.test(e.message) || quiet.includes(e.code)) return;
      toast(e.ref ? `Not sent: ${e.message}` : e.message, "error");
    });
    c.on("identityChanged", (e) => {
      if (this.client.conversations().some((conv) => conv.key === `user:${e.user}`)) toast(`${this.name(e.user)}'s security code changed.`);
    });
    // Open the chat named in the URL hash (#user:bob), so a reload returns to it.
    // Only a chat this device knows: a hand-typed hash must not add a chat that startChat() would refuse.
    let fromHash: Chat | null = null;
    try {
      fromHash = parseChatParam(decodeURIComponent(location.hash.slice(1)));
    } catch {
      // a malformed escape: ignore the hash
    }
    if (fromHash && this.client.conversations().some((conv) => conv.key === chatKey(fromHash))) this.open(fromHash);
    this.drawList();
    setInterval(() => this.view?.renderHeader(), 30_000);
  }

  open(chat: Chat): void {
    if (this.view?.key === chatKey(chat)) return; // already open: keep the draft and the scroll position
    this.view?.destroy();
    this.view = new ConversationView(this, chat);
    this.main.className = "conversation";
    this.main.replaceChildren(this.view.el);
    this.view.mounted();
    history.replaceState(null, "", `#${chatKey(chat)}`);
    this.renderList();
  }

  closeConversation(): void {
    this.view?.destroy();
    this.view = null;
    this.main.className = "conversation empty";
    this.main.replaceChildren();
    history.replaceState(null, "", "#");
  }

  private async startChat(user: string, input: HTMLInputElement): Promise<void> {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(user)) return toast("User ids are 1-64 characters of A-Z a-z 0-9 _ . -", "error");
    if (user === this.me) return toast("That is you.", "error");
    try {
      const p = await this.client.api.user(user);
      this.names.set(user, p.displayName);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return toast(`No user "${user}" has signed in yet.`, "error");
    }
    input.value = "";
    this.open({ user });
  }

  private drawList(): void {
    const openKey = this.view?.key;
    const items = this.client.conversations().map((conv) => {
      const last = conv.lastMessageKey ? this.client.message(conv.lastMessageKey) : undefined;
      const typing = this.client.typingIn(conv.chat);
      let preview: Node | string = "";
      if (typing.length > 0) preview = h("span", { class: "typing" }, "user" in conv.chat ? "typing…" : `${this.name(typing[0]!)} is typing…`);
      else if (last?.system) preview = systemText(last, (u) => this.name(u));
      else if (last) {
        const t = last.mine ? ticks(last) : null;
        const who = "group" in conv.chat && !last.mine ? `${this.name(last.from)}: ` : "";
        const body = last.deleted ? "This message was deleted" : last.undecryptable ? "Waiting for this message" : last.media ? `${last.media.type.startsWith("video/") ? "Video" : "Photo"}${last.media.caption ? ` ${last.media.caption}` : ""}` : (last.text ?? "");
        preview = h("span", {}, t ? h("span", { class: t.cls }, t.glyph) : null, t ? " " : "", who + body);
      }
      const title = this.title(conv);
      return h(
        "li",
        {
          class: `chat${conv.key === openKey ? " active" : ""}`,
          "data-chat": conv.key,
          role: "button",
          tabindex: 0,
          "aria-current": conv.key === openKey ? "true" : "false",
          onclick: () => this.open(conv.chat),
          onkeydown: (ev: Event) => {
            const e = ev as KeyboardEvent;
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              this.open(conv.chat);
            }
          },
        },
        avatar(title, "group" in conv.chat),
        h(
          "div",
          { class: "body" },
          h("div", { class: "line" }, h("span", { class: "title", dir: "auto" }, title), h("span", { class: `time${conv.unread ? " unread" : ""}` }, conv.lastActivity ? listTime(conv.lastActivity) : "")),
          h("div", { class: "line" }, h("span", { class: "preview", dir: "auto" }, preview), conv.unread > 0 ? h("span", { class: "badge", "data-unread": conv.unread }, String(conv.unread)) : null),
        ),
      );
    });
    if (items.length === 0) items.push(h("li", { class: "none" }, "No chats yet."));
    // A keyboard user tabbing through the list keeps its place across redraws (every message, tick, typing).
    const focused = (document.activeElement as HTMLElement | null)?.closest?.<HTMLElement>(".chat")?.dataset.chat;
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector<HTMLElement>(`.chat[data-chat="${CSS.escape(focused)}"]`)?.focus();
  }
}
