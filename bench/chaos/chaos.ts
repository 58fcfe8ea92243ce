/**
 * A chaos run: mixed reads and writes over every writable strategy from many clients while Redis,
 * PostgreSQL and the daemon are killed, stopped, frozen and restarted at random; then every fault is
 * healed, write-behind is flushed, one full consistency check runs per keyspace, and the invariants of
 * invariants.ts are checked against what the clients saw and what the backends hold.
 */
import pg from "pg";
import { request } from "undici";
import { RedisCache } from "../../src/cache/redis.js";
import type { CacheEntry } from "../../src/cache/adapter.js";
import { startPrivatePostgres } from "../../test/support/pg-server.js";
import { FAULTS, Monkey, type Fault } from "./faults.js";
import { History, id, type Written } from "./history.js";
import { checkCache, checkReads, checkStore, type Row, type Violation } from "./invariants.js";
import { ChildDaemon, DurableRedis, freePort, until } from "./processes.js";
import { Workload } from "./workload.js";

export interface ChaosOptions {
  seconds: number;
  clients: number;
  keysPerKeyspace: number;
  seed: number;
  faults?: readonly Fault[];
  /** where the built daemon is */
  entry?: string;
  say?: (line: string) => void;
}

export interface ChaosReport {
  ok: boolean;
  violations: Violation[];
  faults: { at: number; fault: Fault; downMs: number }[];
  writes: { acked: number; refused: number; unknown: number };
  reads: number;
  statuses: Record<string, number>;
  cache: Record<string, number>;
  checks: Record<string, unknown>[];
}

const KEYSPACES = {
  "cache-aside": "strategy: cache-aside",
  "wt-strict": "strategy: write-through, consistency: strict",
  "wt-eventual": "strategy: write-through, consistency: eventual",
  "write-around": "strategy: write-around",
  "write-behind": "strategy: write-behind, write_behind: { flush_interval: 200ms, batch_size: 200 }",
};

/** mulberry32: a small seeded generator, so a run can be repeated. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const table = (ks: string) => `chaos_${ks.replace(/-/g, "_")}`;

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const say = o.say ?? ((l: string) => process.stdout.write(`${l}\n`));
  const random = seeded(o.seed);
  const keyspaces = Object.keys(KEYSPACES);
  const keys = Array.from({ length: o.keysPerKeyspace }, (_, i) => (i % 7 === 3 ? `k/${i} é` : `k${i}`));
  say(
    `chaos: ${o.seconds}s, ${o.clients} clients, ${keyspaces.length} keyspaces x ${keys.length} keys, seed ${o.seed}`,
  );

  const [redis, postgres, port] = await Promise.all([
    DurableRedis.start(),
    startPrivatePostgres(),
    freePort(),
  ]);
  const yaml = `
server: { host: 127.0.0.1, port: ${port}, request_deadline: 3s, shutdown_timeout: 5s }
cache: { url: ${redis.url}, prefix: chaos, timeout: 300ms, breaker: { failures: 5, cooldown: 300ms } }
store: { url: ${postgres.url}, timeout: 2s, pool: 10, breaker: { failures: 5, cooldown: 300ms } }
checker: { enabled: false, repair: invalidate }
log: { level: warn }
keyspaces:
${keyspaces.map((ks) => `  ${ks}: { ${KEYSPACES[ks as keyof typeof KEYSPACES]}, table: ${table(ks)}, ttl: 1m }`).join("\n")}
`;
  const daemon = new ChildDaemon(port, yaml, o.entry);
  const history = new History();
  let db: pg.Client | undefined;
  let cache: RedisCache | undefined;
  try {
    await daemon.start();
    const t0 = performance.now();
    const workload = new Workload({ base: daemon.url, keyspaces, keys, clients: o.clients, random }, history);
    const monkey = new Monkey({ redis, postgres, daemon }, random, say, t0, o.faults ?? FAULTS);
    say("faults:");
    workload.start();
    monkey.start();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    await monkey.stop();
    // A moment of calm with traffic, so breakers close and repairs finish, then the clients stop.
    await new Promise((r) => setTimeout(r, 1000));
    await workload.stop();

    for (const ks of keyspaces) await retry(() => post(daemon.url, `/v1/keyspaces/${ks}/flush`));
    db = new pg.Client({ connectionString: postgres.url });
    await db.connect();
    const rows = new Map<string, Map<string, Row>>();
    for (const ks of keyspaces) {
      const r = await db.query(`select key, value, version from ${table(ks)}`);
      rows.set(
        ks,
        new Map(
          r.rows.map((x: { key: string; value: Written; version: string }) => [
            x.key,
            { value: x.value, version: Number(x.version) },
          ]),
        ),
      );
    }
    const checks: Record<string, unknown>[] = [];
    for (const ks of keyspaces) {
      checks.push(
        JSON.parse(await retry(() => post(daemon.url, `/v1/keyspaces/${ks}/check`, '{"full": true}'))),
      );
    }
    cache = new RedisCache({ url: redis.url, prefix: "chaos", maxEntries: 1, timeoutMs: 2000 });
    const entries = new Map<string, Map<string, CacheEntry | null>>();
    for (const ks of keyspaces) {
      const got = await cache.getMany(ks, keys);
      entries.set(ks, new Map(keys.map((k, i) => [k, got[i] ?? null])));
    }

    const violations = [
      ...history.unexpected.map((d): Violation => ({ kind: "bad_answer", detail: d })),
      ...checkStore(history, rows),
      ...checkReads(history),
      ...checkCache(rows, entries),
    ];
    const acked = history.writes.filter((w) => w.acked).length;
    const unknown = history.writes.filter((w) => w.status === "error").length;
    const report: ChaosReport = {
      ok: violations.length === 0,
      violations,
      faults: monkey.done,
      writes: { acked, refused: history.writes.length - acked - unknown, unknown },
      reads: history.reads.length,
      statuses: history.statusCounts(),
      cache: history.cacheCounts(),
      checks,
    };
    print(report, say);
    return report;
  } catch (err) {
    say(
      `chaos: the run itself failed: ${(err as Error).stack ?? String(err)}\ndaemon output:\n${daemon.output()}`,
    );
    throw err;
  } finally {
    await cache?.close();
    await db?.end().catch(() => {});
    await daemon.cleanup();
    await redis.cleanup();
    await postgres.cleanup();
  }
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

function print(r: ChaosReport, say: (l: string) => void): void {
  const kinds: Record<string, number> = {};
  for (const f of r.faults) kinds[f.fault] = (kinds[f.fault] ?? 0) + 1;
  say(`did: ${r.faults.length} faults ${JSON.stringify(kinds)}`);
  say(
    `     ${r.writes.acked + r.writes.refused + r.writes.unknown} writes (${r.writes.acked} acknowledged, ` +
      `${r.writes.refused} refused, ${r.writes.unknown} without an answer), ${r.reads} reads`,
  );
  say(`     statuses ${JSON.stringify(r.statuses)}; X-Cache ${JSON.stringify(r.cache)}`);
  for (const c of r.checks) {
    say(
      `     full check ${String(c.keyspace)}: sampled ${String(c.sampled)}, inconsistent ${String(c.inconsistent)} ${JSON.stringify(c.by_kind ?? {})}, repaired ${String(c.repaired)}`,
    );
  }
  if (r.ok) {
    say(
      "found: no violation (no acknowledged write lost, no stale read, no made-up value, cache equal to PostgreSQL)",
    );
    return;
  }
  const byKind: Record<string, number> = {};
  for (const v of r.violations) byKind[v.kind] = (byKind[v.kind] ?? 0) + 1;
  say(`found: ${r.violations.length} violations ${JSON.stringify(byKind)}`);
  for (const v of r.violations.slice(0, 25)) say(`  ${v.kind}: ${v.detail}`);
  if (r.violations.length > 25) say(`  ... and ${r.violations.length - 25} more`);
}

export { id };
