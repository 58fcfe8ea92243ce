/**
 * The Redis protocol front end: `redis-benchmark -t get,set` against sidecache's RESP port and against a
 * redis-server in the same run, both on the servers' core. GET reads warmed keys (Redis hits, then near cache
 * hits from a daemon whose keyspace has a near cache); SET runs once
 * per strategy, one daemon each, its keyspace named `key` as redis-benchmark's keys are (`key:NNNNNNNNNNNN`).
 * Then the same GET of one key over HTTP (wrk or autocannon) and over RESP (redis-benchmark), same daemon.
 */
import { Redis } from "ioredis";
import { PG_URL } from "../lib/backends.js";
import { round, type Context } from "../lib/context.js";
import { runLoad } from "../lib/loadgen.js";
import { cpuSeconds, spawnPinned, type Child } from "../lib/proc.js";
import { freePort, metrics, metricSum, startDaemon, type KeyspaceSpec, type Server } from "../lib/servers.js";

export interface RespBenchRow {
  target: string;
  test: string;
  requests: number;
  /** requests of the warm-up run before it (same test) */
  warmupRequests?: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** the server's CPU over the run, one core = 1 */
  serverCpuUtil?: number;
}

export interface RespBenchResult {
  clients: number;
  keys: number;
  valueBytes: number;
  durationS: number;
  get: { redis: RespBenchRow; sidecache: RespBenchRow; ratio: number; cacheMisses: number };
  /** the same GETs from a daemon whose keyspace has a near cache; nearHits over its warm-up and measured runs */
  nearGet?: { row: RespBenchRow; ratio: number; nearHits: number };
  set: { redis: RespBenchRow; rows: { strategy: string; row: RespBenchRow; ratio: number }[] };
  httpVsResp: { key: string; http: RespBenchRow; resp: RespBenchRow; ratio: number };
}

const CLIENTS = 50;
const KEYS = 1000;
const VALUE_BYTES = 100;

const SET_STRATEGIES: { label: string; ks: Omit<KeyspaceSpec, "table"> }[] = [
  { label: "cache-aside", ks: { strategy: "cache-aside", ttl: "1h" } },
  { label: "write-through (strict)", ks: { strategy: "write-through", consistency: "strict", ttl: "1h" } },
  { label: "write-around", ks: { strategy: "write-around", ttl: "1h" } },
  {
    label: "write-behind",
    ks: {
      strategy: "write-behind",
      ttl: "1h",
      writeBehind: { flushInterval: "1s", batchSize: 500, maxQueue: 1_000_000 },
    },
  },
];

const keyName = (i: number) => `key:${String(i).padStart(12, "0")}`;

export async function respBench(ctx: Context): Promise<RespBenchResult> {
  const q = ctx.options.quick;
  const durationS = q ? 2 : 5;
  const tag = ctx.tag();
  const prefix = `bench-${tag}-resp`;
  ctx.prefixes.push(prefix);
  const redisPort = await freePort();
  const baseline = spawnPinned(ctx.serverCore, "redis-server", [
    "--port",
    String(redisPort),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ]);
  const started: Server[] = [];
  try {
    await waitForPing(redisPort, baseline);
    const base = { ctx, durationS };
    const seed = new Redis({ port: redisPort, lazyConnect: true });
    await seed.connect();
    await fill(seed);
    seed.disconnect();
    ctx.log("  redis-server: GET, SET");
    const redisGet = await benchmark(base, "redis-server", redisPort, baseline.pid, [
      "-t",
      "get",
      "-r",
      String(KEYS),
    ]);
    const redisSet = await benchmark(base, "redis-server", redisPort, baseline.pid, [
      "-t",
      "set",
      "-r",
      String(KEYS),
      "-d",
      String(VALUE_BYTES),
    ]);

    // GET: a cache-aside keyspace, every key written and read before the run so that it reads cache hits;
    // once from Redis, then from a daemon that keeps them in its near cache.
    const table = `bench_${tag}_resp_get`;
    ctx.tables.push(table);
    const getDaemon = async (nearCache?: string): Promise<{ d: Server; port: number }> => {
      const port = await freePort();
      const d = await startDaemon(
        {
          cachePrefix: prefix,
          storeUrl: PG_URL,
          pool: 10,
          respPort: port,
          keyspaces: { key: { strategy: "cache-aside", table, ttl: "1h", nearCache } },
        },
        { core: ctx.serverCore },
      );
      started.push(d);
      await waitForPing(port);
      const client = new Redis({ port, lazyConnect: true });
      await client.connect();
      await fill(client);
      for (let round = 0; round < 2; round++) {
        const warm = client.pipeline();
        for (let i = 0; i < KEYS; i++) warm.get(keyName(i));
        await warm.exec();
      }
      client.disconnect();
      return { d, port };
    };
    const { d: daemon, port: respPort } = await getDaemon();
    const missesBefore = metricSum(await metrics(daemon), "sidecache_cache_misses_total");
    ctx.log("  sidecache: GET (Redis hits)");
    const sideGet = await benchmark(base, "sidecache", respPort, daemon.pid, [
      "-t",
      "get",
      "-r",
      String(KEYS),
    ]);
    const cacheMisses = metricSum(await metrics(daemon), "sidecache_cache_misses_total") - missesBefore;

    // The same GET of one warmed key over HTTP and over RESP.
    const one = keyName(1);
    ctx.log(`  sidecache: GET ${one} over HTTP (${ctx.tool}) and over RESP (redis-benchmark)`);
    const path = `/v1/kv/key/${one.slice(4)}`;
    const httpSpec = {
      base: daemon.base,
      pattern: { kind: "get" as const, path },
      connections: CLIENTS,
      threads: 1,
    };
    await runLoad(ctx.tool, { core: ctx.loadCore, ...httpSpec, durationS: 1 });
    const cpu0 = cpuSeconds(daemon.pid);
    const t0 = performance.now();
    const http = await runLoad(ctx.tool, { core: ctx.loadCore, ...httpSpec, durationS });
    const httpCpu = (cpuSeconds(daemon.pid) - cpu0) / ((performance.now() - t0) / 1000);
    if (http.errorStatus + http.socketErrors > 0)
      throw new Error(`HTTP GET: ${http.errorStatus + http.socketErrors} errors`);
    const httpRow: RespBenchRow = {
      target: "sidecache HTTP",
      test: `GET ${path}`,
      requests: http.requests,
      rps: http.rps,
      p50Ms: http.p50Ms,
      p99Ms: http.p99Ms,
      serverCpuUtil: httpCpu,
    };
    const respRow = await benchmark(base, "sidecache RESP", respPort, daemon.pid, ["GET", one]);
    await daemon.stop("SIGTERM");
    started.pop();

    const near = await getDaemon("{ max_entries: 10000, ttl: 10m }");
    const nearBefore = metricSum(await metrics(near.d), "sidecache_near_cache_hits_total");
    ctx.log("  sidecache: GET (near cache hits)");
    const nearGet = await benchmark(base, "sidecache, near cache", near.port, near.d.pid, [
      "-t",
      "get",
      "-r",
      String(KEYS),
    ]);
    const nearHits = metricSum(await metrics(near.d), "sidecache_near_cache_hits_total") - nearBefore;
    await near.d.stop("SIGTERM");
    started.pop();

    // SET: one daemon per strategy.
    const setRows: RespBenchResult["set"]["rows"] = [];
    for (const s of SET_STRATEGIES) {
      const t = `bench_${tag}_resp_${s.ks.strategy.replace(/-/g, "_")}`;
      ctx.tables.push(t);
      const port = await freePort();
      const d = await startDaemon(
        {
          cachePrefix: prefix,
          storeUrl: PG_URL,
          pool: 10,
          respPort: port,
          keyspaces: { key: { ...s.ks, table: t } },
        },
        { core: ctx.serverCore },
      );
      started.push(d);
      await waitForPing(port);
      ctx.log(`  sidecache: SET, ${s.label}`);
      const row = await benchmark(base, `sidecache, ${s.label}`, port, d.pid, [
        "-t",
        "set",
        "-r",
        String(KEYS),
        "-d",
        String(VALUE_BYTES),
      ]);
      setRows.push({ strategy: s.label, row, ratio: row.rps / redisSet.rps });
      await d.stop("SIGTERM");
      started.pop();
    }
    return {
      clients: CLIENTS,
      keys: KEYS,
      valueBytes: VALUE_BYTES,
      durationS,
      get: { redis: redisGet, sidecache: sideGet, ratio: sideGet.rps / redisGet.rps, cacheMisses },
      nearGet: { row: nearGet, ratio: nearGet.rps / redisGet.rps, nearHits },
      set: { redis: redisSet, rows: setRows },
      httpVsResp: { key: one, http: httpRow, resp: respRow, ratio: respRow.rps / httpRow.rps },
    };
  } finally {
    await Promise.all(started.map((s) => s.stop("SIGTERM")));
    await baseline.stop("SIGTERM");
  }
}

/** SETs every key redis-benchmark's GET will read, with a value of VALUE_BYTES. */
async function fill(client: Redis): Promise<void> {
  const p = client.pipeline();
  for (let i = 0; i < KEYS; i++) p.set(keyName(i), "x".repeat(VALUE_BYTES));
  const results = await p.exec();
  const failed = results?.find(([err]) => err !== null);
  if (failed) throw new Error(`seeding failed: ${String(failed[0])}`);
}

/**
 * redis-benchmark pinned to the load generator's core: a short run to warm up and size the measured run,
 * then one of about durationS seconds. The server's CPU is read around the measured run.
 */
async function benchmark(
  b: { ctx: Context; durationS: number },
  target: string,
  port: number,
  pid: number,
  test: string[],
): Promise<RespBenchRow> {
  const warm = await redisBenchmark(b.ctx, port, test, test.includes("set") ? 500 : 5_000);
  const n = Math.max(1_000, Math.min(5_000_000, Math.round(warm.rps * b.durationS)));
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const r = await redisBenchmark(b.ctx, port, test, n);
  const util = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
  const row = { ...r, target, serverCpuUtil: util, warmupRequests: warm.requests };
  b.ctx.log(
    `    ${target} ${r.test}: ${round(r.rps, 0)} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, server CPU ${round(util * 100, 0)}%`,
  );
  return row;
}

async function redisBenchmark(
  ctx: Context,
  port: number,
  test: string[],
  n: number,
): Promise<Omit<RespBenchRow, "target">> {
  const args = [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-c",
    String(CLIENTS),
    "-n",
    String(n),
    "--csv",
    ...test,
  ];
  const child = spawnPinned(ctx.loadCore, "redis-benchmark", args);
  const code = await child.exited;
  const out = child.output();
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const line = out.split("\n").find((l) => /^"[^"]+","\d/.test(l));
  if (code !== 0 || !line)
    throw new Error(`redis-benchmark ${args.join(" ")} exited ${code}:\n${out.slice(-2000)}`);
  if (/error/i.test(out.replace(/WARNING: Could not fetch server CONFIG/g, ""))) {
    throw new Error(`redis-benchmark reported errors:\n${out.slice(-2000)}`);
  }
  const cells = line.split(",").map((c) => c.replace(/"/g, ""));
  return {
    test: cells[0]!,
    requests: n,
    rps: Number(cells[1]),
    p50Ms: Number(cells[4]),
    p99Ms: Number(cells[6]),
  };
}

/** Resolves once the port answers PING (a daemon's RESP listener opens just after its HTTP one). */
async function waitForPing(port: number, child?: Child): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on("error", () => {});
    const ok = await c
      .connect()
      .then(() => c.ping())
      .then(
        (r) => r === "PONG",
        () => false,
      );
    c.disconnect();
    if (ok) return;
    if (child && (child.child.exitCode !== null || child.child.signalCode !== null)) {
      throw new Error(`server on port ${port} exited:\n${child.output().slice(-2000)}`);
    }
    if (Date.now() > deadline) throw new Error(`nothing answers PING on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
