// A few DOM helpers so the app needs no framework: element creation with
// attributes and children, and a coalesced re-render per animation frame.
import { icon } from "./icons";

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | ((ev: Event) => void) | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (k === "class") el.className = String(v);
    else if (k === "text") el.textContent = String(v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
}

/** replaceChildren that skips null/false children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

export function $(selector: string, root: ParentNode = document): HTMLElement {
  const el = root.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`no element ${selector}`);
  return el;
}

/** Runs fn once on the next animation frame however often it is asked. */
export function coalesce(fn: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/** A short message at the bottom of the screen. */
export function toast(text: string, kind: "info" | "error" = "info"): void {
  const el = h("div", { class: `toast ${kind}`, role: "status" }, text);
  document.body.append(el);
  setTimeout(() => el.classList.add("gone"), 3500);
  setTimeout(() => el.remove(), 4000);
}

/**
 * A modal dialog; resolves when closed. `body` gets a close function. Escape
 * closes it, Tab stays inside it, and focus goes back where it was.
 */
export function dialog(title: string, body: (close: () => void) => Node): Promise<void> {
  return new Promise((resolve) => {
    const opener = document.activeElement as HTMLElement | null;
    const close = () => {
      backdrop.remove();
      opener?.focus();
      resolve();
    };
    const box = h(
      "div",
      { class: "dialog", role: "dialog", "aria-modal": "true", "aria-label": title },
      h("header", {}, h("h2", {}, title), h("button", { class: "icon close", title: "Close", onclick: close }, icon("close", 20))),
      body(close),
    );
    const backdrop: HTMLElement = h("div", { class: "backdrop", onclick: (ev: Event) => ev.target === backdrop && close() }, box);
    backdrop.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") return close();
      if (ev.key !== "Tab") return;
      const focusable = [...box.querySelectorAll<HTMLElement>("input, textarea, select, button, a[href], [tabindex]")].filter((el) => !el.hasAttribute("disabled") && !el.hidden);
      const [first, last] = [focusable[0], focusable.at(-1)];
      if (!first || !last) return;
      if (ev.shiftKey && document.activeElement === first) (ev.preventDefault(), last.focus());
      else if (!ev.shiftKey && document.activeElement === last) (ev.preventDefault(), first.focus());
    });
    document.body.append(backdrop);
    backdrop.querySelector<HTMLElement>("input, textarea, select, button:not(.close)")?.focus();
  });
}

const PALETTE = ["#e17076", "#7bc862", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774", "#d4a72c"];

export function avatar(name: string, group = false): HTMLElement {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  if (group) return h("div", { class: "avatar", style: `background:${PALETTE[hash % PALETTE.length]}` }, icon("group", 24));
  // Letters and digits of any script; a word's first code point (not half of a surrogate pair).
  const words = name.replace(/[^\p{L}\p{N}]/gu, " ").trim().split(/\s+/).filter(Boolean);
  const initials = words.map((w) => [...w][0]!).slice(0, 2).join("").toLocaleUpperCase() || "?";
  return h("div", { class: "avatar", style: `background:${PALETTE[hash % PALETTE.length]}` }, initials);
}
