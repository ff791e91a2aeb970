// The benchmark chart (bench/results/latest.svg), drawn by hand: one lane per
// measure, its floor in grey beneath, on a logarithmic millisecond axis.
// Each lane: a dot at p50, a bar from p50 to p95, a tick at p99, a whisker to max.

const W = 1040;
const LABEL_W = 410;
const RIGHT_W = 120;
const LANE_H = 16;
const TOP = 58;
const COLORS = ["#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d"];

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/`/g, "");
const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function renderSvg(report) {
  const lanes = [];
  report.results.forEach((r, i) => {
    const color = COLORS[i % COLORS.length];
    for (const row of r.rows ?? []) {
      if (!row.real?.n) continue;
      lanes.push({ label: `${r.title.replace(/^\d+\.\s*/, "")}: ${row.measure}`, s: row.real, color, first: lanes.length === 0 || lanes[lanes.length - 1].scenario !== r.id, scenario: r.id });
      if (row.floor?.n) lanes.push({ label: `   floor: ${row.floorLabel ?? "floor"}`, s: row.floor, color: "#9ca3af", scenario: r.id });
    }
    if (r.skipped) {
      lanes.push({ label: `${r.title.replace(/^\d+\.\s*/, "")}: skipped (${r.skipped})`, s: null, color, scenario: r.id, first: true });
      for (const row of r.rows ?? []) if (row.floor?.n) lanes.push({ label: `   ${row.measure}`, s: row.floor, color: "#9ca3af", scenario: r.id });
    }
  });
  const values = lanes.flatMap((l) => (l.s ? [l.s.p50, l.s.max] : [])).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.01, Math.min(...values, 1)))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 10))));
  const plotX0 = LABEL_W;
  const plotX1 = W - RIGHT_W;
  const xOf = (v) => plotX0 + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (plotX1 - plotX0);
  let y = TOP;
  const body = [];
  for (const l of lanes) {
    if (l.first && y > TOP) y += 8;
    const cy = y + LANE_H / 2;
    body.push(`<text x="8" y="${cy + 4}" class="${l.color === "#9ca3af" ? "floor" : "lbl"}">${esc(l.label.length > 66 ? l.label.slice(0, 65) + "…" : l.label)}</text>`);
    if (l.s) {
      const { p50, p95, p99, max } = l.s;
      body.push(`<line x1="${xOf(p50)}" y1="${cy}" x2="${xOf(max)}" y2="${cy}" stroke="${l.color}" stroke-width="1"/>`);
      body.push(`<rect x="${xOf(p50)}" y="${cy - 4}" width="${Math.max(1, xOf(p95) - xOf(p50))}" height="8" fill="${l.color}" opacity="0.45"/>`);
      body.push(`<line x1="${xOf(p99)}" y1="${cy - 6}" x2="${xOf(p99)}" y2="${cy + 6}" stroke="${l.color}" stroke-width="2"/>`);
      body.push(`<line x1="${xOf(max)}" y1="${cy - 3}" x2="${xOf(max)}" y2="${cy + 3}" stroke="${l.color}" stroke-width="1"/>`);
      body.push(`<circle cx="${xOf(p50)}" cy="${cy}" r="3.5" fill="${l.color}"/>`);
      body.push(`<text x="${plotX1 + 8}" y="${cy + 4}" class="val">${fmt(p50)} / ${fmt(p99)}</text>`);
    }
    y += LANE_H;
  }
  const bottom = y + 6;
  const axis = [];
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    const xv = xOf(v);
    axis.push(`<line x1="${xv}" y1="${TOP - 4}" x2="${xv}" y2="${bottom}" stroke="#e5e7eb"/>`);
    axis.push(`<text x="${xv}" y="${bottom + 16}" class="ax" text-anchor="middle">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`);
    for (let k = 2; k < 10 && v * k < hi; k++) axis.push(`<line x1="${xOf(v * k)}" y1="${TOP - 4}" x2="${xOf(v * k)}" y2="${bottom}" stroke="#f3f4f6"/>`);
  }
  const H = bottom + 30;
  const title = `relay-chat benchmark: ${report.mode} run ${report.startedAt.slice(0, 16).replace("T", " ")} UTC, commit ${report.commit}, ${report.machine.cpus} CPUs`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>.lbl{font-size:11px;fill:#111827}.floor{font-size:11px;fill:#6b7280}.val{font-size:11px;fill:#374151}.ax{font-size:10px;fill:#6b7280}.t{font-size:13px;font-weight:600;fill:#111827}.k{font-size:10px;fill:#4b5563}</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="8" y="18" class="t">${esc(title)}</text>
<text x="8" y="36" class="k">latency per measure (log scale): dot = p50, bar = p50 to p95, thick tick = p99, whisker = max; grey lanes = the floor (bare relay/broadcast object) in the same run</text>
<text x="${plotX1 + 8}" y="${TOP - 8}" class="k">p50 / p99 ms</text>
${axis.join("\n")}
${body.join("\n")}
</svg>
`;
}
