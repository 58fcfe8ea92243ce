/** What every section of the bench gets: options, cores, the load generator, backends, cleanup. */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Backends } from "./backends.js";
import { runLoad, type LoadResult, type LoadSpec, type Tool } from "./loadgen.js";
import { cpuSeconds, pidListeningOn, rssBytes } from "./proc.js";
import type { Server } from "./servers.js";

export interface Options {
  quick: boolean;
  soak: boolean;
  profile: boolean;
  only?: string[];
  outDir: string;
  render?: boolean;
}

export interface Context {
  options: Options;
  tool: Tool;
  /** core of the servers under test and core of the load generator (undefined: not pinned) */
  serverCore: number | undefined;
  loadCore: number | undefined;
  backends: Backends;
  redisPid: number | undefined;
  log: (line: string) => void;
  /** a fresh name part: bench tables and cache prefixes carry it, and are removed at the end */
  tag(): string;
  tables: string[];
  prefixes: string[];
}

export function newTag(): string {
  return randomBytes(3).toString("hex");
}

/** One load run against one server, with the server's CPU time and memory around it. */
export interface Measured {
  load: LoadResult;
  /** the server's user + system CPU seconds during the run */
  serverCpuS: number;
  /** serverCpuS / wall seconds: 1.0 = one core fully busy */
  serverCpuUtil: number;
  serverRssMiB: number;
  /** Redis's CPU seconds during the run (it is shared by every client of it), when its pid is visible */
  redisCpuS?: number;
  /** the load generator's CPU use as a fraction of one core */
  generatorCpuUtil?: number;
  /** every core's busy time over the run (/proc/stat), in cores: 2.0 = both cores of two fully busy */
  machineBusyCores?: number;
  /** what of that was neither the server, the load generator nor Redis (PostgreSQL, the bench, other work) */
  otherBusyCores?: number;
}

export async function measure(
  ctx: Context,
  server: Server,
  spec: LoadSpec,
  tool: Tool = ctx.tool,
): Promise<Measured> {
  const cpu0 = cpuSeconds(server.pid);
  const redis0 = ctx.redisPid ? safeCpu(ctx.redisPid) : undefined;
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const load = await runLoad(tool, { core: ctx.loadCore, ...spec });
  const wall = (performance.now() - t0) / 1000;
  const busy1 = machineBusySeconds();
  const serverCpuS = cpuSeconds(server.pid) - cpu0;
  const redis1 = ctx.redisPid ? safeCpu(ctx.redisPid) : undefined;
  const redisCpuS = redis0 !== undefined && redis1 !== undefined ? redis1 - redis0 : undefined;
  const machineBusyCores = busy0 !== undefined && busy1 !== undefined ? (busy1 - busy0) / wall : undefined;
  const known = serverCpuS + (redisCpuS ?? 0) + (load.generatorCpuS ?? 0);
  return {
    load,
    serverCpuS,
    serverCpuUtil: serverCpuS / wall,
    serverRssMiB: rssBytes(server.pid) / 2 ** 20,
    redisCpuS,
    generatorCpuUtil: load.generatorCpuS !== undefined ? load.generatorCpuS / wall : undefined,
    machineBusyCores,
    otherBusyCores: machineBusyCores !== undefined ? Math.max(0, machineBusyCores - known / wall) : undefined,
  };
}

/** Busy CPU seconds of the whole machine since boot (/proc/stat: everything but idle and iowait). */
function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - f[3]! - f[4]!) / 100;
  } catch {
    return undefined;
  }
}

function safeCpu(pid: number): number | undefined {
  try {
    return cpuSeconds(pid);
  } catch {
    return undefined;
  }
}

export function findRedisPid(port: number): number | undefined {
  try {
    return pidListeningOn(port);
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const round = (n: number, digits = 1) => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};
