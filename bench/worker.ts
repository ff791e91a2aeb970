// The benchmark's Worker: everything production exports (src/index.ts), plus
// the floor object and its route. Only bench/wrangler.toml points here, so the
// floor never ships.
import app from "../src/index";
import { FloorObject, type FloorEnv } from "./floor";
import type { Env } from "../src/env";

export * from "../src/index";
export { FloorObject };

export default {
  fetch(request: Request, env: Env & FloorEnv, ctx: ExecutionContext): Response | Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/bench/floor/connect") {
      const room = url.searchParams.get("room") ?? "default";
      return env.FLOOR.getByName(room).fetch(request);
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env & FloorEnv>;
