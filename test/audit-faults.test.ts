/**
 * The audit log while PostgreSQL connections are killed in the middle of writes (pg_terminate_backend on a
 * private server, again and again, under concurrent writers): afterwards every acknowledged write has its
 * row, with its token's name; no row names a write that was not acknowledged unless its request failed with
 * an unknown outcome (503/504); each key's row in the table is at its newest audited version. Write-behind
 * flushes killed and retried add no second row: after the final flush the rows are exactly the writes
 * acknowledged.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const tag = uniqueTag();
const TOKEN = `fault-writer-${tag}`;
const ADMIN = `fault-admin-${tag}`;
const KEYSPACES = { aside: "cache-aside", strict: "write-through", behind: "write-behind" } as const;
type Ks = keyof typeof KEYSPACES;
const KEYS = Array.from({ length: 8 }, (_, i) => `k${i}`);
const WRITERS = 6;
const RUN_MS = 3_000;

let server: PrivatePostgres;
let daemon: Daemon;
let db: pg.Client;
let redis: Redis;

beforeAll(async () => {
  server = await startPrivatePostgres();
  db = new pg.Client({ connectionString: server.url });
  await db.connect();
  redis = new Redis(REDIS_URL);
  // Writes made slow (20 ms a statement) so that the killer finds them under way.
  await db.query(`create function slow() returns trigger language plpgsql as $$
    begin perform pg_sleep(0.02); return null; end $$`);
  for (const ks of Object.keys(KEYSPACES)) {
    await db.query(`create table ${ks} ("key" text collate "C" primary key, "value" jsonb not null,
      "version" bigint not null, "updated_at" timestamptz not null default now())`);
    await db.query(
      `create trigger ${ks}_slow after insert or update on ${ks} for each statement execute function slow()`,
    );
  }
  daemon = await startDaemon(`
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${server.url}, timeout: 3s, breaker: { failures: 1000, cooldown: 100ms } }
checker: { enabled: false }
auth:
  tokens:
    - { name: faulty, token: ${TOKEN}, allow: { "*": write } }
    - { name: admin, token: ${ADMIN}, allow: { "*": admin } }
keyspaces:
  aside: { strategy: cache-aside, audit: true }
  strict: { strategy: write-through, consistency: strict, audit: true }
  behind: { strategy: write-behind, audit: true, write_behind: { flush_interval: 50ms, batch_size: 20 } }
`);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await db?.end().catch(() => {});
  await server?.cleanup();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

interface Outcomes {
  /** key@version of every acknowledged write */
  acked: Set<string>;
  /** per key, how many requests failed in a way that leaves the commit unknown */
  unknown: Map<string, number>;
  failed: number;
}

async function writer(ks: Ks, id: number, until: number, out: Outcomes): Promise<void> {
  for (let i = 0; Date.now() < until; i++) {
    const key = KEYS[(id + i) % KEYS.length]!;
    const r = await call(
      daemon.url,
      "PUT",
      `/v1/kv/${ks}/${key}`,
      { id, i },
      {
        authorization: `Bearer ${TOKEN}`,
      },
    );
    if (r.status === 200 || r.status === 202) {
      out.acked.add(`${key}@${(r.json() as { version: number }).version}`);
    } else {
      out.failed++;
      if (r.status === 503 || r.status === 504) out.unknown.set(key, (out.unknown.get(key) ?? 0) + 1);
      else throw new Error(`unexpected ${r.status}: ${r.text}`);
    }
  }
}

/** Terminates every backend running a write (or a flush) right now, every few milliseconds. */
async function killer(until: number): Promise<number> {
  let killed = 0;
  while (Date.now() < until) {
    const r = await db.query(
      `select count(*)::int as n from (
         select pg_terminate_backend(pid) from pg_stat_activity
         where pid <> pg_backend_pid() and state = 'active'
           and (query like '%sidecache_locked_%' or query like '%sidecache_under_key_locks%')) as t`,
    );
    killed += r.rows[0].n as number;
    await new Promise((res) => setTimeout(res, 40 + Math.random() * 80));
  }
  return killed;
}

async function audited(ks: Ks): Promise<{ key: string; version: number; client: string | null }[]> {
  const r = await db.query(
    `select key, version::float8 as version, client from sidecache_audit where keyspace = $1`,
    [ks],
  );
  return r.rows;
}

describe("PostgreSQL connections killed in the middle of audited writes", () => {
  it("leaves the audit rows matching the acknowledged writes", async () => {
    const until = Date.now() + RUN_MS;
    const outcomes = Object.fromEntries(
      Object.keys(KEYSPACES).map((ks) => [ks, { acked: new Set(), unknown: new Map(), failed: 0 }]),
    ) as Record<Ks, Outcomes>;
    const [killed] = await Promise.all([
      killer(until),
      ...Object.keys(KEYSPACES).flatMap((ks) =>
        Array.from({ length: WRITERS }, (_, id) => writer(ks as Ks, id, until, outcomes[ks as Ks])),
      ),
    ]);
    expect(killed).toBeGreaterThan(20);
    // Writes were cut in the middle: some failed, and many were acknowledged.
    expect(outcomes.aside.failed + outcomes.strict.failed).toBeGreaterThan(0);

    // The queue's writes reach PostgreSQL, through flushes that were killed too and were retried.
    for (;;) {
      const f = await call(daemon.url, "POST", "/v1/keyspaces/behind/flush", undefined, {
        authorization: `Bearer ${ADMIN}`,
      });
      if (f.status === 200) break;
    }

    for (const ks of Object.keys(KEYSPACES) as Ks[]) {
      const { acked, unknown } = outcomes[ks];
      expect(acked.size).toBeGreaterThan(20);
      const rows = await audited(ks);
      const seen = new Set(rows.map((r) => `${r.key}@${r.version}`));
      expect(seen.size).toBe(rows.length);
      for (const r of rows) expect(r.client).toBe("faulty");
      for (const a of acked) expect(seen.has(a), `${ks} ${a} acknowledged but not audited`).toBe(true);
      const extra = new Map<string, number>();
      for (const r of rows) {
        if (!acked.has(`${r.key}@${r.version}`)) extra.set(r.key, (extra.get(r.key) ?? 0) + 1);
      }
      if (ks === "behind") {
        expect([...extra]).toEqual([]);
      } else {
        for (const [key, n] of extra) expect(n, `${ks} ${key}`).toBeLessThanOrEqual(unknown.get(key) ?? 0);
      }
      // Each key's row holds the newest audited write.
      const stored = await db.query(`select key, version::float8 as v from ${ks}`);
      const newest = new Map<string, number>();
      for (const r of rows) newest.set(r.key, Math.max(newest.get(r.key) ?? 0, r.version));
      expect(new Map(stored.rows.map((r) => [r.key as string, r.v as number]))).toEqual(newest);
    }
  }, 60_000);
});
