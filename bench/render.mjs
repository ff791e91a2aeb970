// Re-renders bench/results/latest.md and latest.svg from a results JSON
// (after a change to the report's layout, or to look at an older run).
// Usage: node bench/render.mjs bench/results/<timestamp>.json
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderMarkdown } from "./lib/markdown.mjs";
import { renderSvg } from "./lib/svg.mjs";

const file = process.argv[2];
if (!file) throw new Error("usage: node bench/render.mjs <results.json>");
const report = JSON.parse(readFileSync(file, "utf8"));
const dir = join(new URL(".", import.meta.url).pathname, "results");
writeFileSync(join(dir, "latest.md"), renderMarkdown(report));
writeFileSync(join(dir, "latest.svg"), renderSvg(report));
console.log(`rendered ${file} into bench/results/latest.md and latest.svg`);
