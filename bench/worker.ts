// The benchmark's Worker: everything production exports (src/index.ts), plus
// the floor objects and their routes. Only bench/wrangler.toml points here, so the
// floor never ships.
import app from "../src/index";
import { DurableFloorObject, FloorObject, type DurableFloorEnv, type FloorEnv } from "./floor";
import type { Env } from "../src/env";

export * from "../src/index";
export { DurableFloorObject, FloorObject };

export default {
  fetch(request: Request, env: Env & FloorEnv & DurableFloorEnv, ctx: ExecutionContext): Response | Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/bench/floor/connect") {
      const room = url.searchParams.get("room") ?? "default";
      return env.FLOOR.getByName(room).fetch(request);
    }
    if (url.pathname === "/bench/durable-floor/connect") {
      const room = url.searchParams.get("room") ?? "default";
      const peer = url.searchParams.get("peer") ?? "anon";
      return env.DURABLE_FLOOR.getByName(`${room}/${peer}`).fetch(request);
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env & FloorEnv & DurableFloorEnv>;
