/**
 * Cost: the daemon's CPU seconds per 10,000 requests (from /proc/PID/stat utime + stime) and its resident
 * memory, idle and under a steady mixed load (90% reads of warm keys, 10% cache-aside writes), plus the
 * same figures gathered from the other sections. --soak adds a 10-minute mixed load sampled every 15 s.
 */
import { PG_URL } from "../lib/backends.js";
import { measure, round, sleep, type Context } from "../lib/context.js";
import { runLoad } from "../lib/loadgen.js";
import { cpuSeconds, rssBytes } from "../lib/proc.js";
import type { Results } from "../lib/results.js";
import { call, startDaemon } from "../lib/servers.js";
import { VALUE_100B } from "./hitpath.js";

export interface CostRow {
  scenario: string;
  requests: number;
  rps: number;
  cpuS: number;
  cpuSPer10k: number;
  cpuUtil: number;
  rssMiB: number;
}

export interface SoakSample {
  atS: number;
  rssMiB: number;
  cpuUtil: number;
}

export interface CostResult {
  idleRssMiB: number;
  /** CPU seconds used over idleS seconds with no requests */
  idleCpuS: number;
  idleS: number;
  rows: CostRow[];
  soak?: {
    durationS: number;
    connections: number;
    rps: number;
    p99Ms: number;
    errors: number;
    samples: SoakSample[];
  };
}

export async function costSection(ctx: Context, results: Results): Promise<CostResult> {
  const q = ctx.options.quick;
  const durationS = q ? 3 : 12;
  const idleS = q ? 1 : 5;
  const tag = ctx.tag();
  const table = `bench_${tag}_cost`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix);
  const keys = 1000;
  const daemon = await startDaemon(
    {
      cachePrefix: prefix,
      storeUrl: PG_URL,
      pool: 10,
      keyspaces: { c: { strategy: "cache-aside", table, ttl: "1h" } },
    },
    { core: ctx.serverCore },
  );
  const rows: CostRow[] = [];
  let soak: CostResult["soak"];
  let idleRssMiB: number;
  let idleCpuS: number;
  try {
    await ctx.backends.seed(table, "k", keys, VALUE_100B);
    await sleep(1000);
    const c0 = cpuSeconds(daemon.pid);
    await sleep(idleS * 1000);
    idleCpuS = cpuSeconds(daemon.pid) - c0;
    idleRssMiB = rssBytes(daemon.pid) / 2 ** 20;
    for (let i = 0; i < keys; i += 500) {
      await call(`${daemon.base}/v1/kv/c/_mget`, {
        method: "POST",
        body: JSON.stringify({
          keys: Array.from({ length: Math.min(500, keys - i) }, (_, j) => `k${i + j}`),
        }),
        headers: { "content-type": "application/json" },
      });
    }
    const pattern = {
      kind: "mixed" as const,
      pathPrefix: "/v1/kv/c/",
      keyPrefix: "k",
      keys,
      body: VALUE_100B,
      writeFraction: 0.1,
    };
    await measure(ctx, daemon, {
      base: daemon.base,
      pattern,
      connections: 50,
      durationS: q ? 1 : 2,
      threads: 1,
    });
    const m = await measure(ctx, daemon, {
      base: daemon.base,
      pattern,
      connections: 50,
      durationS,
      threads: 1,
    });
    rows.push({
      scenario: "mixed 90% GET / 10% PUT, cache-aside, 1,000 keys, 50 connections",
      requests: m.load.requests,
      rps: m.load.rps,
      cpuS: m.serverCpuS,
      cpuSPer10k: (m.serverCpuS / m.load.requests) * 10_000,
      cpuUtil: m.serverCpuUtil,
      rssMiB: m.serverRssMiB,
    });
    ctx.log(
      `  mixed: ${round(rows[0]!.rps, 0)} req/s, ${round(rows[0]!.cpuSPer10k, 2)} CPU s per 10k, RSS ${round(m.serverRssMiB, 0)} MiB`,
    );

    if (ctx.options.soak) {
      const soakS = 600;
      const connections = 50;
      ctx.log(`  soak: ${soakS}s mixed load, sampling every 15 s`);
      const samples: SoakSample[] = [];
      const t0 = performance.now();
      let lastCpu = cpuSeconds(daemon.pid);
      let lastT = t0;
      const timer = setInterval(() => {
        const now = performance.now();
        const cpu = cpuSeconds(daemon.pid);
        samples.push({
          atS: Math.round((now - t0) / 1000),
          rssMiB: rssBytes(daemon.pid) / 2 ** 20,
          cpuUtil: (cpu - lastCpu) / ((now - lastT) / 1000),
        });
        lastCpu = cpu;
        lastT = now;
      }, 15_000);
      try {
        const load = await runLoad(ctx.tool, {
          base: daemon.base,
          pattern,
          connections,
          durationS: soakS,
          threads: 1,
          core: ctx.loadCore,
        });
        soak = {
          durationS: soakS,
          connections,
          rps: load.rps,
          p99Ms: load.p99Ms,
          errors: load.errorStatus + load.socketErrors,
          samples,
        };
      } finally {
        clearInterval(timer);
      }
    }
  } finally {
    await daemon.stop("SIGTERM");
  }

  // The same figures from the other sections' daemons.
  const sc = results.hit?.rows.find((r) => r.server === "sidecache");
  if (sc) {
    const reqs = sc.runs.reduce((a, r) => a + r.load.requests, 0);
    rows.push({
      scenario: `hit path: one warm key, ${results.hit!.connections} connections`,
      requests: reqs,
      rps: sc.rps,
      cpuS: sc.runs.reduce((a, r) => a + r.serverCpuS, 0),
      cpuSPer10k: sc.cpuSPer10k,
      cpuUtil: sc.serverCpuUtil,
      rssMiB: sc.rssMiB,
    });
  }
  for (const w of results.writes?.rows ?? []) {
    if (!w.available || !w.run || w.baseline) continue;
    rows.push({
      scenario: `PUT, ${w.strategy}, ${results.writes!.hotKeys} hot keys`,
      requests: w.run.load.requests,
      rps: w.run.load.rps,
      cpuS: w.run.serverCpuS,
      cpuSPer10k: w.cpuSPer10k,
      cpuUtil: w.serverCpuUtil,
      rssMiB: w.rssMiB,
    });
  }
  for (const h of results.hitrate?.rows ?? []) {
    if (h.variant !== "sidecache" || h.connections !== 100) continue;
    rows.push({
      scenario: `hit rate ${h.targetHit * 100}%, 50 ms PostgreSQL, 100 connections`,
      requests: h.run.load.requests,
      rps: h.rps,
      cpuS: h.run.serverCpuS,
      cpuSPer10k: (h.run.serverCpuS / Math.max(1, h.run.load.requests)) * 10_000,
      cpuUtil: h.serverCpuUtil,
      rssMiB: h.run.serverRssMiB,
    });
  }
  return { idleRssMiB, idleCpuS, idleS, rows, soak };
}
