/**
 * Writes: PUTs with a ~100-byte JSON body on a hot set of keys, through every strategy that writes (one
 * daemon per strategy), beside the baseline a team writes by hand: an in-app server doing a plain upsert in
 * autocommit and a Redis SET per request (pool 10 too, same PostgreSQL and Redis, same run; measured first
 * and again last, as the machine's load drifts). Each server is measured with one connection, then with 50.
 * Every server reaches PostgreSQL through a pass-through proxy (no delay) that counts every statement on
 * the wire, so "statements per write" is measured where PostgreSQL receives them; pg_stat_user_tables
 * gives the rows.
 */
import { PG_TARGET } from "../lib/backends.js";
import { measure, round, sleep, type Context, type Measured } from "../lib/context.js";
import { PgProxy } from "../lib/pgproxy.js";
import {
  call,
  metrics,
  metricSum,
  startDaemon,
  startInApp,
  type KeyspaceSpec,
  type Server,
} from "../lib/servers.js";
import { REDIS_URL } from "../lib/backends.js";
import { VALUE_100B } from "./hitpath.js";

/** One connection: acknowledgements, latency and statements per write. */
export interface OneConnection {
  acked: number;
  ackRps: number;
  p50Ms: number;
  p99Ms: number;
  statementsPerWrite: number;
}

export interface WriteRow {
  strategy: string;
  /** the in-app baseline rather than a sidecache strategy */
  baseline?: boolean;
  available: boolean;
  note?: string;
  run?: Measured;
  /** 2xx/3xx answers in the measured window (50 connections) */
  acked: number;
  ackRps: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** acks/s over the mean of the baseline's two runs */
  vsBaseline?: number;
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
  /** the same server with one connection */
  one?: OneConnection;
  serverCpuUtil: number;
  cpuSPer10k: number;
  rssMiB: number;
}

export interface WritesResult {
  hotKeys: number;
  connections: number;
  durationS: number;
  warmupS: number;
  oneDurationS: number;
  bodyBytes: number;
  rows: WriteRow[];
}

interface Subject {
  label: string;
  /** absent: the in-app baseline */
  ks?: Omit<KeyspaceSpec, "table" | "auditTable">;
  /** the keyspace keeps an audit log (in a table of its own, made for the run) */
  audit?: boolean;
}

const BASELINE = "in-app: upsert + Redis SET";
const SUBJECTS: Subject[] = [
  { label: BASELINE },
  { label: "write-through (strict)", ks: { strategy: "write-through", consistency: "strict", ttl: "1h" } },
  {
    label: "write-through (eventual)",
    ks: { strategy: "write-through", consistency: "eventual", ttl: "1h" },
  },
  { label: "write-around", ks: { strategy: "write-around", ttl: "1h" } },
  { label: "cache-aside", ks: { strategy: "cache-aside", ttl: "1h" } },
  { label: "cache-aside (audit log on)", ks: { strategy: "cache-aside", ttl: "1h" }, audit: true },
  {
    label: "write-behind",
    ks: {
      strategy: "write-behind",
      ttl: "1h",
      writeBehind: { flushInterval: "1s", batchSize: 500, maxQueue: 100_000 },
    },
  },
  {
    label: "write-behind (audit log on)",
    ks: {
      strategy: "write-behind",
      ttl: "1h",
      writeBehind: { flushInterval: "1s", batchSize: 500, maxQueue: 100_000 },
    },
    audit: true,
  },
  { label: `${BASELINE} (again)` },
];

interface Plan {
  durationS: number;
  warmupS: number;
  oneDurationS: number;
  connections: number;
  hotKeys: number;
}

export async function writes(ctx: Context): Promise<WritesResult> {
  const q = ctx.options.quick;
  const plan: Plan = {
    durationS: q ? 3 : 10,
    warmupS: q ? 1 : 2,
    oneDurationS: q ? 2 : 5,
    connections: 50,
    hotKeys: 100,
  };
  const rows: WriteRow[] = [];
  for (const s of SUBJECTS) rows.push(await oneSubject(ctx, s, plan));
  const base = rows.filter((r) => r.baseline && r.available).map((r) => r.ackRps);
  const baseRps = base.length > 0 ? base.reduce((a, b) => a + b, 0) / base.length : 0;
  for (const r of rows) if (r.available && baseRps > 0) r.vsBaseline = r.ackRps / baseRps;
  for (const r of rows) {
    if (!r.available || r.baseline) continue;
    ctx.log(`  ${r.strategy}: ${round(r.vsBaseline ?? 0, 2)}x the in-app server's acks/s`);
  }
  return {
    hotKeys: plan.hotKeys,
    connections: plan.connections,
    durationS: plan.durationS,
    warmupS: plan.warmupS,
    oneDurationS: plan.oneDurationS,
    bodyBytes: Buffer.byteLength(VALUE_100B),
    rows,
  };
}

function empty(label: string, note: string): WriteRow {
  return {
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
  };
}

async function startSubject(
  ctx: Context,
  s: Subject,
  table: string,
  prefix: string,
  proxy: PgProxy,
): Promise<Server> {
  if (!s.ks) {
    await ctx.backends.pg.query(
      `create table if not exists "${table}" ("key" text collate "C" primary key, "value" jsonb not null,
         "version" bigint not null, "updated_at" timestamptz not null default now())`,
    );
    return startInApp(
      { redisUrl: REDIS_URL, pgUrl: proxy.url, pool: 10, prefix, tables: { w: table }, ttlMs: 3_600_000 },
      ctx.serverCore,
    );
  }
  const auditTable = s.audit ? `${table}_audit` : undefined;
  if (auditTable) ctx.tables.push(auditTable);
  return startDaemon(
    { cachePrefix: prefix, storeUrl: proxy.url, pool: 10, keyspaces: { w: { ...s.ks, table, auditTable } } },
    { core: ctx.serverCore },
  );
}

async function oneSubject(ctx: Context, s: Subject, p: Plan): Promise<WriteRow> {
  const tag = ctx.tag();
  const table = `bench_${tag}_w`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix);
  const proxy = new PgProxy(PG_TARGET, 0, [table]);
  await proxy.listen();
  let server: Server | undefined;
  const writeBehind = s.ks?.strategy === "write-behind";
  const flush = () => call(`${server!.base}/v1/keyspaces/w/flush`, { method: "POST" });
  try {
    try {
      server = await startSubject(ctx, s, table, prefix, proxy);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      ctx.log(`  ${s.label}: not available (${msg.slice(0, 300)})`);
      return empty(s.label, `not available: the server did not start (${msg.split("\n")[0]!.slice(0, 200)})`);
    }
    const spec = (connections: number, durationS: number) => ({
      base: server!.base,
      pattern: {
        kind: "put" as const,
        pathPrefix: "/v1/kv/w/",
        keyPrefix: "hot-",
        keys: p.hotKeys,
        body: VALUE_100B,
      },
      connections,
      threads: 1,
      durationS,
    });
    ctx.log(
      `  ${s.label}: 1 connection for ${p.oneDurationS}s, then ${p.warmupS}s warm-up and ${p.durationS}s measured ` +
        `with ${p.connections} connections, ${p.hotKeys} hot keys`,
    );

    // One connection: each write alone.
    await measure(ctx, server, spec(1, Math.min(1, p.warmupS)));
    if (writeBehind) await flush();
    await sleep(200);
    const one0 = proxy.snapshot();
    const oneRun = await measure(ctx, server, spec(1, p.oneDurationS));
    if (writeBehind) await flush();
    const one1 = proxy.snapshot();
    const one: OneConnection = {
      acked: oneRun.load.ok,
      ackRps: oneRun.load.okRps,
      p50Ms: oneRun.load.p50Ms,
      p99Ms: oneRun.load.p99Ms,
      statementsPerWrite: oneRun.load.ok > 0 ? (one1.statements - one0.statements) / oneRun.load.ok : 0,
    };

    // Fifty connections.
    const warm = await measure(ctx, server, spec(p.connections, p.warmupS));
    if (writeBehind) await flush();
    await sleep(200);
    const before = proxy.snapshot();
    const m0 = s.ks ? await metrics(server) : "";
    const run = await measure(ctx, server, spec(p.connections, p.durationS));
    let flushMs: number | undefined;
    if (writeBehind) {
      const t = performance.now();
      const f = await flush();
      flushMs = performance.now() - t;
      if (f.status !== 200) throw new Error(`flush answered ${f.status}: ${f.body}`);
    }
    await sleep(300);
    const after = proxy.snapshot();
    const m1 = s.ks ? await metrics(server) : "";
    await server.stop("SIGTERM");
    server = undefined;
    const t = await ctx.backends.settledTableStats(table);
    const acked = run.load.ok;
    const ackedAll = acked + warm.load.ok + one.acked;
    const statements = after.statements - before.statements;
    const per1k = (n: number) => (acked > 0 ? (n / acked) * 1000 : 0);
    const metricName = "sidecache_store_write_statements_total";
    const row: WriteRow = {
      strategy: s.label,
      baseline: !s.ks,
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
      one,
      serverCpuUtil: run.serverCpuUtil,
      cpuSPer10k: run.load.requests > 0 ? (run.serverCpuS / run.load.requests) * 10_000 : 0,
      rssMiB: run.serverRssMiB,
    };
    ctx.log(
      `    1 connection: ${round(one.ackRps, 0)} acks/s, p50 ${round(one.p50Ms, 2)} ms, ` +
        `${round(one.statementsPerWrite, 3)} statements per write`,
    );
    ctx.log(
      `    ${p.connections} connections: ${round(row.ackRps, 0)} acks/s, p50 ${round(row.p50Ms, 2)} ms, ` +
        `p99 ${round(row.p99Ms, 2)} ms, ${round(row.statementsPer1k / 1000, 3)} statements per write, errors ${row.errors}`,
    );
    return row;
  } finally {
    await server?.stop("SIGTERM");
    await proxy.close();
  }
}
