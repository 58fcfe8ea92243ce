/**
 * What the near cache costs and holds:
 * - write latency in coherent mode with 1, 3 and 10 daemons sharing the cache (every daemon holds a copy
 *   of the key, so every write waits for each to drop it), against the same writes with no near cache;
 * - the daemon's RSS with 100,000 near entries of about 100 bytes, against the same daemon before it
 *   held them.
 */
import { PG_URL } from "../lib/backends.js";
import { round, type Context } from "../lib/context.js";
import { rssBytes } from "../lib/proc.js";
import { call, startDaemon, type DaemonSpec, type Server } from "../lib/servers.js";
import { VALUE_100B } from "./hitpath.js";

export interface NearWriteRow {
  daemons: number;
  nearCache: boolean;
  writes: number;
  p50Ms: number;
  p99Ms: number;
}

export interface NearResult {
  writes: NearWriteRow[];
  rss: { entries: number; valueBytes: number; beforeMiB: number; afterMiB: number; nearBytes: number };
}

const json = { "content-type": "application/json" };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/**
 * Resolves once the daemon answers a key from its near cache: a daemon serves copies from a second after
 * its near cache was registered (docs/near-cache.md), and copies nothing into it before.
 */
async function nearServing(s: Server, path: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    await call(s.base + path);
    if ((await call(s.base + path)).headers.get("x-cache-tier") === "L1") return;
    if (Date.now() > deadline) throw new Error(`${s.base} did not serve from its near cache in 15 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sequential PUTs through the first daemon after every daemon read the key (so each holds a copy). */
async function writeLatency(servers: Server[], n: number): Promise<{ p50Ms: number; p99Ms: number }> {
  const path = "/v1/kv/users/hot";
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const s of servers) await call(s.base + path);
    const t0 = performance.now();
    const r = await call(servers[0]!.base + path, { method: "PUT", body: `{"i":${i}}`, headers: json });
    ms.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`PUT answered ${r.status}: ${r.body}`);
  }
  ms.sort((a, b) => a - b);
  return { p50Ms: percentile(ms, 0.5), p99Ms: percentile(ms, 0.99) };
}

export async function nearCache(ctx: Context): Promise<NearResult> {
  const q = ctx.options.quick;
  const writes = q ? 100 : 400;
  const rows: NearWriteRow[] = [];
  for (const [daemons, near] of [
    [1, false],
    [1, true],
    [3, true],
    [10, true],
  ] as const) {
    const tag = ctx.tag();
    const table = `bench_${tag}_near`;
    const prefix = `bench-${tag}`;
    ctx.tables.push(table);
    ctx.prefixes.push(prefix);
    const spec: DaemonSpec = {
      cachePrefix: prefix,
      storeUrl: PG_URL,
      pool: 4,
      keyspaces: {
        users: {
          strategy: "cache-aside",
          table,
          ttl: "1h",
          nearCache: near ? "{ ttl: 10m, lease: 2s }" : undefined,
        },
      },
    };
    const servers: Server[] = [];
    try {
      for (let i = 0; i < daemons; i++) servers.push(await startDaemon(spec));
      await call(servers[0]!.base + "/v1/kv/users/hot", { method: "PUT", body: VALUE_100B, headers: json });
      if (near) for (const s of servers) await nearServing(s, "/v1/kv/users/hot");
      const m = await writeLatency(servers, writes);
      ctx.log(
        `  ${daemons} daemon(s), ${near ? "coherent near cache" : "no near cache"}: ${writes} writes, ` +
          `p50 ${round(m.p50Ms, 2)} ms, p99 ${round(m.p99Ms, 2)} ms`,
      );
      rows.push({ daemons, nearCache: near, writes, ...m });
    } finally {
      await Promise.all(servers.map((s) => s.stop("SIGTERM")));
    }
  }

  // RSS with 100k near entries of ~100 bytes
  const tag = ctx.tag();
  const table = `bench_${tag}_rss`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix);
  const entries = q ? 20_000 : 100_000;
  const daemon = await startDaemon({
    cachePrefix: prefix,
    storeUrl: PG_URL,
    pool: 10,
    keyspaces: {
      users: { strategy: "cache-aside", table, ttl: "1h", nearCache: "{ ttl: 1h, max_entries: 200000 }" },
    },
  });
  try {
    await ctx.backends.seed(table, "k", entries, VALUE_100B); // the daemon made the table
    await nearServing(daemon, "/v1/kv/users/k0");
    const beforeMiB = rssBytes(daemon.pid) / 2 ** 20;
    const batch = 200;
    for (let i = 0; i < entries; i += batch) {
      const keys = Array.from({ length: Math.min(batch, entries - i) }, (_, j) => `k${i + j}`);
      const body = JSON.stringify({ keys });
      // the first read fills Redis, the second copies into the near cache
      await call(`${daemon.base}/v1/kv/users/_mget`, { method: "POST", body, headers: json });
      await call(`${daemon.base}/v1/kv/users/_mget`, { method: "POST", body, headers: json });
    }
    const metrics = (await call(`${daemon.base}/metrics`)).body;
    const nearEntries = Number(
      /sidecache_near_cache_entries\{keyspace="users"\} (\d+)/.exec(metrics)?.[1] ?? 0,
    );
    const nearBytes = Number(/sidecache_near_cache_bytes\{keyspace="users"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const afterMiB = rssBytes(daemon.pid) / 2 ** 20;
    ctx.log(
      `  RSS: ${round(beforeMiB, 0)} MiB before, ${round(afterMiB, 0)} MiB with ${nearEntries} near entries ` +
        `(${round(nearBytes / 2 ** 20, 1)} MiB by the daemon's estimate)`,
    );
    return {
      writes: rows,
      rss: {
        entries: nearEntries,
        valueBytes: Buffer.byteLength(VALUE_100B),
        beforeMiB,
        afterMiB,
        nearBytes,
      },
    };
  } finally {
    await daemon.stop("SIGTERM");
  }
}
