// The floor: the least a Durable Object can do to move a frame between sockets.
// No storage, no auth, no parsing beyond JSON.parse. The benchmark measures the
// real server as a ratio to this, in the same run, on the same machine, so the
// figures say how much the messaging logic costs rather than how fast the
// laptop is. Bench-only: production (src/index.ts) does not export it.
//
//   GET /bench/floor/connect?room=<r>&peer=<p>[&replay=<n>]   (WebSocket)
//   frame {"to":"<peer>", ...}  relayed unchanged to that peer's socket
//   frame {"to":"*", ...}       broadcast unchanged to every other socket
//   replay=n                    n canned frames, then {"type":"synced"}, on connect
//                               (the floor of offline catch-up)
//   greet=1                     {"type":"synced"} on connect: a socket that has sent a
//                               frame, as every real one has (the floor of idle memory)
import { DurableObject } from "cloudflare:workers";

export interface FloorEnv {
  FLOOR: DurableObjectNamespace<FloorObject>;
}

export class FloorObject extends DurableObject<FloorEnv> {
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const peer = url.searchParams.get("peer") ?? "anon";
    const replay = Math.min(Number(url.searchParams.get("replay") ?? "0") || 0, 100_000);
    const pair = new WebSocketPair();
    // Hibernatable, tagged by peer, like the real user object's sockets.
    this.ctx.acceptWebSocket(pair[1], [peer]);
    pair[1].serializeAttachment({ peer });
    for (let i = 1; i <= replay; i++) {
      pair[1].send(JSON.stringify({ type: "message", seq: i, msg: `f${i}`, from: "floor", text: `replayed ${i}` }));
    }
    if (replay > 0 || url.searchParams.get("greet") === "1") pair[1].send(JSON.stringify({ type: "synced", head: replay }));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") return;
    const to = floorFrame(message)?.to ?? null;
    if (to === "*") {
      for (const other of this.ctx.getWebSockets()) {
        if (other !== ws) trySend(other, message);
      }
    } else if (to !== null) {
      for (const other of this.ctx.getWebSockets(to)) trySend(other, message);
    }
  }
}

/** A floor frame's `to` and, for a message, its `id`; null for anything else (the floors drop it). */
function floorFrame(message: string): { to: string; id?: string | number } | null {
  try {
    const { to, id } = JSON.parse(message) as { to?: unknown; id?: unknown };
    if (typeof to !== "string") return null;
    return typeof id === "string" || typeof id === "number" ? { to, id } : { to };
  } catch {
    return null;
  }
}

function trySend(ws: WebSocket, data: string): void {
  try {
    ws.send(data);
  } catch {
    // closing socket: the floor does not care
  }
}

export interface DurableFloorEnv {
  DURABLE_FLOOR: DurableObjectNamespace<DurableFloorObject>;
}

/**
 * The durable floor: the least protocol v1 lets a server do. `sent` may only
 * follow a durable write, and every `message` carries the recipient's own inbox
 * `seq`, which is never reused, so it follows a durable write in the
 * recipient's object. This floor does exactly that and nothing else: one
 * SQLite row per object a frame passes through, a hand-off by RPC, a push, and
 * the sender's `sent` once its write is durable. No auth, no schema, no
 * receipts, no outbox, no retry. The distance from the
 * relay floor to this one is the platform's price of durability; the distance
 * from this one to the real server is ours.
 *
 *   GET /bench/durable-floor/connect?room=<r>&peer=<p>[&join=1][&greet=1]   (WebSocket)
 *   frame {"to":"<peer>", ...}  stored in the sender's object, handed to the
 *                               peer's object, stored there, pushed to its sockets
 *   frame {"to":"*", ...}       handed to the room's group object, stored there,
 *                               handed to every member's object at once (each
 *                               stores it and pushes); members are the sockets
 *                               that connected with join=1. The sender's object
 *                               does not store it: the group's write is the
 *                               durable accept, the generous reading of v1.
 *   frame {"to":"^", ...}       a member's answer to its group (a receipt):
 *                               stored in the member's object and in the group's
 *
 * A frame with an "id" (a message, to a peer or to "*") is answered on the
 * sender's socket with {"type":"sent","id":<id>} once it is durable: after the
 * sender's write, which the output gate holds the frame behind, or after the
 * group's write, which the group's answer to the sender's object follows. v1
 * demands it, and locally a frame to a client costs the runtime's one thread
 * some hundreds of microseconds (the socket's pump, the isolate lock), so a
 * floor without it would leave out a cost every server pays. Answers (frames
 * with "ack") get none, as an ack gets none.
 *
 * The bench's floor clients answer every message, as a device acks it and its
 * object hands the receipt back, so the floor carries the return trip v1 also
 * demands ("delivered" follows a durable ack): one more row in each of the two
 * objects.
 */
export class DurableFloorObject extends DurableObject<DurableFloorEnv> {
  private roster: string[] | null = null;

  constructor(ctx: DurableObjectState, env: DurableFloorEnv) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS log (n INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS roster (peer TEXT PRIMARY KEY)");
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const room = url.searchParams.get("room") ?? "default";
    const peer = url.searchParams.get("peer") ?? "anon";
    if (url.searchParams.get("join") === "1") await this.other(room, "*").join(peer);
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [peer]);
    pair[1].serializeAttachment({ room, peer });
    if (url.searchParams.get("greet") === "1") pair[1].send(JSON.stringify({ type: "synced", head: 0 }));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") return;
    const frame = floorFrame(message);
    if (frame === null) return;
    const { room, peer } = ws.deserializeAttachment() as { room: string; peer: string };
    const sent = frame.id === undefined ? null : JSON.stringify({ type: "sent", id: frame.id });
    if (frame.to === "*") {
      // The group's answer follows its write (and the fan-out it started).
      await this.other(room, "*").broadcast(room, peer, message);
      if (sent !== null) trySend(ws, sent);
      return;
    }
    this.store(message);
    // The hand-off first, then `sent`, as the real server orders them: both wait for this write.
    const handed = this.other(room, frame.to === "^" ? "*" : frame.to).deliver(message);
    if (sent !== null) trySend(ws, sent);
    await handed;
  }

  /** The group object's roster: durable, as a real group's is. */
  join(peer: string): void {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO roster (peer) VALUES (?)", peer);
    this.roster = null;
  }

  /**
   * Stores a post and hands it to every member at once. Answers once the post
   * is stored (the output gate holds the answer behind that write), not once
   * every member has it: the sender's `sent` waits for the group's write only.
   */
  broadcast(room: string, from: string, message: string): void {
    this.store(message);
    this.roster ??= this.ctx.storage.sql.exec<{ peer: string }>("SELECT peer FROM roster").toArray().map((r) => r.peer);
    const all = Promise.all(this.roster.filter((p) => p !== from).map((p) => this.other(room, p).deliver(message)));
    this.ctx.waitUntil(all.then(() => undefined));
  }

  deliver(message: string): void {
    this.store(message);
    for (const ws of this.ctx.getWebSockets()) trySend(ws, message);
  }

  private store(message: string): void {
    this.ctx.storage.sql.exec("INSERT INTO log (body) VALUES (?)", message);
  }

  private other(room: string, peer: string): DurableObjectStub<DurableFloorObject> {
    return this.env.DURABLE_FLOOR.getByName(`${room}/${peer}`);
  }
}
