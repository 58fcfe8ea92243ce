/**
 * One chaos run: three daemons over one Redis and one PostgreSQL, clients reading and writing at random
 * through any of them while the faults of the profile are injected at random; then every fault is healed,
 * write-behind is flushed, one full consistency check runs per keyspace, every key is read through every
 * daemon, and the history checker (checker.ts) proves or refutes the invariants.
 */
import pg from "pg";
import { request } from "undici";
import { RedisCache } from "../../src/cache/redis.js";
import { startPrivatePostgres, type PrivatePostgres } from "../../test/support/pg-server.js";
import { checkRun, type SavedRun } from "./checker.js";
import { checkCache } from "./end-state.js";
import { Monkey, type Fault } from "./faults.js";
import { History, type CachedRecord, type FinalState, type StoredRecord, type Written } from "./history.js";
import type { Violation } from "./invariants.js";
import { ChildDaemon, DurableRedis, freePort, until } from "./processes.js";
import { PROFILES, type KeyspaceSpec, type ProfileName } from "./profiles.js";
import { stream } from "./random.js";
import { COMMITS, createSchema, tableOf } from "./schema.js";
import { Workload } from "./workload.js";

export interface ChaosOptions {
  profile: ProfileName;
  seconds: number;
  clients: number;
  keysPerKeyspace: number;
  seed: number;
  daemons?: number;
  /**
   * Go on past `seconds` (up to `maxSeconds`) until this many writes were acknowledged and this many
   * faults injected: on a busy machine a fixed time may do too little for the verdict to mean anything.
   */
  atLeast?: { ackedWrites: number; faults: number; maxSeconds: number };
  /** instead of the profile's keyspaces or faults (tests) */
  keyspaces?: readonly KeyspaceSpec[];
  faults?: readonly Fault[];
  /** the daemons' cache.trust_lease (default 300ms; "" leaves it out, for builds that predate it) */
  trustLease?: string;
  /** where the built daemon is */
  entry?: string;
  /**
   * A private PostgreSQL to use (tests that run several times share one): the run makes a database of its
   * own in it and leaves the server running. Without it the run starts its own and removes it after.
   */
  postgres?: PrivatePostgres;
  say?: (line: string) => void;
}

export interface ChaosReport {
  ok: boolean;
  violations: Violation[];
  run: SavedRun;
  operations: number;
  writes: { acked: number; refused: number; unknown: number };
  reads: number;
  statuses: Record<string, number>;
  cache: Record<string, number>;
  /** cache entries that disagreed with PostgreSQL before the full check (it repairs them) */
  divergedBeforeCheck: number;
}

/** The request deadline, and how long a `slow` value's commit sleeps: past it. */
const DEADLINE_MS = 1000;
const SLOW_MS = 1500;
const REFUSE_MS = 150;

function configYaml(
  port: number,
  redisUrl: string,
  pgUrl: string,
  keyspaces: readonly KeyspaceSpec[],
  trustLease: string,
): string {
  // A short trust lease: a write whose cache update failed waits for its repair or one lease.
  const lease = trustLease === "" ? "" : ` trust_lease: ${trustLease},`;
  return `
server: { host: 127.0.0.1, port: ${port}, request_deadline: ${DEADLINE_MS}ms, shutdown_timeout: 2s }
cache: { url: ${redisUrl}, prefix: chaos, timeout: 300ms,${lease} breaker: { failures: 5, cooldown: 300ms } }
store: { url: ${pgUrl}, timeout: 800ms, pool: 10, breaker: { failures: 5, cooldown: 300ms } }
checker: { enabled: false, repair: invalidate }
log: { level: warn }
keyspaces:
${keyspaces.map((k) => `  ${k.name}: { ${k.yaml}, table: ${tableOf(k.name)} }`).join("\n")}
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const say = o.say ?? ((l: string) => process.stdout.write(`${l}\n`));
  const profile = PROFILES[o.profile];
  const specs = o.keyspaces ?? profile.keyspaces;
  const faults = o.faults ?? profile.faults;
  const names = specs.map((k) => k.name);
  const keys = Array.from({ length: o.keysPerKeyspace }, (_, i) => (i % 7 === 2 ? `k/${i} é` : `k${i}`));
  const n = o.daemons ?? 3;
  say(
    `chaos ${o.profile}: ${o.seconds}s, ${n} daemons, ${o.clients} clients, ${specs.length} keyspaces x ` +
      `${keys.length} keys, seed ${o.seed}\n  ${o.keyspaces || o.faults ? `keyspaces ${names.join(", ")}; faults ${faults.join(", ")}` : profile.note}`,
  );

  const began = performance.now();
  const phase = (what: string) => say(`  [${((performance.now() - began) / 1000).toFixed(1)}s] ${what}`);
  const [redis, postgres, ...ports] = await Promise.all([
    DurableRedis.start(),
    o.postgres ?? startPrivatePostgres(),
    ...Array.from({ length: n }, () => freePort()),
  ]);
  const pgUrl = await freshDatabase(postgres.url);
  const daemons = ports.map(
    (p) => new ChildDaemon(p, configYaml(p, redis.url, pgUrl, specs, o.trustLease ?? "300ms"), o.entry),
  );
  const history = new History();
  let db: pg.Client | undefined;
  try {
    db = new pg.Client({ connectionString: pgUrl });
    await db.connect();
    await createSchema(db, names);
    await db.end();
    db = undefined;
    await Promise.all(daemons.map((d) => d.start()));
    phase("backends and daemons up");

    const t0 = performance.now();
    const workload = new Workload(
      {
        daemons: daemons.map((d) => d.url),
        keyspaces: specs.map((k) => ({ name: k.name, flags: k.synchronous })),
        keys,
        clients: o.clients,
        seed: o.seed,
        t0,
        refuseMs: REFUSE_MS,
        slowMs: SLOW_MS,
      },
      history,
    );
    const monkey = new Monkey(
      { redis, postgres, daemons },
      stream(o.seed, 1_000_000),
      faults,
      t0,
      (f) => history.faults.push(f),
      say,
    );
    say("faults:");
    workload.start();
    monkey.start();
    await sleep(o.seconds * 1000);
    const enough = o.atLeast;
    while (
      enough &&
      performance.now() - t0 < enough.maxSeconds * 1000 &&
      (history.writes.filter((w) => w.acked).length < enough.ackedWrites ||
        history.faults.length < enough.faults)
    ) {
      await sleep(250);
    }
    await monkey.stop();
    // A moment of calm with traffic, so breakers close and repairs finish, then the clients stop, and the
    // commits a slow value held past its request's deadline end (they may still commit).
    await sleep(500);
    await workload.stop();
    history.faults.sort((a, b) => a.start - b.start);
    db = new pg.Client({ connectionString: pgUrl });
    await db.connect();
    await until("the slow commits ended", async () => !(await sleeping(db!)), SLOW_MS * 4);
    phase("healed, clients stopped");

    for (const ks of specs.filter((k) => !k.synchronous)) {
      for (const d of daemons) await retry(() => post(d.url, `/v1/keyspaces/${ks.name}/flush`));
    }
    const final = await finalState(db, redis.url, daemons[0]!.url, names, keys);
    phase("flushed, checked, final state read");
    const urls = daemons.map((d) => d.url);
    const reader = new Workload(
      { daemons: urls, keyspaces: [], keys, clients: 0, seed: o.seed, t0, refuseMs: 0, slowMs: 0 },
      history,
    );
    // One key at a time per daemon; a read that fails (5xx, no answer) is tried again for a while: this
    // checks what the daemons converged to, not how fast they answer a burst on a busy machine.
    await Promise.all(
      daemons.map(async (_, d) => {
        for (const ks of names) {
          for (const k of keys) {
            for (let attempt = 0; attempt < 20; attempt++) {
              const r = await reader.get(-1, d, ks, k);
              if (r.status === 200 || r.status === 404) break;
              await sleep(250);
            }
          }
        }
      }),
    );
    await reader.stop();
    final.diagnostics = await diagnostics(db, daemons);
    phase("every key read through every daemon");

    const run: SavedRun = {
      format: 1,
      profile: o.profile,
      seed: o.seed,
      options: { seconds: o.seconds, clients: o.clients, keys: keys.length, daemons: n },
      keyspaces: specs.map((k) => ({ name: k.name, strategy: k.strategy, synchronous: k.synchronous })),
      writes: history.writes,
      reads: history.reads,
      faults: history.faults,
      unexpected: history.unexpected,
      final,
    };
    const violations = checkRun(run);
    const acked = history.writes.filter((w) => w.acked).length;
    const refused = history.writes.filter(
      (w) => typeof w.status === "number" && w.status >= 400 && w.status < 500,
    );
    return {
      ok: violations.length === 0,
      violations,
      run,
      operations: history.operations,
      writes: { acked, refused: refused.length, unknown: history.writes.length - acked - refused.length },
      reads: history.reads.filter((r) => r.client >= 0).length,
      statuses: history.statusCounts(),
      cache: history.cacheCounts(),
      divergedBeforeCheck: checkCache(final.rows, final.cacheBeforeCheck).length,
    };
  } catch (err) {
    say(`chaos: the run itself failed: ${(err as Error).stack ?? String(err)}`);
    daemons.forEach((d, i) => say(`daemon d${i} output:\n${d.output()}`));
    throw err;
  } finally {
    await db?.end().catch(() => {});
    await Promise.all(daemons.map((d) => d.cleanup()));
    await redis.cleanup();
    if (!o.postgres) await postgres.cleanup();
  }
}

let databases = 0;

/** A database of the run's own on the server, so one server can hold several runs; its URL. */
async function freshDatabase(serverUrl: string): Promise<string> {
  const name = `chaos_${process.pid}_${++databases}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Each daemon's /readyz and PostgreSQL's sessions by state: what to look at when a daemon answers badly. */
async function diagnostics(db: pg.Client, daemons: ChildDaemon[]): Promise<string[]> {
  const out: string[] = [];
  for (const [i, d] of daemons.entries()) {
    try {
      const r = await request(`${d.url}/readyz`, { headersTimeout: 5000, bodyTimeout: 5000 });
      out.push(`d${i} /readyz ${r.statusCode} ${await r.body.text()}`);
    } catch (err) {
      out.push(`d${i} /readyz failed: ${String(err)}`);
    }
  }
  const s = await db.query(
    `select state, coalesce(wait_event, '-') as wait, count(*)::int as n,
       round(max(extract(epoch from now() - xact_start)) * 1000)::int as oldest_xact_ms
     from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
     group by 1, 2 order by 1, 2`,
  );
  for (const row of s.rows as { state: string; wait: string; n: number; oldest_xact_ms: number | null }[])
    out.push(
      `postgres sessions ${row.state} (${row.wait}): ${row.n}, oldest transaction ${row.oldest_xact_ms ?? "-"} ms`,
    );
  return out;
}

/** Whether a transaction is still in the deferred trigger's sleep. */
async function sleeping(db: pg.Client): Promise<boolean> {
  const r = await db.query(
    `select count(*)::int as n from pg_stat_activity where wait_event = 'PgSleep' and datname = current_database()`,
  );
  return (r.rows[0] as { n: number }).n > 0;
}

/** What PostgreSQL and the cache hold, with one full consistency check of every keyspace in between. */
async function finalState(
  db: pg.Client,
  redisUrl: string,
  daemon: string,
  keyspaces: string[],
  keys: string[],
): Promise<FinalState> {
  const ksOf = new Map(keyspaces.map((ks) => [tableOf(ks), ks]));
  const rows: StoredRecord[] = [];
  for (const ks of keyspaces) {
    const r = await db.query(`select key, value, version from ${tableOf(ks)}`);
    for (const x of r.rows as { key: string; value: Written; version: string }[])
      rows.push({ ks, key: x.key, value: x.value, version: Number(x.version) });
  }
  const c = await db.query(`select tbl, key, value, version from ${COMMITS} order by id`);
  const commits = (c.rows as { tbl: string; key: string; value: Written; version: string }[]).map((x) => ({
    ks: ksOf.get(x.tbl)!,
    key: x.key,
    value: x.value,
    version: Number(x.version),
  }));
  const cache = new RedisCache({
    url: redisUrl,
    prefix: "chaos",
    maxEntries: 1,
    timeoutMs: 2000,
    breaker: { failures: 1000, cooldownMs: 1000 },
    trustLeaseMs: 1500,
  });
  try {
    const cacheBeforeCheck = await cached(cache, keyspaces, keys);
    const checks: Record<string, unknown>[] = [];
    for (const ks of keyspaces) {
      checks.push(JSON.parse(await retry(() => post(daemon, `/v1/keyspaces/${ks}/check`, '{"full": true}'))));
    }
    return { rows, commits, cacheBeforeCheck, cache: await cached(cache, keyspaces, keys), checks };
  } finally {
    await cache.close();
  }
}

async function cached(cache: RedisCache, keyspaces: string[], keys: string[]): Promise<CachedRecord[]> {
  const out: CachedRecord[] = [];
  for (const ks of keyspaces) {
    const got = await retry(() => cache.getMany(ks, keys));
    keys.forEach((key, i) => {
      const e = got[i];
      if (!e) return;
      out.push({
        ks,
        key,
        kind: e.kind,
        version: e.version,
        value: e.kind === "value" ? (JSON.parse(e.value ?? "null") as Written) : undefined,
      });
    });
  }
  return out;
}

async function post(base: string, path: string, body?: string): Promise<string> {
  const r = await request(`${base}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`POST ${path}: ${r.statusCode} ${text}`);
  return text;
}

async function retry<T>(fn: () => Promise<T>, ms = 30_000): Promise<T> {
  let last: unknown;
  let result: T | undefined;
  await until(
    "a call after the faults were healed",
    async () => {
      try {
        result = await fn();
        return true;
      } catch (err) {
        last = err;
        return false;
      }
    },
    ms,
  ).catch(() => {
    throw last;
  });
  return result as T;
}
