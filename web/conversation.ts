// The open conversation: header (name, online / last seen / typing…, a lock
// when it is end-to-end encrypted), the message list (bubbles with ticks,
// media inline, date separators, older history loaded on scroll) and the
// composer (text, typing, image/video send).
import { chatKey, type Chat, type ChatMessage, type Conversation } from "../src/client";
import type { App } from "./app";
import { chatInfoDialog, messageInfoDialog, safetyNumberDialog, sendMediaDialog } from "./dialogs";
import { avatar, coalesce, fill, h, toast } from "./dom";
import { clock, dayLabel, lastSeen, systemText, ticks } from "./format";
import { icon } from "./icons";
import { MAX_TEXT_CHARS } from "../src/limits";

export class ConversationView {
  readonly el: HTMLElement;
  readonly key: string;
  private readonly rows = new Map<string, { el: HTMLElement; sig: string }>();
  private readonly list: HTMLElement;
  private readonly head: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly historyNote: HTMLElement;
  private readonly e2eeNote: HTMLElement;
  private readonly composer: HTMLElement;
  /** Shown instead of the composer in a group this user left or was removed from. */
  private readonly leftNote: HTMLElement;
  private readonly offs: Array<() => void> = [];
  private order = "";
  /** How many messages the list shows, and the calendar day of the last one (for appending). */
  private shown = 0;
  private lastDay = "";
  private loading = false;
  readonly render = coalesce(() => this.draw());

  constructor(
    private readonly app: App,
    readonly chat: Chat,
  ) {
    this.key = chatKey(chat);
    this.head = h("header", { class: "conv-head" });
    this.historyNote = h("div", { class: "history-note" });
    this.e2eeNote = h("div", { class: "row system e2ee-note", id: "e2ee-banner", onclick: () => this.verify() });
    this.list = h("div", { class: "messages", id: "messages", onscroll: () => this.onScroll() }, this.historyNote, this.e2eeNote);
    const file = h("input", { type: "file", accept: "image/*,video/*", id: "attach-input", hidden: true, onchange: () => this.attach(file) });
    this.input = h("textarea", {
      id: "composer-input",
      rows: 1,
      maxlength: MAX_TEXT_CHARS,
      dir: "auto",
      placeholder: "Type a message",
      oninput: () => {
        this.app.client.typing(this.chat);
        this.input.style.height = "auto";
        this.input.style.height = `${Math.min(this.input.scrollHeight, 140)}px`;
      },
      onkeydown: (ev: Event) => {
        const e = ev as KeyboardEvent;
        // Enter while an input method is composing (Japanese, Chinese...) picks the word, not send.
        if (e.isComposing || e.keyCode === 229) return;
        if (e.key === "Enter" && !e.shiftKey) {
          e.preventDefault();
          this.sendText();
        }
      },
    });
    const composer = (this.composer = h(
      "footer",
      { class: "composer" },
      h("button", { class: "icon", title: "Send a photo or video", id: "attach", onclick: () => file.click() }, icon("attach")),
      file,
      this.input,
      h("button", { class: "send", id: "send", title: "Send", onclick: () => this.sendText() }, icon("send")),
    ));
    this.leftNote = h("footer", { class: "composer left-note", id: "left-note", role: "status", hidden: true }, "You can't send messages to this group because you're no longer a member.");
    this.el = h("section", { class: "conv", "data-chat": this.key }, this.head, this.list, composer, this.leftNote);
    const c = app.client;
    const mine = (k: string) => k === this.key;
    this.offs.push(
      c.on("message", (e) => mine(e.message.chatKey) && this.render()),
      c.on("messageUpdated", (e) => mine(e.message.chatKey) && this.render()),
      c.on("conversation", (conv) => mine(conv.key) && this.render()),
      c.on("typing", (e) => mine(e.chatKey) && this.renderHeader()),
      c.on("presence", (p) => "user" in this.chat && p.user === this.chat.user && this.renderHeader()),
    );
  }

  get conv(): Conversation {
    return this.app.client.conversation(this.chat);
  }

  mounted(): void {
    this.app.client.openChat(this.chat);
    this.draw();
    this.list.scrollTop = this.list.scrollHeight;
    if (!this.composer.hidden) this.input.focus();
    // A short local history: ask the server for more (permanent chats).
    if (this.app.client.messages(this.chat).length < 30) void this.loadOlder();
  }

  destroy(): void {
    for (const off of this.offs) off();
    this.app.client.closeChat();
  }

  renderHeader(): void {
    const conv = this.conv;
    const title = this.app.title(conv);
    const typing = this.app.client.typingIn(this.chat);
    let sub = "";
    if (typing.length > 0) sub = "user" in this.chat ? "typing…" : `${typing.map((u) => this.app.name(u)).join(", ")} typing…`;
    else if ("user" in this.chat) sub = lastSeen(this.app.client.presenceOf(this.chat.user));
    else sub = "tap for group info";
    const flags = [conv.retention === "permanent" ? "permanent" : null, conv.disappearAfterSeconds ? "disappearing" : null].filter(Boolean).join(" · ");
    const on = conv.encryption === "on";
    const lock = conv.encryption
      ? h(
          "button",
          {
            class: `icon lock${on ? " on" : " off"}${conv.securityChanged ? " changed" : ""}`,
            id: "e2ee-lock",
            "data-encryption": conv.encryption,
            title: on ? (conv.securityChanged ? "The security code changed: verify it" : "End-to-end encrypted: verify the security code") : (conv.encryptionNote ?? "Not end-to-end encrypted"),
            onclick: () => this.verify(),
          },
          icon(on ? (conv.securityChanged ? "warning" : "lock") : "unlocked", 18),
        )
      : null;
    fill(this.head,
      h("button", { class: "icon back", title: "Back", onclick: () => this.app.closeConversation() }, icon("back")),
      avatar(title, "group" in this.chat),
      h("div", { class: "who", onclick: () => chatInfoDialog(this.app, this.chat) }, h("div", { class: "title", id: "conv-title" }, title), h("div", { class: `subtitle${typing.length ? " typing" : ""}`, id: "peer-status" }, sub)),
      flags ? h("span", { class: "flags" }, flags) : null,
      lock,
      h("button", { class: "icon", title: "Chat info and settings", id: "chat-info", onclick: () => chatInfoDialog(this.app, this.chat) }, icon("more")),
    );
    const left = "group" in this.chat && conv.left === true;
    this.composer.hidden = left;
    this.leftNote.hidden = !left;
    this.e2eeNote.dataset.encryption = conv.encryption ?? "";
    fill(
      this.e2eeNote,
      conv.encryption
        ? h(
            "div",
            { class: "pill" },
            icon(on ? "lock" : "unlocked", 12),
            on ? " Messages are end-to-end encrypted. No one outside this chat, not even the server, can read them." : ` Not end-to-end encrypted: ${conv.encryptionNote ?? "a recipient has no keys"}.`,
          )
        : null,
    );
  }

  /** The lock: the safety number of a one-to-one chat, the member list of a group. */
  private verify(): void {
    if ("user" in this.chat && this.conv.encryption === "on") void safetyNumberDialog(this.app, this.chat.user);
    else void chatInfoDialog(this.app, this.chat);
  }

  private draw(): void {
    this.renderHeader();
    const messages = this.app.client.messages(this.chat);
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 120;
    const lastMine = messages.at(-1)?.mine && messages.at(-1)?.status === "pending";
    for (const m of messages) this.row(m);
    const order = messages.map((m) => m.key).join("\n");
    if (order !== this.order) {
      const before = this.list.scrollHeight;
      const prependedOnly = this.order !== "" && order.endsWith(this.order);
      // The common case, a new message at the end: append its rows, not rebuild 500 of them.
      const appendedOnly = this.order !== "" && order.startsWith(`${this.order}\n`);
      this.order = order;
      const nodes: Node[] = appendedOnly ? [] : [this.historyNote, this.e2eeNote];
      let lastDay = appendedOnly ? this.lastDay : "";
      for (const m of appendedOnly ? messages.slice(this.shown) : messages) {
        // By calendar day, not label: "Today" shown yesterday must not swallow today's separator.
        const d = new Date(m.ts).toDateString();
        if (d !== lastDay) nodes.push(h("div", { class: "day" }, h("span", {}, dayLabel(m.ts))));
        lastDay = d;
        nodes.push(this.rows.get(m.key)!.el);
      }
      if (appendedOnly) this.list.append(...nodes);
      else this.list.replaceChildren(...nodes);
      this.shown = messages.length;
      this.lastDay = lastDay;
      if (prependedOnly) this.list.scrollTop += this.list.scrollHeight - before;
    }
    if (nearBottom || lastMine) this.list.scrollTop = this.list.scrollHeight;
    this.historyNote.textContent = this.conv.historyComplete ? "" : this.loading ? "Loading older messages…" : "";
  }

  /** The row of a message, rebuilt only when something visible changed. */
  private row(m: ChatMessage): void {
    const sig = [m.status, m.text, m.deleted, m.edited, m.media?.id, m.undecryptable, "group" in this.chat ? this.app.name(m.from) : ""].join("|");
    const have = this.rows.get(m.key);
    if (have && have.sig === sig) return;
    const el = have?.el ?? h("div", {});
    el.className = m.system ? "row system" : `row ${m.mine ? "mine" : "theirs"}`;
    el.dataset.key = m.key;
    if (m.msg) el.dataset.msg = m.msg;
    if (m.status) el.dataset.status = m.status;
    if (m.system) {
      el.replaceChildren(h("div", { class: "pill" }, systemText(m, (u) => this.app.name(u))));
    } else {
      const t = m.mine ? ticks(m) : null;
      const bubble = h(
        "div",
        { class: "bubble", onclick: () => m.mine && m.msg && messageInfoDialog(this.app, m) },
        "group" in this.chat && !m.mine ? h("div", { class: "sender", dir: "auto" }, this.app.name(m.from)) : null,
        m.media && !m.deleted ? this.media(m) : null,
        m.deleted
          ? h("div", { class: "text deleted" }, "This message was deleted")
          : m.undecryptable
            ? h("div", { class: "text undecryptable", "data-code": m.undecryptable }, icon("lock", 12), m.undecryptable === "no_sender_key" ? " Waiting for this message. This may take a while." : " This message cannot be decrypted on this device.")
            : m.text
              ? h("div", { class: "text", dir: "auto" }, m.text)
              : m.media?.caption
                ? h("div", { class: "text", dir: "auto" }, m.media.caption)
                : null,
        h("div", { class: "meta" }, m.edited ? h("span", { class: "edited" }, "edited") : null, h("span", { class: "time" }, clock(m.ts)), t ? h("span", { class: t.cls, title: t.title }, t.cls.includes("pending") ? icon("clock", 12) : t.glyph) : null),
      );
      el.replaceChildren(bubble);
    }
    this.rows.set(m.key, { el, sig });
  }

  private media(m: ChatMessage): HTMLElement {
    const media = m.media!;
    const video = media.type.startsWith("video/");
    const box = h("div", { class: "media" });
    if (media.width && media.height) box.style.aspectRatio = `${media.width} / ${media.height}`;
    // Base64 only (the client library checks a peer's thumb too): nothing can close the url().
    if (media.thumb && /^[A-Za-z0-9+/]+={0,2}$/.test(media.thumb)) box.style.backgroundImage = `url(data:image/jpeg;base64,${media.thumb})`;
    void this.app.client
      .mediaUrl(m)
      .then((url) => {
        if (!url) return;
        const el = video ? h("video", { src: url, controls: true, preload: "metadata" }) : h("img", { src: url, alt: media.caption ?? "photo", loading: "lazy" });
        el.addEventListener("error", () => box.classList.add("broken"));
        box.replaceChildren(el);
      })
      // Expired, deleted or undecryptable: say so instead of an empty tile and an uncaught error.
      .catch(() => box.classList.add("broken"));
    return box;
  }

  private onScroll(): void {
    if (this.list.scrollTop < 80) void this.loadOlder();
  }

  private async loadOlder(): Promise<void> {
    if (this.loading || this.conv.historyComplete) return;
    this.loading = true;
    this.render();
    try {
      await this.app.client.loadOlder(this.chat, 40);
    } finally {
      this.loading = false;
      this.render();
    }
  }

  private sendText(): void {
    const text = this.input.value.trim();
    if (!text) return;
    if (this.app.client.connectionState === "replaced") return void toast("Relay is open in another tab: reload to use it here.", "error");
    // Kept in the composer rather than cleared and then refused.
    if (text.length > MAX_TEXT_CHARS) return void toast(`A message holds at most ${MAX_TEXT_CHARS} characters.`, "error");
    this.input.value = "";
    this.input.style.height = "auto";
    this.app.client.send(this.chat, { text });
  }

  private attach(input: HTMLInputElement): void {
    const file = input.files?.[0];
    input.value = "";
    if (!file) return;
    if (!file.type.startsWith("image/") && !file.type.startsWith("video/")) return toast("Only photos and videos can be sent.", "error");
    void sendMediaDialog(this.app, this.chat, file);
  }
}
