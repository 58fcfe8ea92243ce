/** Reads a V8 .cpuprofile (node --cpu-prof) and ranks functions by self time. */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

export interface ProfileSummary {
  /** the .cpuprofile file name (written to a temporary directory) */
  file: string;
  totalMs: number;
  /** self time grouped by function */
  top: ProfileEntry[];
  /** self time grouped by where the code lives: sidecache src, node internals, each dependency, GC, idle */
  byArea: { area: string; ms: number; pct: number }[];
}

function area(url: string, fn: string, root: string): string {
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "V8/native (program)";
  if (!url) return "native";
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const path = url.replace(/^file:\/\//, "");
  if (path.includes("/dist/src/"))
    return `sidecache ${relative(join(root, "dist"), path).split("/").slice(0, 2).join("/")}`;
  return relative(root, path);
}

export function summarizeProfile(dir: string, root: string, topN = 15): ProfileSummary | undefined {
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) return undefined;
  const p = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const fns = new Map<string, ProfileEntry>();
  const areas = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const fn = functionName || "(anonymous)";
    const a = area(url, fn, root);
    areas.set(a, (areas.get(a) ?? 0) + us);
    if (fn === "(idle)") continue;
    total += us;
    const short = url ? `${url.replace(/^file:\/\//, "").replace(root, "")}:${lineNumber + 1}` : "";
    const key = `${fn} ${short}`;
    const e = fns.get(key) ?? { fn, where: short, selfMs: 0, selfPct: 0 };
    e.selfMs += us / 1000;
    fns.set(key, e);
  }
  const busyMs = total / 1000;
  const top = [...fns.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, topN)
    .map((e) => ({
      ...e,
      selfMs: Math.round(e.selfMs),
      selfPct: Math.round((e.selfMs / busyMs) * 1000) / 10,
    }));
  const byArea = [...areas.entries()]
    .filter(([a]) => a !== "idle")
    .map(([a, us]) => ({
      area: a,
      ms: Math.round(us / 1000),
      pct: Math.round((us / 1000 / busyMs) * 1000) / 10,
    }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 15);
  return { file, totalMs: Math.round(busyMs), top, byArea };
}
