/**
 * Background load: what idle daemons cost the servers they share. N daemons (child processes) run over a
 * private Redis and a private PostgreSQL (with pg_stat_statements), with no request at all; over a window
 * the section counts Redis commands (INFO commandstats deltas) and PostgreSQL statements
 * (pg_stat_statements calls: counted as each statement ends, where pg_stat_database's transaction counts
 * arrive up to seconds late), and the connections each server holds.
 * The fleet grows 1 → 10 → 50 in one run, so every figure is measured beside the others. Each daemon
 * answers one read per keyspace after it starts (a daemon that served traffic, gone quiet).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { startPrivatePostgres, type PrivatePostgres } from "../../test/support/pg-server.js";
import { startPgBouncer, type PrivatePgBouncer } from "../../test/support/pgbouncer.js";
import { startPrivateRedis, type PrivateRedis } from "../../test/support/redis-server.js";
import { round, sleep, type Context } from "../lib/context.js";
import { cpuSeconds, mainThreadWakeups, spawnPinned, waitForOutput, type Child } from "../lib/proc.js";
import { ROOT } from "../lib/servers.js";

export interface IdleRow {
  daemons: number;
  /** set when the daemons reach PostgreSQL through PgBouncer in transaction mode */
  via?: "pgbouncer";
  windowS: number;
  redisCommandsPerS: number;
  pgStatementsPerS: number;
  redisConnections: number;
  pgConnections: number;
  /** the most PostgreSQL connections seen while this row's daemons started */
  pgConnectionsPeak: number;
  /** the busiest commands and statements, per second */
  topRedis: { command: string; perS: number }[];
  topPg: { statement: string; perS: number }[];
  /** each daemon's main thread: times it was woken per second, and its process's CPU, mean over the daemons */
  wakeupsPerSPerDaemon?: number;
  cpuMsPerSPerDaemon?: number;
}

export interface IdleResult {
  config: string;
  rows: IdleRow[];
}

const FLEET = [1, 10, 50];
const KEYSPACES = ["users", "orders", "events", "profiles"];
/** started together: more would only queue on the cores */
const START_BATCH = 5;

/** A typical daemon: four keyspaces, one of each kind of background work, the checker on its default schedule. */
function daemonYaml(redisUrl: string, pgUrl: string, pooler = false): string {
  return `server: { host: 127.0.0.1, port: 0 }
cache: { url: ${redisUrl}, prefix: idle }
store: { url: "${pgUrl}"${pooler ? ", pooler: transaction" : ""} }
log: { level: info }
keyspaces:
  users: { strategy: cache-aside, table: idle_users }
  orders: { strategy: write-through, table: idle_orders }
  events: { strategy: write-behind, table: idle_events }
  profiles: { strategy: read-through, table: idle_profiles, near_cache: { mode: coherent } }
`;
}

async function redisCalls(redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await redis.info("commandstats")).split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function pgCalls(db: pg.Client): Promise<Map<string, number>> {
  const r = await db.query<{ query: string; calls: string }>(
    `select query, sum(calls)::bigint as calls from pg_stat_statements
     where dbid = (select oid from pg_database where datname = current_database()) group by query`,
  );
  return new Map(r.rows.map((row) => [row.query.replace(/\s+/g, " ").slice(0, 90), Number(row.calls)]));
}

function delta(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

async function connections(redis: Redis, db: pg.Client): Promise<{ redis: number; pg: number }> {
  const clients = /connected_clients:(\d+)/.exec(await redis.info("clients"))?.[1];
  const r = await db.query<{ n: string }>(
    `select count(*) as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`,
  );
  // this section's own connection to each is not a daemon's
  return { redis: Number(clients ?? 1) - 1, pg: Number(r.rows[0]?.n ?? 0) };
}

/** Each daemon logs to a file of its own (the port it listens on is read from it). */
async function spawnOne(file: string, dir: string, name: string): Promise<Child> {
  const child = spawnPinned(
    undefined,
    process.execPath,
    [join(ROOT, "dist/cmd/sidecache.js"), "--config", file],
    {},
    join(dir, `${name}.log`),
  );
  const m = await waitForOutput(child, /"port":(\d+)[^\n]*sidecache listening/, 60_000);
  for (const ks of KEYSPACES) await fetch(`http://127.0.0.1:${m[1]}/v1/kv/${ks}/k`).then((r) => r.text());
  return child;
}

async function window(
  redis: Redis,
  db: pg.Client,
  pids: number[],
  windowS: number,
  pgConnectionsPeak: number,
): Promise<IdleRow> {
  const daemons = pids.length;
  const r0 = await redisCalls(redis);
  const p0 = await pgCalls(db);
  const w0 = pids.map(mainThreadWakeups);
  const c0 = pids.map(cpuSeconds);
  const t0 = performance.now();
  await sleep(windowS * 1000);
  const w1 = pids.map(mainThreadWakeups);
  const c1 = pids.map(cpuSeconds);
  const r1 = await redisCalls(redis);
  const p1 = await pgCalls(db);
  const s = (performance.now() - t0) / 1000;
  const perDaemon = (a: number[], b: number[]) => b.reduce((t, x, i) => t + x - a[i]!, 0) / daemons / s;
  const rd = delta(r1, r0);
  // this section's own INFO and pg_stat_* reads
  rd.set("info", Math.max(0, (rd.get("info") ?? 0) - 1));
  const pd = delta(p1, p0);
  for (const k of [...pd.keys()]) if (/pg_stat_statements|pg_stat_activity/.test(k)) pd.delete(k);
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, 6);
  const conns = await connections(redis, db);
  return {
    daemons,
    windowS: round(s, 1),
    redisCommandsPerS: sum(rd) / s,
    pgStatementsPerS: sum(pd) / s,
    redisConnections: conns.redis,
    pgConnections: conns.pg,
    pgConnectionsPeak,
    topRedis: top(rd).map(([command, n]) => ({ command, perS: n / s })),
    topPg: top(pd).map(([statement, n]) => ({ statement, perS: n / s })),
    wakeupsPerSPerDaemon: perDaemon(w0, w1),
    cpuMsPerSPerDaemon: perDaemon(c0, c1) * 1000,
  };
}

export async function idleFleet(ctx: Context): Promise<IdleResult> {
  const windowS = ctx.options.quick ? 10 : 30;
  let redisServer: PrivateRedis | undefined;
  let pgServer: PrivatePostgres | undefined;
  const children: Child[] = [];
  const rows: IdleRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), "sidecache-idle-"));
  let redis: Redis | undefined;
  let db: pg.Client | undefined;
  let bouncer: PrivatePgBouncer | undefined;
  try {
    redisServer = await startPrivateRedis();
    // PostgreSQL's default of 100 connections is too few for 50 daemons as they start (the peak is reported)
    pgServer = await startPrivatePostgres({
      shared_preload_libraries: "pg_stat_statements",
      max_connections: 600,
    });
    db = new pg.Client({ connectionString: pgServer.url, application_name: "bench-idle" });
    await db.connect();
    await db.query("create extension if not exists pg_stat_statements");
    redis = new Redis(redisServer.url);
    redis.on("error", (err: Error) => ctx.log(`  bench's Redis connection: ${err.message}`));
    const yaml = daemonYaml(redisServer.url, pgServer.url);
    const file = join(dir, "sidecache.yaml");
    writeFileSync(file, yaml);
    const grow = async (n: number, yamlFile: string, via?: "pgbouncer") => {
      let peak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const now = await connections(redis!, db!).catch(() => undefined);
          peak = Math.max(peak, now?.pg ?? 0);
          await sleep(100);
        }
      })();
      while (children.length < n) {
        const batch = Math.min(START_BATCH, n - children.length);
        const started = await Promise.all(
          Array.from({ length: batch }, (_, i) =>
            spawnOne(yamlFile, dir, `${via ?? "direct"}-${children.length + i}`),
          ),
        );
        children.push(...started);
      }
      await sleep(3_000); // start-up work (warming, first sweeps, claims) settles
      sampling = false;
      await sampler;
      const pids = children.map((c) => c.pid).filter((p) => p > 0);
      const row = { ...(await window(redis!, db!, pids, windowS, peak)), ...(via ? { via } : {}) };
      rows.push(row);
      ctx.log(
        `  ${n} idle daemon(s)${via ? " through PgBouncer (transaction mode)" : ""}: ` +
          `Redis ${round(row.redisCommandsPerS, 1)} commands/s ` +
          `(${round(row.redisCommandsPerS / n, 1)} per daemon), PostgreSQL ${round(row.pgStatementsPerS, 1)} ` +
          `statements/s (${round(row.pgStatementsPerS / n, 2)} per daemon); connections: Redis ${row.redisConnections}, PostgreSQL ${row.pgConnections} ` +
          `(${row.pgConnectionsPeak} at most while they started); each daemon woke ` +
          `${round(row.wakeupsPerSPerDaemon ?? 0, 1)} times/s and used ${round(row.cpuMsPerSPerDaemon ?? 0, 2)} ms of CPU/s`,
      );
      ctx.log(`    Redis: ${row.topRedis.map((t) => `${t.command} ${round(t.perS, 1)}/s`).join(", ")}`);
      for (const t of row.topPg) ctx.log(`    PostgreSQL ${round(t.perS, 2)}/s: ${t.statement}`);
    };
    for (const n of FLEET) await grow(n, file);
    const one = rows[0]!;
    const many = rows[rows.length - 1]!;
    ctx.log(
      `  ${many.daemons} vs 1: Redis commands/s ×${round(many.redisCommandsPerS / Math.max(one.redisCommandsPerS, 1e-9), 1)}, ` +
        `PostgreSQL statements/s ×${round(many.pgStatementsPerS / Math.max(one.pgStatementsPerS, 1e-9), 1)}`,
    );
    // The same fleet through PgBouncer in transaction mode, when it is installed.
    try {
      bouncer = await startPgBouncer({ target: pgServer.url, poolMode: "transaction", poolSize: 10 });
    } catch (err) {
      ctx.log(`  PgBouncer not measured: ${String(err).split("\n")[0]}`);
    }
    if (bouncer) {
      await Promise.allSettled(children.splice(0).map((c) => c.stop("SIGTERM", 10_000)));
      const pooled = join(dir, "pooled.yaml");
      writeFileSync(pooled, daemonYaml(redisServer.url, bouncer.url, true));
      await grow(FLEET[FLEET.length - 1]!, pooled, "pgbouncer");
    }
    return {
      config: yaml.replace(/redis:\/\/[^,\s]+/, "redis://…").replace(/"postgres:\/\/\S+"/, "postgres://…"),
      rows,
    };
  } finally {
    await Promise.allSettled(children.map((c) => c.stop("SIGTERM", 10_000)));
    await bouncer?.stop().catch(() => {});
    redis?.disconnect();
    await db?.end().catch(() => {});
    await redisServer?.stop().catch(() => {});
    await pgServer?.cleanup().catch(() => {});
  }
}
