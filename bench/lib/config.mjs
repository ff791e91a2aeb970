// bench/wrangler.toml copies the production bindings by hand (plus the floor).
// This check fails the benchmark loudly when ../wrangler.toml gained a binding,
// class or migration that the bench config lacks, instead of benchmarking a
// Worker that cannot reach it.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const KEYS = /^\s*(binding|class_name|tag|compatibility_date|compatibility_flags|new_sqlite_classes|new_classes)\s*=\s*(.+?)\s*$/gm;

export function checkBenchConfig(root) {
  const prod = readFileSync(join(root, "wrangler.toml"), "utf8");
  const bench = readFileSync(join(root, "bench", "wrangler.toml"), "utf8");
  const have = new Set([...bench.matchAll(KEYS)].map((m) => `${m[1]} = ${m[2]}`));
  const missing = [...prod.matchAll(KEYS)].map((m) => `${m[1]} = ${m[2]}`).filter((line) => !have.has(line));
  if (missing.length > 0) {
    throw new Error(`bench/wrangler.toml is out of step with wrangler.toml; add: ${missing.join("; ")}`);
  }
}
