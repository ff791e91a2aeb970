// The web client's entry: sign in with a development token (POST /v1/dev/token),
// keep the session in localStorage, then start the client library with an
// IndexedDB store (so a reload loses nothing) and mount the app.
import { ChatClient, IndexedDbStore, MemoryStore, indexedDbAvailable, randomId } from "../src/client";
import { App } from "./app";
import { $, h, toast } from "./dom";
import { icon } from "./icons";

interface Session {
  user: string;
  token: string;
  expiresAt: number;
}

const SESSION_KEY = "relay.session";

function loadSession(): Session | null {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null") as Session | null;
    return s && typeof s.user === "string" && typeof s.token === "string" ? s : null;
  } catch {
    return null;
  }
}

async function devToken(user: string): Promise<Session> {
  const res = await fetch("/v1/dev/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }) });
  const body = (await res.json().catch(() => ({}))) as { token?: string; expiresAt?: number; error?: { message?: string } };
  if (res.status === 404) throw new Error("Development sign-in is turned off on this server.");
  if (!res.ok || !body.token) throw new Error(body.error?.message ?? `sign-in failed (${res.status})`);
  return { user, token: body.token, expiresAt: body.expiresAt ?? Date.now() + 3600_000 };
}

function showSignIn(root: HTMLElement): void {
  const error = h("p", { class: "error", role: "alert" });
  const userInput = h("input", { id: "signin-user", placeholder: "your user id, e.g. alice", autocomplete: "username", pattern: "[A-Za-z0-9_.\\-]{1,64}", required: true });
  const nameInput = h("input", { id: "signin-name", placeholder: "display name (optional)" });
  const button = h("button", { type: "submit", class: "primary", id: "signin-submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        button.disabled = true;
        error.textContent = "";
        try {
          const session = await devToken(userInput.value.trim());
          localStorage.setItem(SESSION_KEY, JSON.stringify(session));
          const displayName = nameInput.value.trim();
          if (displayName) {
            await fetch("/v1/me", { method: "PUT", headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" }, body: JSON.stringify({ displayName }) }).catch(() => {});
          }
          await start(root, session);
        } catch (err) {
          error.textContent = err instanceof Error ? err.message : String(err);
          button.disabled = false;
        }
      },
    },
    h("div", { class: "logo" }, icon("chat", 56)),
    h("h1", {}, "Relay"),
    h("p", { class: "hint" }, "Development sign-in: any user id gets a token."),
    userInput,
    nameInput,
    button,
    error,
  );
  root.replaceChildren(h("div", { class: "signin-wrap" }, form));
  userInput.focus();
}

async function start(root: HTMLElement, session: Session): Promise<void> {
  let current = session;
  // One device id per browser profile and user, so a reload resumes the same inbox position.
  const deviceKey = `relay.device.${session.user}`;
  const device = localStorage.getItem(deviceKey) ?? randomId("web");
  localStorage.setItem(deviceKey, device);
  const client = new ChatClient({
    baseUrl: location.origin,
    user: session.user,
    device,
    store: indexedDbAvailable() ? new IndexedDbStore(`relay-chat:${session.user}`) : new MemoryStore(),
    token: async () => {
      if (current.expiresAt - Date.now() < 5 * 60_000) {
        current = await devToken(current.user);
        localStorage.setItem(SESSION_KEY, JSON.stringify(current));
      }
      return current.token;
    },
  });
  const app = new App(client, root, () => {
    localStorage.removeItem(SESSION_KEY);
    void client.stop().then(() => location.reload());
  });
  // Repeated failures to connect may be a token the server no longer accepts
  // (a changed secret): mint a new one before the next attempt.
  client.on("connection", (e) => {
    if (e.state === "offline" && e.attempt >= 3) current = { ...current, expiresAt: 0 };
  });
  try {
    await client.start();
  } catch (err) {
    toast(`Could not open the local message store: ${err instanceof Error ? err.message : String(err)}`, "error");
    return;
  }
  // Mounted after the store is loaded, so the first render shows the stored chats.
  app.mount();
  (window as unknown as { relay: unknown }).relay = { client, app };
  const foreground = () => client.setForeground(document.visibilityState === "visible");
  document.addEventListener("visibilitychange", foreground);
  foreground();
  window.addEventListener("online", () => client.reconnectNow());
  // A reload or a closed tab would otherwise leave "typing…" on the peer's screen until it expires.
  window.addEventListener("pagehide", () => client.stopAllTyping());
}

const root = $("#root");
const session = loadSession();
if (session) void start(root, session);
else showSignIn(root);
