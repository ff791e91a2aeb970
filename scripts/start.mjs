// `npm start`: the server and the web client at http://127.0.0.1:${PORT:-8787}/,
// with development sign-in, persisting to .wrangler/state. Ctrl-C stops it all.
import { startDevServer } from "./dev-server.mjs";

const port = Number(process.env.PORT ?? 8787);
const root = new URL("..", import.meta.url).pathname;
const server = startDevServer({ port, persistTo: `${root}.wrangler/state`, stdio: "inherit" });
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    server.stop();
    setTimeout(() => process.exit(0), 300);
  });
}
server.child.on("exit", (code) => process.exit(code ?? 0));
server.ready.then(
  () => console.error(`\n  Relay is running: ${server.url}/\n`),
  (err) => {
    console.error(err.message);
    server.stop();
    process.exit(1);
  },
);
