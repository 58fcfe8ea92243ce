/**
 * The hit path: one warmed key read over and over through three servers, one after another,
 * under the same load: a bare node:http server answering the same bytes (the ceiling), the in-app
 * cache-aside (ioredis + pg in the application's process) and the sidecache daemon.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PG_URL, REDIS_URL } from "../lib/backends.js";
import { measure, round, type Context, type Measured } from "../lib/context.js";
import type { LoadResult, LoadSpec } from "../lib/loadgen.js";
import { summarizeProfile, type ProfileSummary } from "../lib/profile.js";
import { call, ROOT, startBare, startDaemon, startInApp, type Server } from "../lib/servers.js";

/** About 100 bytes of JSON, the size of a small user record. */
export const VALUE_100B =
  '{"id":"user-42","name":"Ada Lovelace","email":"ada@example.com","plan":"pro","credits":1200,"ok":true}';

export type HitServer =
  | "bare node:http"
  | "in-app cache-aside"
  | "sidecache"
  | "sidecache, near cache"
  | "sidecache, access log on";

export interface HitRow {
  server: HitServer;
  runs: Measured[];
  rps: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUtil: number;
  cpuSPer10k: number;
  rssMiB: number;
  generatorCpuUtil?: number;
  redisCpuSPer10k?: number;
  /** cores kept busy by everything else on the machine during the runs (median) */
  otherBusyCores?: number;
}

export interface HitResult {
  valueBytes: number;
  responseBodyBytes: number;
  sameBytes: boolean;
  connections: number;
  threads: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  rows: HitRow[];
  ratioVsBare: number;
  ratioVsInApp: number;
  /** the same key served from the daemon's near cache (X-Cache-Tier: L1) */
  nearVsBare?: number;
  nearVsInApp?: number;
  /** latency held at about half each server's measured maximum rate (50 connections pacing their requests) */
  halfRate?: {
    server: HitServer;
    /** paced (an open loop, latency from each arrival) or wrk pausing between requests */
    tool: string;
    targetRps: number;
    rps: number;
    p50Ms: number;
    /** the median round's p99 */
    p99Ms: number;
    p99Rounds: number[];
    /** paced only: p99 from the moment each request was written */
    p99SentMs?: number;
    /** paced only: the largest of the rounds' p99 of the generator's own lateness */
    generatorLateP99Ms?: number;
  }[];
  /** below this sidecache / bare ratio a full run profiles the daemon */
  profileBelow: number;
  profile?: ProfileSummary;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
/** The median: the machine is shared, and one disturbed round should not move the figure. */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function hitPath(ctx: Context): Promise<HitResult> {
  const q = ctx.options.quick;
  const durationS = q ? 3 : 6;
  const warmupS = q ? 1 : 2;
  const rounds = q ? 1 : 3;
  const connections = 50;
  const tag = ctx.tag();
  const table = `bench_${tag}_hit`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix, `${prefix}-inapp`);
  const spec = {
    cachePrefix: prefix,
    storeUrl: PG_URL,
    pool: 10,
    keyspaces: { users: { strategy: "cache-aside", table, ttl: "1h" } },
  };
  const path = "/v1/kv/users/user-42";

  const servers: Server[] = [];
  try {
    const daemon = await startDaemon(spec, { core: ctx.serverCore });
    servers.push(daemon);
    // Another daemon over the same keyspace, with a near cache: its hits cost no Redis round trip.
    const near = await startDaemon(
      { ...spec, keyspaces: { users: { ...spec.keyspaces.users, nearCache: "{ ttl: 10m }" } } },
      { core: ctx.serverCore },
    );
    servers.push(near);
    // The same daemon with an access log line per request (log.access), to show what that costs
    // (full run only).
    const quiet = q ? undefined : await startDaemon({ ...spec, accessLog: true }, { core: ctx.serverCore });
    if (quiet) servers.push(quiet);
    const put = await call(daemon.base + path, {
      method: "PUT",
      body: VALUE_100B,
      headers: { "content-type": "application/json" },
    });
    if (put.status !== 200) throw new Error(`seeding PUT answered ${put.status}: ${put.body}`);
    await call(daemon.base + path); // MISS: loads and fills
    const hit = await call(daemon.base + path);
    if (hit.headers.get("x-cache") !== "HIT")
      throw new Error(`key not warmed: ${hit.headers.get("x-cache")}`);
    // Every header the daemon sent except those node:http writes itself (the request id is replayed as is).
    const headers: Record<string, string> = {};
    const own = new Set([
      "date",
      "connection",
      "keep-alive",
      "content-length",
      "content-type",
      "transfer-encoding",
    ]);
    hit.headers.forEach((v, k) => {
      if (!own.has(k)) headers[k] = v;
    });
    const bare = await startBare({ status: 200, headers, body: hit.body }, ctx.serverCore);
    servers.push(bare);
    const inapp = await startInApp(
      {
        redisUrl: REDIS_URL,
        pgUrl: PG_URL,
        pool: 10,
        prefix: `${prefix}-inapp`,
        tables: { users: table },
        ttlMs: 3_600_000,
      },
      ctx.serverCore,
    );
    servers.push(inapp);
    await call(inapp.base + path);
    const inappHit = await call(inapp.base + path);
    const bareHit = await call(bare.base + path);
    const quietHit = quiet ? await call(quiet.base + path) : hit;
    await call(near.base + path);
    const nearHit = await call(near.base + path);
    if (nearHit.headers.get("x-cache-tier") !== "L1")
      throw new Error(`near cache not warmed: ${nearHit.headers.get("x-cache-tier")}`);
    const sameBytes =
      inappHit.body === hit.body &&
      bareHit.body === hit.body &&
      quietHit.body === hit.body &&
      nearHit.body === hit.body;

    const order: [HitServer, Server][] = [
      ["bare node:http", bare],
      ["in-app cache-aside", inapp],
      ["sidecache", daemon],
      ["sidecache, near cache", near],
    ];
    if (quiet) order.push(["sidecache, access log on", quiet]);
    const load = (s: Server, d: number): LoadSpec => ({
      base: s.base,
      pattern: { kind: "get", path },
      connections,
      durationS: d,
      threads: 1,
    });
    const runs = new Map<HitServer, Measured[]>(order.map(([n]) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, s] of order) {
        ctx.log(`  hit path round ${r + 1}/${rounds}: ${name} (${warmupS}s warm-up, ${durationS}s measured)`);
        await measure(ctx, s, load(s, warmupS));
        const m = await measure(ctx, s, load(s, durationS));
        ctx.log(
          `    ${round(m.load.rps, 0)} req/s, p50 ${round(m.load.p50Ms, 2)} ms, p99 ${round(m.load.p99Ms, 2)} ms, ` +
            `server CPU ${round(m.serverCpuUtil * 100, 0)}%, other load ${round(m.otherBusyCores ?? 0, 2)} cores, ` +
            `errors ${m.load.errorStatus + m.load.socketErrors}`,
        );
        runs.get(name)!.push(m);
      }
    }
    const rows: HitRow[] = order.map(([name]) => {
      const ms = runs.get(name)!;
      const reqs = ms.reduce((a, m) => a + m.load.requests, 0);
      const redis = ms.every((m) => m.redisCpuS !== undefined)
        ? (ms.reduce((a, m) => a + m.redisCpuS!, 0) / reqs) * 10_000
        : undefined;
      const gen = ms.every((m) => m.generatorCpuUtil !== undefined)
        ? mean(ms.map((m) => m.generatorCpuUtil!))
        : undefined;
      return {
        server: name,
        runs: ms,
        rps: median(ms.map((m) => m.load.rps)),
        meanMs: median(ms.map((m) => m.load.meanMs)),
        p50Ms: median(ms.map((m) => m.load.p50Ms)),
        p99Ms: median(ms.map((m) => m.load.p99Ms)),
        serverCpuUtil: median(ms.map((m) => m.serverCpuUtil)),
        otherBusyCores: ms.every((m) => m.otherBusyCores !== undefined)
          ? median(ms.map((m) => m.otherBusyCores!))
          : undefined,
        cpuSPer10k: (ms.reduce((a, m) => a + m.serverCpuS, 0) / reqs) * 10_000,
        rssMiB: Math.max(...ms.map((m) => m.serverRssMiB)),
        generatorCpuUtil: gen,
        redisCpuSPer10k: redis,
      };
    });
    const by = (n: HitServer) => rows.find((r) => r.server === n)!;
    const result: HitResult = {
      valueBytes: Buffer.byteLength(VALUE_100B),
      responseBodyBytes: Buffer.byteLength(hit.body),
      sameBytes,
      connections,
      threads: 1,
      durationS,
      warmupS,
      rounds,
      rows,
      ratioVsBare: by("sidecache").rps / by("bare node:http").rps,
      ratioVsInApp: by("sidecache").rps / by("in-app cache-aside").rps,
      nearVsBare: by("sidecache, near cache").rps / by("bare node:http").rps,
      nearVsInApp: by("sidecache, near cache").rps / by("in-app cache-aside").rps,
      profileBelow: 0.6,
    };

    // Latency below saturation: each server at half the rate it reached, requests arriving at random
    // (an open loop), in alternating rounds like the runs above; the median round is the figure.
    const half = new Map<HitServer, LoadResult[]>();
    const halfOrder = order.filter(([name]) => name !== "sidecache, access log on");
    for (let r = 0; r < rounds; r++) {
      for (const [name, s] of halfOrder) {
        const targetRps = by(name).rps / 2;
        ctx.log(
          `  hit path at half rate, round ${r + 1}/${rounds}: ${name}, ${round(targetRps, 0)} req/s for ${durationS}s`,
        );
        const m = await measure(ctx, s, { ...load(s, durationS), rate: targetRps, rateWarmupS: warmupS });
        ctx.log(
          `    ${m.load.tool}: ${round(m.load.rps, 0)} req/s, p50 ${round(m.load.p50Ms, 3)} ms, ` +
            `p99 ${round(m.load.p99Ms, 3)} ms` +
            (m.load.queued !== undefined ? `, ${m.load.queued} arrivals waited for a connection` : ""),
        );
        half.set(name, [...(half.get(name) ?? []), m.load]);
      }
    }
    result.halfRate = halfOrder.map(([name]) => {
      const ls = half.get(name)!;
      // the fields only the paced generator reports
      const paced = ls.every((l) => l.tool === "paced");
      return {
        server: name,
        tool: ls[0]!.tool,
        targetRps: by(name).rps / 2,
        rps: median(ls.map((l) => l.rps)),
        p50Ms: median(ls.map((l) => l.p50Ms)),
        p99Ms: median(ls.map((l) => l.p99Ms)),
        p99Rounds: ls.map((l) => l.p99Ms),
        p99SentMs: paced ? median(ls.map((l) => l.p99SentMs!)) : undefined,
        generatorLateP99Ms: paced ? Math.max(...ls.map((l) => l.generatorLateP99Ms!)) : undefined,
      };
    });

    // A --quick run profiles only when asked; the full run also whenever the ratio is below profileBelow.
    if (ctx.options.profile || (!q && result.ratioVsBare < result.profileBelow)) {
      ctx.log(
        `  hit path: sidecache/bare = ${round(result.ratioVsBare, 2)}; profiling the daemon with --cpu-prof`,
      );
      const dir = mkdtempSync(join(tmpdir(), "sidecache-prof-"));
      const prof = await startDaemon(spec, { core: ctx.serverCore, cpuProfDir: dir });
      try {
        await call(prof.base + path);
        await measure(ctx, prof, load(prof, durationS));
      } finally {
        await prof.stop("SIGTERM");
      }
      result.profile = summarizeProfile(dir, ROOT);
    }
    return result;
  } finally {
    await Promise.all(servers.map((s) => s.stop("SIGTERM")));
  }
}
