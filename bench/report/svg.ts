/**
 * bench/results/chart.svg: throughput and mean latency by hit rate — sidecache, the in-app baseline and
 * the expected table — two log-scale panels drawn as plain SVG.
 */
import type { Results } from "../lib/results.js";
import { EXPECTED } from "../sections/hitrate.js";

interface Series {
  name: string;
  color: string;
  dash?: string;
  /** value per hit-rate column, undefined when not measured */
  values: (number | undefined)[];
}

const W = 900;
const H = 420;
const PANEL_W = 380;
const PANEL_H = 280;
const TOP = 60;
const LEFT = [70, 520];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min && v <= max) ticks.push(v);
    }
  }
  return ticks;
}

const label = (v: number) => (v >= 1000 ? `${v / 1000}k` : String(v));

function panel(x0: number, title: string, unit: string, series: Series[], cols: string[]): string {
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && v > 0));
  const min = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const max = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const y = (v: number) =>
    TOP + PANEL_H - ((Math.log10(v) - Math.log10(min)) / (Math.log10(max) - Math.log10(min))) * PANEL_H;
  const x = (i: number) => x0 + 30 + (i * (PANEL_W - 60)) / (cols.length - 1);
  const parts: string[] = [];
  parts.push(
    `<text x="${x0 + PANEL_W / 2}" y="${TOP - 20}" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  );
  parts.push(`<rect x="${x0}" y="${TOP}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#999"/>`);
  for (const t of logTicks(min, max)) {
    parts.push(`<line x1="${x0}" x2="${x0 + PANEL_W}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11">${label(t)}</text>`);
  }
  parts.push(
    `<text x="${x0 - 50}" y="${TOP + PANEL_H / 2}" font-size="12" transform="rotate(-90 ${x0 - 50} ${TOP + PANEL_H / 2})" text-anchor="middle">${esc(unit)} (log scale)</text>`,
  );
  cols.forEach((c, i) => {
    parts.push(
      `<text x="${x(i)}" y="${TOP + PANEL_H + 18}" text-anchor="middle" font-size="12">${esc(c)}</text>`,
    );
  });
  parts.push(
    `<text x="${x0 + PANEL_W / 2}" y="${TOP + PANEL_H + 38}" text-anchor="middle" font-size="12">cache hit rate</text>`,
  );
  for (const s of series) {
    const pts = s.values
      .map((v, i) => (v !== undefined && v > 0 ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : undefined))
      .filter((p): p is string => p !== undefined);
    if (pts.length === 0) continue;
    parts.push(
      `<polyline points="${pts.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
    );
    for (const p of pts) {
      const [px, py] = p.split(",");
      parts.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${s.color}"/>`);
    }
  }
  return parts.join("\n");
}

export function renderChart(r: Results): string {
  const cols = EXPECTED.map((e) => `${e.hit * 100}%`);
  const pick = (variant: string, connections: number, field: "rps" | "meanMs") =>
    EXPECTED.map(
      (e) =>
        r.hitrate?.rows.find(
          (x) => x.variant === variant && x.connections === connections && x.targetHit === e.hit,
        )?.[field],
    );
  const series = (field: "rps" | "meanMs"): Series[] => [
    { name: "expected (model)", color: "#888", dash: "6 4", values: EXPECTED.map((e) => e[field]) },
    { name: "sidecache, 100 clients", color: "#1f6feb", values: pick("sidecache", 100, field) },
    { name: "sidecache, 10 clients", color: "#7fb3ff", values: pick("sidecache", 10, field) },
    {
      name: "in-app cache-aside, 100 clients",
      color: "#d9730d",
      values: pick("in-app cache-aside", 100, field),
    },
  ];
  const thr = series("rps");
  const lat = series("meanMs");
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  if (r.hitrate) {
    parts.push(panel(LEFT[0]!, "Throughput (req/s)", "requests per second", thr, cols));
    parts.push(panel(LEFT[1]!, "Mean latency (ms)", "milliseconds", lat, cols));
  } else {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no hit-rate results in this run</text>`);
  }
  const legendY = H - 22;
  let lx = 70;
  for (const s of thr) {
    if (!s.values.some((v) => v !== undefined)) continue;
    parts.push(
      `<line x1="${lx}" x2="${lx + 28}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
    );
    parts.push(`<text x="${lx + 34}" y="${legendY + 4}" font-size="12">${esc(s.name)}</text>`);
    lx += 44 + s.name.length * 6.6;
  }
  const m = r.machine;
  parts.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="11" fill="#555">${esc(
      `PostgreSQL at a 50 ms round trip, pool 10 · load from autocannon · ${m.nproc} cores ${m.cpuModel} · node ${m.node} · ${m.date.slice(0, 10)}`,
    )}</text>`,
  );
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
