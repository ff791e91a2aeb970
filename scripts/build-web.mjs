// Bundles the web client (web/*.ts, which imports the client library and the
// protocol schemas from src/) into public/app.js, served by Workers Static
// Assets. Run by scripts/setup.mjs (so `npm start`, `npm test` and the browser
// test always serve a fresh bundle) and by `npm run build`/`deploy`. The bundle
// is not committed: it is built in ~0.1 s and a committed copy would go stale.
import { build } from "esbuild";

const root = new URL("..", import.meta.url).pathname;

// zod re-exports every locale (about 200 KB); the client only needs English
// error messages, so the locale index is swapped for English alone.
const englishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${"node_modules"}/zod/`) ? { path: "zod-locales", namespace: "zod-en" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-en" }, () => ({
      contents: `export { default as en } from ${JSON.stringify(`${root}node_modules/zod/v4/locales/en.js`)};`,
      loader: "js",
      resolveDir: root,
    }));
  },
};
const started = Date.now();
await build({
  entryPoints: [`${root}web/main.ts`],
  outfile: `${root}public/app.js`,
  bundle: true,
  minify: true,
  sourcemap: "linked",
  format: "esm",
  target: ["es2022"],
  legalComments: "none",
  logLevel: "warning",
  plugins: [englishOnly],
});
if (process.env.QUIET_BUILD !== "1") console.error(`[build-web] public/app.js in ${Date.now() - started} ms`);
