// `npm start`: the server and the web client at http://127.0.0.1:${PORT:-8787}/,
// fully offline, with development sign-in (DEV_AUTH) and state persisted in
// .wrangler/state. AUTH_SECRET, MEDIA_SIGNING_SECRET and ALLOWED_ORIGINS in the
// environment override the development values. Ctrl-C stops it all.
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.PORT ?? 8787);
const root = new URL("..", import.meta.url).pathname;
const vars = {};
for (const name of ["AUTH_SECRET", "MEDIA_SIGNING_SECRET", "ALLOWED_ORIGINS"]) if (process.env[name]) vars[name] = process.env[name];

console.error(`Starting relay on http://127.0.0.1:${port}/ ...`);
let server;
try {
  server = await startDevServer({ port, persistTo: `${root}.wrangler/state`, stdio: "inherit", vars, handleSignals: false });
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    server.stop("SIGTERM");
    setTimeout(() => process.exit(0), 300);
  });
}
server.child.on("exit", (code) => process.exit(code ?? 0));
console.error(`\n  Relay is running: ${server.url}/\n`);
