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
    let to: unknown;
    try {
      to = (JSON.parse(message) as { to?: unknown }).to;
    } catch {
      return;
    }
    if (to === "*") {
      for (const other of this.ctx.getWebSockets()) {
        if (other !== ws) trySend(other, message);
      }
    } else if (typeof to === "string") {
      for (const other of this.ctx.getWebSockets(to)) trySend(other, message);
    }
  }
}

function trySend(ws: WebSocket, data: string): void {
  try {
    ws.send(data);
  } catch {
    // closing socket: the floor does not care
  }
}
