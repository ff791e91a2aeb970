// Re-renders bench/results/<name>.md and <name>.svg (name: latest unless
// given) from a results JSON (after a change to the report's layout, or to
// look at an older run).
// Usage: node bench/render.mjs bench/results/<timestamp>.json [name]
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderMarkdown } from "./lib/markdown.mjs";
import { renderSvg } from "./lib/svg.mjs";

const [file, name = "latest"] = process.argv.slice(2);
if (!file) throw new Error("usage: node bench/render.mjs <results.json> [name]");
const report = JSON.parse(readFileSync(file, "utf8"));
const dir = join(new URL(".", import.meta.url).pathname, "results");
writeFileSync(join(dir, `${name}.md`), renderMarkdown(report, name));
writeFileSync(join(dir, `${name}.svg`), renderSvg(report));
console.log(`rendered ${file} into bench/results/${name}.md and ${name}.svg`);
