// `npm start`: the local server, fully offline. Applies the D1 migrations to the
// local database, then runs `wrangler dev` on 127.0.0.1:$PORT (8787) with dev
// auth on and state persisted under .wrangler/state. Runs under the Node 22 that
// `npm ci` put in node_modules/.bin (npm scripts put it first on PATH).
import { spawn, spawnSync } from "node:child_process";

const port = process.env.PORT ?? "8787";
const persist = process.env.PERSIST_DIR ?? ".wrangler/state";
const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};
const devVars = [
  "DEV_AUTH:true",
  `AUTH_SECRET:${process.env.AUTH_SECRET ?? "local-dev-secret-not-for-production"}`,
  `MEDIA_SIGNING_SECRET:${process.env.MEDIA_SIGNING_SECRET ?? "local-media-secret-not-for-production"}`,
];
if (process.env.ALLOWED_ORIGINS) devVars.push(`ALLOWED_ORIGINS:${process.env.ALLOWED_ORIGINS}`);

const migrate = spawnSync("wrangler", ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], {
  stdio: ["ignore", "inherit", "inherit"],
  env: { ...env, CI: "true" }, // no interactive confirmation
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const args = ["dev", "--ip", "127.0.0.1", "--port", port, "--persist-to", persist, "--show-interactive-dev-session=false"];
for (const v of devVars) args.push("--var", v);
const child = spawn("wrangler", args, { stdio: "inherit", env });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code) => process.exit(code ?? 0));
