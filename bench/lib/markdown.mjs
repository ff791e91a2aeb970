// The benchmark report as Markdown (bench/results/latest.md): one table of
// latencies with their floors and ratios, one of other figures, the targets
// with what was measured, and notes (skips, errors, caveats).

const ms = (v) => (v === null || v === undefined ? "–" : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const x = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(v >= 10 ? 0 : 2)}×`);
const num = (v) => (v === null || v === undefined ? "–" : v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(1));
const esc = (s) => String(s).replace(/\|/g, "\\|");

/** The state's filesystem, and what a commit costs on it here. */
const storage = (fs) =>
  fs === "tmpfs"
    ? "tmpfs, a RAM disk: a commit does not wait for a disk sync"
    : `${fs ?? "disk"}: every commit waits for a disk sync on the runtime's one thread, which stops every object meanwhile`;

/** `name`: the files' base name in bench/results/ (latest, or --as), for the links to the chart and the JSON. */
export function renderMarkdown(report, name = "latest") {
  const out = [];
  out.push("# Benchmark results", "");
  out.push(
    `Run ${report.startedAt.slice(0, 16).replace("T", " ")} UTC, mode **${report.mode}** (scale ${report.scale}), commit \`${report.commit}\`, ` +
      `${report.machine.cpus} CPUs (${report.machine.cpuModel.trim()}), Node ${report.node}, wrangler ${report.wrangler} (\`wrangler dev\`, local SQLite on ${storage(report.state?.fs)}). ` +
      `Load average at the end: ${report.machine.loadAvgAtEnd.toFixed(1)}.` +
      (report.leftOut?.length ? ` Not run (\`--all\` runs them): ${report.leftOut.join(", ")}.` : ""),
    "",
  );
  out.push(
    "Times are milliseconds, measured by the client process from the moment a frame is written to the moment " +
      "the answer is read. **Floor** is the same operation through a bare Durable Object that only relays or " +
      "broadcasts frames (no storage, no auth, no parsing beyond JSON), measured in the same run on the same " +
      "server; **× floor** is the ratio (p50 / p99). Lost and duplicated must be 0.",
    "",
  );
  out.push("| scenario | measure | n | p50 | p95 | p99 | max | floor p50 / p99 | × floor p50 / p99 | msgs/s (× floor) | lost | dup |");
  out.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |");
  for (const r of report.results) {
    if (r.skipped || r.error) {
      out.push(`| ${esc(r.title)} | ${r.skipped ? `skipped: ${esc(r.skipped)}` : `failed: ${esc(r.error.split("\n")[0])}`} | | | | | | | | | | |`);
      if (!r.rows?.length) continue;
    }
    for (const row of r.rows ?? []) {
      const a = row.real ?? {};
      const f = row.floor;
      const floorCell = f?.n ? `${ms(f.p50)} / ${ms(f.p99)} (${esc(row.floorLabel ?? "floor")})` : "–";
      const ratioCell = f?.n && a.n ? `${x(a.p50 / f.p50)} / ${x(a.p99 / f.p99)}` : "–";
      const tp = row.throughput
        ? `${num(row.throughput.real)}${row.throughput.floor ? ` (${x(row.throughput.real / row.throughput.floor)} of ${num(row.throughput.floor)})` : ""}`
        : "–";
      out.push(
        `| ${esc(r.title)} | ${esc(row.measure)} | ${a.n ?? "–"} | ${ms(a.p50)} | ${ms(a.p95)} | ${ms(a.p99)} | ${ms(a.max)} | ${floorCell} | ${ratioCell} | ${tp} | ${row.lost ?? "–"} | ${row.duplicated ?? "–"} |`,
      );
    }
  }
  out.push("");

  const durable = report.results.flatMap((r) => (r.skipped || r.error ? [] : (r.durable ?? []).map((d) => ({ ...d, scenario: r.title }))));
  if (durable.length) {
    out.push("## Against the durable floor", "");
    out.push(
      "The **durable floor** (`bench/floor.ts`) does only what protocol v1 asks of any server: `sent` follows a durable " +
        "write, and every `message` carries the recipient's own never-reused `seq`, so it follows a durable write in the " +
        "recipient's object. It stores one row in each object a frame passes through (sender and recipient; for a group, " +
        "the group and each member), hands it on by RPC and pushes it, and answers the sender `sent` once its write is durable; " +
        "its receivers answer every message the same way, " +
        "as an ack turns into a receipt. No auth, schema, outbox or retry. " +
        "**Durable × relay** is what durability alone costs on this machine; **ours × durable** is the distance that is the " +
        "server's own.",
      "",
    );
    out.push("| scenario | measure | ours p50 / p99 | durable floor p50 / p99 | durable × relay p50 / p99 | ours × durable p50 / p99 | msgs/s: ours / durable / relay |");
    out.push("| --- | --- | --- | --- | --- | --- | --- |");
    const pair = (a, b) => (a?.n && b?.n ? `${x(a.p50 / b.p50)} / ${x(a.p99 / b.p99)}` : "–");
    const both = (a) => (a?.n ? `${ms(a.p50)} / ${ms(a.p99)}` : "–");
    for (const d of durable) {
      const tp = d.throughput ? `${num(d.throughput.real)} / ${num(d.throughput.durable)} / ${num(d.throughput.relay)}` : "–";
      out.push(`| ${esc(d.scenario)} | ${esc(d.measure)} | ${both(d.real)} | ${both(d.durable)} | ${pair(d.durable, d.relay)} | ${pair(d.real, d.durable)} | ${tp} |`);
    }
    out.push("");
  }

  const figures = report.results.flatMap((r) => (r.figures ?? []).map((f) => ({ ...f, scenario: r.title })));
  const cpu = report.results.filter((r) => r.cpu?.framesIn > 0 && !r.skipped);
  if (figures.length || cpu.length) {
    out.push("## Other figures", "");
    out.push("| scenario | figure | value | floor | × floor |");
    out.push("| --- | --- | ---: | ---: | ---: |");
    for (const f of figures) {
      const cell = (v) => (v === null || v === undefined ? "–" : `${num(v)}${f.unit ? ` ${f.unit}` : ""}`);
      out.push(`| ${esc(f.scenario)} | ${esc(f.name)} | ${cell(f.value)} | ${cell(f.floor)} | ${f.floor > 0 && f.value >= 0 ? x(f.value / f.floor) : "–"} |`);
    }
    for (const r of cpu) {
      out.push(
        `| ${esc(r.title)} | server CPU per frame received by clients (all wrangler processes; workerd runtime alone) | ${num(r.cpu.serverUsPerFrame)} µs (${num(r.cpu.runtimeUsPerFrame)} µs) | | |`,
      );
    }
    for (const r of report.results.filter((x) => x.cpu?.clientLoopDelayMs && !x.skipped)) {
      const d = r.cpu.clientLoopDelayMs;
      out.push(`| ${esc(r.title)} | bench client's event-loop delay p99 / max (a stall here is latency in every figure) | ${ms(d.p99)} / ${ms(d.max)} ms | | |`);
    }
    out.push("");
  }

  const targets = report.results.flatMap((r) => r.targets ?? []);
  if (targets.length) {
    out.push("## Targets", "");
    out.push(
      "The last column holds a floor to the same target, measured in the same run: the durable floor for latency, throughput and fan-out (it does less than protocol v1 asks of a real server: no auth, dedup, outbox or retry), a bare object's socket for memory. Where the floor misses a target, no server that keeps the protocol can be expected to meet it on this runtime and machine.",
      "",
    );
    out.push("| target | measured | met | the floor, same target |");
    out.push("| --- | ---: | --- | --- |");
    const shown = (t, v) => (t.count || t.name.includes("lost") ? String(v) : t.unit ? `${num(v)} ${t.unit}` : x(v));
    for (const t of targets) {
      const measured = t.measured === null || t.measured === undefined ? "–" : shown(t, t.measured);
      const met = t.measured === null || t.measured === undefined ? "not measured" : meets(t) ? "yes" : "**no**";
      const f = t.floorMeasured;
      const floor = f === null || f === undefined ? "–" : `${t.floorName ?? "durable floor"}: ${shown(t, f)} (${meets({ ...t, measured: f }) ? "meets it" : "misses it"})`;
      out.push(`| ${esc(t.name)} | ${measured} | ${met} | ${esc(floor)} |`);
    }
    out.push("");
  }

  const notes = report.results.flatMap((r) => [
    ...(r.notes ?? []).map((n) => `${r.title}: ${n}`),
    ...(r.cpu?.clientPct > 150 ? [`${r.title}: the client process used ${r.cpu.clientPct.toFixed(0)}% CPU (of ${report.machine.cpus * 100}%); figures include client-side queueing`] : []),
    ...(r.cpu?.clientLoopDelayMs?.max > 250
      ? [`${r.title}: the bench client's own event loop stalled for up to ${ms(r.cpu.clientLoopDelayMs.max)} ms; a latency maximum near that is the client's, not the server's`]
      : []),
  ]);
  const tick = "`";
  notes.push(
    report.serverErrors?.count
      ? `the server logged ${report.serverErrors.count} error lines, the first: ${report.serverErrors.first.map((l) => tick + l.slice(0, 120) + tick).join("; ")}`
      : "the server logged no errors during the run",
  );
  if (notes.length) {
    out.push("## Notes", "");
    for (const n of notes) out.push(`- ${n}`);
    out.push("");
  }
  out.push(`Chart: [${name}.svg](${name}.svg). Raw figures: [${name}.json](${name}.json), the same run.`, "");
  return out.join("\n");
}

/** A target is met when the measure is at most its limit (or at least, for `atLeast` targets). */
export function meets(t) {
  return t.atLeast ? t.measured >= t.limit : t.measured <= t.limit;
}
