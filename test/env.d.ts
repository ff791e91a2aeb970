import type { D1Migration } from "cloudflare:test";
import type { Env as ServerEnv } from "../src/env";

declare global {
  namespace Cloudflare {
    interface GlobalProps {
      mainModule: typeof import("../src/index");
      durableNamespaces: "UserObject" | "GroupObject";
    }
    interface Env extends ServerEnv {
      TEST_MIGRATIONS: D1Migration[];
    }
  }
}
