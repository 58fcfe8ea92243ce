/**
 * The hit-rate table. PostgreSQL sits behind a proxy that holds every chunk 25 ms in each
 * direction (a 50 ms round trip, for real); the daemon has a pool of 10. A set of warm keys is loaded into
 * the cache first; each request reads a warm key with probability h, else the next never-read key of a
 * cold range (every cold read is a miss, and no cold key is read twice), so the hit rate is h by
 * construction; the rate actually seen is taken from the daemon's /metrics, and the database load from
 * the statements counted on the wire (cross-checked against pg_stat_user_tables at the end).
 *
 * The load generator here is autocannon: for a mix of fast hits and slow misses wrk's latency figures
 * disagree with Little's law (on a test server answering one request in ten after 200 ms, wrk's mean
 * was about three times connections ÷ throughput); autocannon's agree.
 */
import { PG_TARGET, REDIS_URL } from "../lib/backends.js";
import { measure, round, sleep, type Context, type Measured } from "../lib/context.js";
import { PgProxy } from "../lib/pgproxy.js";
import { call, metrics, metricSum, startDaemon, startInApp, type Server } from "../lib/servers.js";
import { VALUE_100B } from "./hitpath.js";

export const EXPECTED = [
  { hit: 0, meanMs: 50, rps: 200, dbLoad: 1 },
  { hit: 0.5, meanMs: 26, rps: 380, dbLoad: 0.5 },
  { hit: 0.9, meanMs: 6, rps: 1600, dbLoad: 0.1 },
  { hit: 0.99, meanMs: 1.5, rps: 6400, dbLoad: 0.01 },
] as const;

export type Variant = "sidecache" | "in-app cache-aside";

export interface HitRateRow {
  variant: Variant;
  connections: number;
  targetHit: number;
  /** hits / (hits + misses) over the window, from the server's own counters */
  actualHit: number;
  rps: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** statements that reached PostgreSQL per second, counted on the wire */
  dbQps: number;
  /** PostgreSQL reads per request */
  dbLoad: number;
  errors: number;
  serverCpuUtil: number;
  /** cores busy on the whole machine during the run */
  machineBusyCores?: number;
  /** connections ÷ throughput: what the mean latency of a closed loop must be (Little's law) */
  littleMs: number;
  run: Measured;
}

export interface HitRateResult {
  oneWayDelayMs: number;
  pool: number;
  warmKeys: number;
  durationS: number;
  rows: HitRateRow[];
  /** the ceiling the pool and the round trip put on PostgreSQL reads per second */
  poolCeilingQps: number;
  pgStatScans: number;
  wireSelects: number;
}

export async function hitRate(ctx: Context): Promise<HitRateResult> {
  const q = ctx.options.quick;
  const durationS = q ? 3 : 8;
  const oneWayDelayMs = 25;
  const pool = 10;
  const warmKeys = 1000;
  const coldCount = Math.ceil(260 * (durationS + 2));
  const variants: { variant: Variant; connections: number }[] = q
    ? [{ variant: "sidecache", connections: 100 }]
    : [
        { variant: "sidecache", connections: 100 },
        { variant: "in-app cache-aside", connections: 100 },
        { variant: "sidecache", connections: 10 },
      ];
  const tag = ctx.tag();
  const table = `bench_${tag}_hr`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix, `${prefix}-inapp`);
  const proxy = new PgProxy(PG_TARGET, oneWayDelayMs, [table]);
  await proxy.listen();
  const servers: Server[] = [];
  const rows: HitRateRow[] = [];
  try {
    const daemon = await startDaemon(
      {
        cachePrefix: prefix,
        storeUrl: proxy.url,
        pool,
        keyspaces: { hr: { strategy: "cache-aside", table, ttl: "1h" } },
      },
      { core: ctx.serverCore },
    );
    servers.push(daemon);
    const runs = variants.length * EXPECTED.length;
    await ctx.backends.seed(table, "w", warmKeys, VALUE_100B);
    for (let r = 0; r < runs; r++) {
      await ctx.backends.seed(table, `c${r}-`, coldCount, VALUE_100B);
      await ctx.backends.seed(table, `p${r}-`, 2 * pool, VALUE_100B);
    }
    const inapp = await startInApp(
      {
        redisUrl: REDIS_URL,
        pgUrl: proxy.url,
        pool,
        prefix: `${prefix}-inapp`,
        tables: { hr: table },
        ttlMs: 3_600_000,
      },
      ctx.serverCore,
    );
    servers.push(inapp);
    const warm = Array.from({ length: warmKeys }, (_, i) => `w${i}`);
    for (let i = 0; i < warm.length; i += 500) {
      const keys = warm.slice(i, i + 500);
      const a = await call(`${daemon.base}/v1/kv/hr/_mget`, {
        method: "POST",
        body: JSON.stringify({ keys }),
        headers: { "content-type": "application/json" },
      });
      if (a.status !== 200) throw new Error(`warming _mget answered ${a.status}: ${a.body.slice(0, 200)}`);
      const b = await call(`${inapp.base}/_warm`, {
        method: "POST",
        body: JSON.stringify({ ks: "hr", keys }),
      });
      if (b.status !== 200) throw new Error(`in-app warm answered ${b.status}`);
    }
    let r = 0;
    for (const { variant, connections } of variants) {
      const s = variant === "sidecache" ? daemon : inapp;
      for (const e of EXPECTED) {
        const run = r++;
        // Opens the pool's connections (idle ones close after 10 s) with reads of keys nobody else reads.
        await Promise.all(
          Array.from({ length: 2 * pool }, (_, i) => call(`${s.base}/v1/kv/hr/p${run}-${i}`)),
        );
        await sleep(100);
        const c0 = await counters(s);
        const sel0 = proxy.selectsOn(table);
        const m = await measure(
          ctx,
          s,
          {
            base: s.base,
            pattern: {
              kind: "hitrate",
              pathPrefix: "/v1/kv/hr/",
              hit: e.hit,
              warmPrefix: "w",
              warmCount: warmKeys,
              coldPrefix: `c${run}-`,
              coldCount,
            },
            connections,
            durationS,
            threads: 1,
            timeoutS: 30,
          },
          "autocannon",
        );
        // Requests still in flight when wrk stops finish on the server; both counts include them, so the
        // reads per request are exact and queries per second are that times wrk's request rate.
        await sleep(1000);
        const c1 = await counters(s);
        const selects = proxy.selectsOn(table) - sel0;
        const hits = c1.hits - c0.hits;
        const misses = c1.misses - c0.misses;
        const row: HitRateRow = {
          variant,
          connections,
          targetHit: e.hit,
          actualHit: hits + misses > 0 ? hits / (hits + misses) : 0,
          rps: m.load.rps,
          meanMs: m.load.meanMs,
          p50Ms: m.load.p50Ms,
          p99Ms: m.load.p99Ms,
          dbLoad: hits + misses > 0 ? selects / (hits + misses) : 0,
          dbQps: hits + misses > 0 ? (selects / (hits + misses)) * m.load.rps : 0,
          errors: m.load.errorStatus + m.load.socketErrors,
          serverCpuUtil: m.serverCpuUtil,
          machineBusyCores: m.machineBusyCores,
          littleMs: (connections / m.load.rps) * 1000,
          run: m,
        };
        ctx.log(
          `  ${variant} c${connections} target ${e.hit * 100}%: hit ${round(row.actualHit * 100, 1)}%, ` +
            `${round(row.rps, 0)} req/s, mean ${round(row.meanMs, 1)} ms, PostgreSQL ${round(row.dbQps, 0)} q/s ` +
            `(${round(row.dbLoad * 100, 1)}% of reads), errors ${row.errors}`,
        );
        rows.push(row);
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop("SIGTERM")));
    await proxy.close();
  }
  const st = await ctx.backends.settledTableStats(table);
  return {
    oneWayDelayMs,
    pool,
    warmKeys,
    durationS,
    rows,
    poolCeilingQps: pool / ((2 * oneWayDelayMs) / 1000),
    pgStatScans: st.seqScan + st.idxScan,
    wireSelects: proxy.selectsOn(table),
  };
}

async function counters(s: Server): Promise<{ hits: number; misses: number }> {
  if (s.name === "sidecache") {
    const text = await metrics(s);
    return {
      hits: metricSum(text, "sidecache_cache_hits_total", { keyspace: "hr" }),
      misses: metricSum(text, "sidecache_cache_misses_total", { keyspace: "hr" }),
    };
  }
  const st = JSON.parse((await call(`${s.base}/_stats`)).body) as { hits: number; misses: number };
  return { hits: st.hits, misses: st.misses };
}
