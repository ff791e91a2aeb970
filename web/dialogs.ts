// Dialogs: new group, chat info (encryption, group members and admin actions;
// temporary / permanent and disappearing settings), the safety number of an
// encrypted chat, message info (per-member delivered and read times in a group)
// and the media preview before sending. Failures are explained in the dialog.
import { ApiError, type Chat, type ChatMessage, type Group } from "../src/client";
import type { App } from "./app";
import { dialog, fill, h, toast } from "./dom";
import { icon } from "./icons";
import { bytes, clock, dayLabel, duration } from "./format";
import { hintsFor } from "./media";

function explain(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 404 && err.code === "not_found" && /route/.test(err.message)) return "This server does not support that yet.";
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

function users(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

export function newGroupDialog(app: App): Promise<void> {
  return dialog("New group", (close) => {
    const name = h("input", { id: "group-name", placeholder: "Group name", maxlength: 100 });
    const members = h("input", { id: "group-members", placeholder: "Members: user ids, separated by commas" });
    const err = h("p", { class: "error" });
    return h(
      "form",
      {
        class: "form",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          const button = (ev.target as HTMLFormElement).querySelector("button[type=submit]") as HTMLButtonElement | null;
          if (button?.disabled) return; // a double click makes one group
          if (button) button.disabled = true;
          try {
            const g = await app.client.createGroup(name.value.trim() || "New group", users(members.value));
            close();
            app.open({ group: g.id });
          } catch (e) {
            err.textContent = explain(e);
          } finally {
            if (button) button.disabled = false;
          }
        },
      },
      name,
      members,
      err,
      h("button", { type: "submit", class: "primary", id: "group-create" }, "Create group"),
    );
  });
}

const DISAPPEAR: Array<[string, number | null]> = [
  ["Off", null],
  ["1 hour", 3600],
  ["24 hours", 86_400],
  ["7 days", 7 * 86_400],
  ["90 days", 90 * 86_400],
];

function settingsForm(app: App, chat: Chat): HTMLElement {
  const conv = app.client.conversation(chat);
  const retention = h(
    "select",
    { id: "retention" },
    h("option", { value: "temporary", selected: conv.retention !== "permanent" }, "Temporary: the server forgets messages once delivered"),
    h("option", { value: "permanent", selected: conv.retention === "permanent" }, "Permanent: the server keeps the history"),
  );
  // A timer another client set that is not one of ours is shown as it is, so saving keeps it.
  const current = conv.disappearAfterSeconds ?? null;
  const choices = DISAPPEAR.some(([, s]) => s === current) ? DISAPPEAR : [...DISAPPEAR, [duration(current!), current] as [string, number | null]];
  const disappear = h("select", { id: "disappear" }, ...choices.map(([label, s]) => h("option", { value: String(s ?? 0), selected: current === s }, label)));
  const note = h("p", { class: "hint" });
  return h(
    "form",
    {
      class: "form",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const seconds = Number(disappear.value);
        try {
          await app.client.setChatSettings(chat, { retention: retention.value as "temporary" | "permanent", disappearAfterSeconds: seconds > 0 ? seconds : null });
          note.textContent = `Saved${seconds > 0 ? `: messages disappear after ${duration(seconds)}` : ""}.`;
        } catch (e) {
          note.textContent = explain(e);
        }
      },
    },
    h("label", {}, "Messages", retention),
    h("label", {}, "Disappearing messages", disappear),
    h("button", { type: "submit", class: "primary", id: "settings-save" }, "Save settings"),
    note,
  );
}

export function chatInfoDialog(app: App, chat: Chat): Promise<void> {
  const title = app.title(app.client.conversation(chat));
  return dialog(title, (close) => {
    const body = h("div", { class: "info" });
    if ("user" in chat) {
      const conv = app.client.conversation(chat);
      const encryption =
        conv.encryption === "on"
          ? h("button", { class: "link", id: "verify-safety", onclick: () => (close(), void safetyNumberDialog(app, chat.user)) }, icon("lock", 14), " Encrypted end to end. Verify the security code")
          : h("p", { class: "hint" }, icon("unlocked", 14), ` Not end-to-end encrypted${conv.encryptionNote ? `: ${conv.encryptionNote}` : ""}.`);
      body.append(h("p", { class: "hint" }, `User id: ${chat.user}`), encryption, settingsForm(app, chat));
      return body;
    }
    const members = h("div", { class: "members" }, h("p", { class: "hint" }, "Loading members…"));
    body.append(members, settingsForm(app, chat));
    const draw = (g: Group) => {
      const amAdmin = g.members.some((m) => m.user === app.me && m.role === "admin");
      const add = h("input", { id: "add-member", placeholder: "Add members: user ids" });
      fill(
        members,
        h("h3", {}, `${g.members.length} members`),
        h(
          "ul",
          {},
          ...g.members.map((m) =>
            h(
              "li",
              {},
              h("span", {}, app.name(m.user)),
              m.role === "admin" ? h("span", { class: "role" }, "admin") : null,
              amAdmin && m.user !== app.me && m.role !== "admin" ? h("button", { class: "link", onclick: () => act(() => app.client.api.makeAdmin(g.id, m.user)) }, "make admin") : null,
              amAdmin && m.user !== app.me ? h("button", { class: "link danger", onclick: () => act(() => app.client.api.removeMember(g.id, m.user)) }, "remove") : null,
            ),
          ),
        ),
        amAdmin
          ? h("form", { class: "row-form", onsubmit: (ev: Event) => (ev.preventDefault(), act(() => app.client.api.addMembers(g.id, users(add.value)))) }, add, h("button", { type: "submit", id: "add-member-submit" }, "Add"))
          : null,
        h("button", { class: "link danger", onclick: () => act(() => app.client.api.removeMember(g.id, app.me)).then(close) }, "Leave group"),
      );
    };
    const refresh = () =>
      app.client.api.group(chat.group).then(draw, (e) => members.replaceChildren(h("p", { class: "hint" }, `Members unavailable: ${explain(e)}`)));
    const act = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        await refresh();
      } catch (e) {
        toast(explain(e), "error");
      }
    };
    void refresh();
    return body;
  });
}

/**
 * The safety number of the chat with `user`: 60 digits over both people's
 * device keys. Both see the same number; if they differ, someone is in between.
 */
export function safetyNumberDialog(app: App, user: string): Promise<void> {
  return dialog("Verify security code", () => {
    const digits = h("div", { class: "safety", id: "safety-number", "aria-live": "polite" }, h("span", { class: "hint" }, "Computing…"));
    const devices = h("p", { class: "hint" });
    app.client.safetyNumber(user).then(
      (n) => {
        digits.dataset.digits = n.digits;
        fill(digits, ...n.digits.split(" ").map((group) => h("span", {}, group)));
        devices.textContent = `Over your ${n.mine} device${n.mine === 1 ? "" : "s"} and ${app.name(user)}'s ${n.theirs}. Adding or replacing a device changes it.`;
      },
      (e) => fill(digits, h("span", { class: "error" }, `Unavailable: ${explain(e)}`)),
    );
    return h(
      "div",
      { class: "info" },
      h("div", { class: "logo" }, icon("lock", 40)),
      h("p", {}, `To verify that messages with ${app.name(user)} are end-to-end encrypted, compare this number with the one on their screen. If it matches, nobody is in between.`),
      digits,
      devices,
    );
  });
}

export function messageInfoDialog(app: App, m: ChatMessage): Promise<void> {
  return dialog("Message info", () => {
    const body = h("div", { class: "info", id: "message-info" }, h("p", {}, m.text ?? m.media?.caption ?? (m.media ? "Photo or video" : "")), h("p", { class: "hint" }, `Sent ${dayLabel(m.ts)} at ${clock(m.ts)} · status: ${m.status ?? ""}`));
    if ("group" in m.chat && m.msg) {
      const list = h("ul", { class: "receipts" }, h("li", {}, "Loading…"));
      body.append(list);
      const at = (ts: number | null | undefined) => (ts ? `${dayLabel(ts)} ${clock(ts)}` : "—");
      app.client.api.messageReceipts(m.chat.group, m.msg).then(
        (rows) => list.replaceChildren(...rows.map((r) => h("li", {}, h("strong", {}, app.name(r.user)), h("span", { class: "tick read" }, "✓✓"), ` read ${at(r.readAt)}`, h("span", { class: "tick delivered" }, " ✓✓"), ` delivered ${at(r.deliveredAt)}`))),
        (e) => list.replaceChildren(h("li", { class: "hint" }, `Receipts unavailable: ${explain(e)}`)),
      );
    }
    return body;
  });
}

export function sendMediaDialog(app: App, chat: Chat, file: File): Promise<void> {
  // The preview's URL goes when the dialog does, sent or not.
  const url = URL.createObjectURL(file);
  return dialog("Send " + (file.type.startsWith("video/") ? "video" : "photo"), (close) => {
    const preview = file.type.startsWith("video/") ? h("video", { src: url, controls: true, muted: true }) : h("img", { src: url, alt: "preview" });
    const caption = h("input", { id: "media-caption", placeholder: "Add a caption" });
    const bar = h("progress", { max: 1, value: 0, hidden: true });
    const err = h("p", { class: "error" });
    const send = h("button", { type: "submit", class: "primary", id: "media-send" }, "Send");
    return h(
      "form",
      {
        class: "form media-preview",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          send.disabled = true;
          bar.hidden = false;
          try {
            const hints = await hintsFor(file);
            const text = caption.value.trim();
            await app.client.sendMedia(chat, file, { ...hints, ...(text ? { caption: text } : {}), onProgress: (p) => (bar.value = p.total ? p.loaded / p.total : 0) });
            close();
          } catch (e) {
            err.textContent = e instanceof ApiError && e.status === 404 ? "This server does not accept media yet." : `Upload failed: ${explain(e)}`;
            send.disabled = false;
          }
        },
      },
      h("div", { class: "preview" }, preview),
      h("p", { class: "hint" }, `${file.name} · ${bytes(file.size)}`),
      caption,
      bar,
      err,
      send,
    );
  }).finally(() => URL.revokeObjectURL(url));
}
