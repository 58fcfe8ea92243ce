/**
 * Writes: PUTs with a ~100-byte JSON body on a hot set of keys, through write-through,
 * write-around and write-behind, one daemon per strategy. The daemon reaches PostgreSQL through a
 * pass-through proxy (no delay) that counts every statement on the wire, so "statements per 1,000
 * acknowledged writes" is measured where PostgreSQL receives them; pg_stat_user_tables gives the rows.
 */
import { PG_TARGET } from "../lib/backends.js";
import { measure, round, sleep, type Context, type Measured } from "../lib/context.js";
import { PgProxy } from "../lib/pgproxy.js";
import { call, metrics, metricSum, startDaemon, type KeyspaceSpec, type Server } from "../lib/servers.js";
import { VALUE_100B } from "./hitpath.js";

export interface WriteRow {
  strategy: string;
  available: boolean;
  note?: string;
  run?: Measured;
  /** 2xx/3xx answers in the measured window */
  acked: number;
  ackRps: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** answers by status class other than success, if any */
  errors: number;
  /** statements that reached PostgreSQL from the start of the window until the queue (if any) was flushed */
  statements: number;
  statementsPer1k: number;
  commitsPer1k: number;
  /** the statements per 1,000 acks by kind (begin, lock, select, insert, with, commit, ...) */
  kindsPer1k: Record<string, number>;
  /** rows inserted + updated in the keyspace's table per 1,000 acknowledged writes (pg_stat_user_tables, warm-up included) */
  rowWritesPer1k: number;
  /** the daemon's own count (write-behind flushes only) for comparison */
  metricStatements?: number;
  /** write-behind: how long the final flush took */
  flushMs?: number;
  serverCpuUtil: number;
  cpuSPer10k: number;
  rssMiB: number;
}

export interface WritesResult {
  hotKeys: number;
  connections: number;
  durationS: number;
  warmupS: number;
  bodyBytes: number;
  rows: WriteRow[];
}

const STRATEGIES: { label: string; ks: Omit<KeyspaceSpec, "table"> }[] = [
  { label: "write-through (strict)", ks: { strategy: "write-through", consistency: "strict", ttl: "1h" } },
  { label: "write-around", ks: { strategy: "write-around", ttl: "1h" } },
  {
    label: "write-behind",
    ks: {
      strategy: "write-behind",
      ttl: "1h",
      writeBehind: { flushInterval: "1s", batchSize: 500, maxQueue: 100_000 },
    },
  },
];

export async function writes(ctx: Context): Promise<WritesResult> {
  const q = ctx.options.quick;
  const durationS = q ? 3 : 10;
  const warmupS = q ? 1 : 2;
  const connections = 50;
  const hotKeys = 100;
  const rows: WriteRow[] = [];
  for (const s of STRATEGIES) {
    rows.push(await oneStrategy(ctx, s.label, s.ks, { durationS, warmupS, connections, hotKeys }));
  }
  return { hotKeys, connections, durationS, warmupS, bodyBytes: Buffer.byteLength(VALUE_100B), rows };
}

async function oneStrategy(
  ctx: Context,
  label: string,
  ks: Omit<KeyspaceSpec, "table">,
  p: { durationS: number; warmupS: number; connections: number; hotKeys: number },
): Promise<WriteRow> {
  const tag = ctx.tag();
  const table = `bench_${tag}_w`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix);
  const proxy = new PgProxy(PG_TARGET, 0, [table]);
  await proxy.listen();
  let daemon: Server | undefined;
  const empty = (note: string): WriteRow => ({
    strategy: label,
    available: false,
    note,
    acked: 0,
    ackRps: 0,
    meanMs: 0,
    p50Ms: 0,
    p99Ms: 0,
    errors: 0,
    statements: 0,
    statementsPer1k: 0,
    commitsPer1k: 0,
    kindsPer1k: {},
    rowWritesPer1k: 0,
    serverCpuUtil: 0,
    cpuSPer10k: 0,
    rssMiB: 0,
  });
  try {
    try {
      daemon = await startDaemon(
        { cachePrefix: prefix, storeUrl: proxy.url, pool: 10, keyspaces: { w: { ...ks, table } } },
        { core: ctx.serverCore },
      );
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const why = /no strategy named|strategy/i.exec(msg)
        ? msg.split("\n").find((l) => /strateg/i.test(l))
        : undefined;
      ctx.log(`  ${label}: not available (${(why ?? msg).slice(0, 300)})`);
      return empty(
        `not available in this build: the daemon did not start (${(why ?? msg.split("\n")[0] ?? "").slice(0, 200).trim()})`,
      );
    }
    const spec = {
      base: daemon.base,
      pattern: {
        kind: "put" as const,
        pathPrefix: "/v1/kv/w/",
        keyPrefix: "hot-",
        keys: p.hotKeys,
        body: VALUE_100B,
      },
      connections: p.connections,
      threads: 1,
    };
    ctx.log(
      `  ${label}: ${p.warmupS}s warm-up, ${p.durationS}s measured, ${p.connections} connections, ${p.hotKeys} hot keys`,
    );
    const warm = await measure(ctx, daemon, { ...spec, durationS: p.warmupS });
    if (ks.strategy === "write-behind") await call(`${daemon.base}/v1/keyspaces/w/flush`, { method: "POST" });
    await sleep(200);
    const before = proxy.snapshot();
    const m0 = await metrics(daemon);
    const run = await measure(ctx, daemon, { ...spec, durationS: p.durationS });
    let flushMs: number | undefined;
    if (ks.strategy === "write-behind") {
      const t = performance.now();
      const f = await call(`${daemon.base}/v1/keyspaces/w/flush`, { method: "POST" });
      flushMs = performance.now() - t;
      if (f.status !== 200) throw new Error(`flush answered ${f.status}: ${f.body}`);
    }
    await sleep(300);
    const after = proxy.snapshot();
    const m1 = await metrics(daemon);
    await daemon.stop("SIGTERM");
    daemon = undefined;
    const t = await ctx.backends.settledTableStats(table);
    const acked = run.load.ok;
    const ackedAll = acked + warm.load.ok;
    const statements = after.statements - before.statements;
    const per1k = (n: number) => (acked > 0 ? (n / acked) * 1000 : 0);
    const metricName = "sidecache_store_write_statements_total";
    const row: WriteRow = {
      strategy: label,
      available: true,
      run,
      acked,
      ackRps: run.load.okRps,
      meanMs: run.load.meanMs,
      p50Ms: run.load.p50Ms,
      p99Ms: run.load.p99Ms,
      errors: run.load.errorStatus + run.load.socketErrors,
      statements,
      statementsPer1k: per1k(statements),
      commitsPer1k: per1k(after.commits - before.commits),
      kindsPer1k: Object.fromEntries(
        Object.entries(after.byKind).map(([k, n]) => [k, per1k(n - (before.byKind[k] ?? 0))]),
      ),
      rowWritesPer1k: ackedAll > 0 ? ((t.ins + t.upd) / ackedAll) * 1000 : 0,
      metricStatements: m1.includes(metricName)
        ? metricSum(m1, metricName, { keyspace: "w" }) - metricSum(m0, metricName, { keyspace: "w" })
        : undefined,
      flushMs,
      serverCpuUtil: run.serverCpuUtil,
      cpuSPer10k: run.load.requests > 0 ? (run.serverCpuS / run.load.requests) * 10_000 : 0,
      rssMiB: run.serverRssMiB,
    };
    ctx.log(
      `    ${round(row.ackRps, 0)} acks/s, p50 ${round(row.p50Ms, 2)} ms, p99 ${round(row.p99Ms, 2)} ms, ` +
        `${round(row.statementsPer1k, 1)} statements per 1,000 acks, errors ${row.errors}`,
    );
    return row;
  } finally {
    await daemon?.stop("SIGTERM");
    await proxy.close();
  }
}
