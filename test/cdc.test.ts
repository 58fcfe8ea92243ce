/**
 * Change data capture against a private PostgreSQL with wal_level=logical: changes made with plain SQL,
 * behind sidecache's back, reach what two daemons sharing one Redis serve, within the lag. Each test
 * prints how long a reader waited to see the change.
 */
import { readFileSync } from "node:fs";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import { parseLsn } from "../src/cdc/wire.js";
import {
  cdcYaml,
  metric,
  RedisPeek,
  slotState,
  sqlClient,
  startLogicalPostgres,
  waitFor,
} from "./support/cdc.js";
import { uniqueTag } from "./support/daemon.js";
import { call, type Reply } from "./support/http.js";
import type { PrivatePostgres } from "./support/pg-server.js";

const tag = uniqueTag();
const T = {
  users: `${tag}_users`,
  events: `${tag}_events`,
  people: `${tag}_people`,
  queue: `${tag}_queue`,
  near: `${tag}_near`,
};
/** the second drop of a dropped keyspace comes this long after the first */
const REDROP_MS = 300;
let server: PrivatePostgres;
let db: pg.Client;
let peek: RedisPeek;
let a: Daemon;
let b: Daemon;

/** The mapped-table SQL of docs/cdc.md, for a table `accounts` keyed by `id` with version `ver`. */
function mappedSetup(table: string): string {
  const doc = readFileSync(new URL("../docs/cdc.md", import.meta.url), "utf8");
  const m = /<!-- mapped-table-sql -->\s*```sql\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error("docs/cdc.md lost its mapped-table SQL block");
  return m[1]!.replace(/\baccounts\b/g, table);
}

/** The keyspaces of the daemons under test: every strategy that reads, write-behind, a near cache, a mapped table. */
const KEYSPACES: Record<string, string[]> = {
  users: ["strategy: cache-aside", `table: ${T.users}`],
  events: ["strategy: read-through", `table: ${T.events}`],
  queue: ["strategy: write-behind", `table: ${T.queue}`, "write_behind:", "  flush_interval: 100ms"],
  near: ["strategy: cache-aside", `table: ${T.near}`, "near_cache:", "  mode: coherent", "  ttl: 5m"],
  people: [
    "strategy: cache-aside",
    `table: ${T.people}`,
    "key_column: id",
    "columns: [id, name]",
    "version_column: ver",
  ],
};

async function startPair(): Promise<[Daemon, Daemon]> {
  const yaml = cdcYaml({
    storeUrl: server.url,
    prefix: tag,
    slot: `${tag}_slot`,
    publication: `${tag}_pub`,
    keyspaces: KEYSPACES,
  });
  const config = parseConfig(yaml, "cdc.yaml");
  const options = { log: silentLogger, cdc: { pollMs: 100, redropDelayMs: REDROP_MS } };
  const first = await Daemon.start(config, options);
  const second = await Daemon.start(config, options);
  // the new slot's drop of every keyspace happens twice: let the second one pass
  await new Promise((r) => setTimeout(r, REDROP_MS + 200));
  return [first, second];
}

const get = (d: Daemon, ks: string, key: string) =>
  call(d.url, "GET", `/v1/kv/${ks}/${encodeURIComponent(key)}`);
const etag = (r: Reply) => Number(String(r.headers.etag ?? "0").replaceAll('"', ""));

/** Polls both daemons until each answers as `ok` says; the slower of the two waits, in ms. */
async function seenByBoth(what: string, ks: string, key: string, ok: (r: Reply) => boolean): Promise<number> {
  const waits = await Promise.all(
    [a, b].map((d) => waitFor(what, async () => ((r) => (ok(r) ? r : undefined))(await get(d, ks, key)))),
  );
  const ms = Math.max(...waits.map((w) => w.ms));
  console.log(`${what}: seen by both daemons after ${ms.toFixed(1)} ms`);
  return ms;
}

async function cached(ks: string, key: string): Promise<Reply> {
  await get(a, ks, key);
  const hit = await get(b, ks, key);
  expect(hit.headers["x-cache"]).toBe("HIT");
  return hit;
}

beforeAll(async () => {
  server = await startLogicalPostgres();
  db = await sqlClient(server.url);
  peek = new RedisPeek(tag);
  await db.query(`create table ${T.people} (id bigint primary key, name text, ver bigint)`);
  await db.query(mappedSetup(T.people));
  [a, b] = await startPair();
});

afterAll(async () => {
  // the private server goes whatever happens to the daemons' stop
  await Promise.race([Promise.allSettled([a?.stop(), b?.stop()]), new Promise((r) => setTimeout(r, 20_000))]);
  await db?.end();
  await peek?.cleanup();
  await server?.cleanup();
});

describe("change data capture", () => {
  it("one daemon reads the slot, the other waits for the lease", async () => {
    expect(a.cdc?.reading).toBe(true);
    expect(b.cdc?.reading).toBe(false);
    expect(metric((await a.exposition()).body, "sidecache_cdc_reader")).toBe(1);
    expect(metric((await b.exposition()).body, "sidecache_cdc_reader")).toBe(0);
  });

  it("an UPDATE that leaves the version alone replaces the cached value", async () => {
    await call(a.url, "PUT", "/v1/kv/users/u1", { name: "before" });
    const before = await cached("users", "u1");
    await db.query(`update ${T.users} set value = '{"name":"after"}' where key = 'u1'`);
    const row = await db.query(`select version::text as v from ${T.users} where key = 'u1'`);
    expect(Number(row.rows[0].v)).toBeGreaterThan(etag(before));
    await seenByBoth("UPDATE without a version", "users", "u1", (r) => r.text.includes("after"));
    const again = await get(b, "users", "u1");
    expect(etag(again)).toBe(Number(row.rows[0].v));
    expect(again.json()).toEqual({ name: "after" });
  });

  it("an INSERT of a key cached as absent is seen", async () => {
    await get(a, "users", "u2");
    const absent = await get(b, "users", "u2");
    expect(absent.status).toBe(404);
    expect(absent.headers["x-cache"]).toBe("HIT");
    // no version given: the trigger gives one
    await db.query(`insert into ${T.users} (key, value) values ('u2', '{"name":"new"}')`);
    await seenByBoth("INSERT of an absent key", "users", "u2", (r) => r.status === 200);
    expect((await get(a, "users", "u2")).json()).toEqual({ name: "new" });
  });

  it("a DELETE is seen, and the deleted version is kept", async () => {
    await call(a.url, "PUT", "/v1/kv/users/u3", { name: "doomed" });
    const before = await cached("users", "u3");
    await db.query(`delete from ${T.users} where key = 'u3'`);
    await seenByBoth("DELETE", "users", "u3", (r) => r.status === 404);
    const tomb = await db.query(
      `select version::text as v from sidecache_tombstones where tbl = $1 and key = 'u3'`,
      [T.users],
    );
    expect(Number(tomb.rows[0].v)).toBe(etag(before) + 1);
    expect(await peek.entry("users", "u3")).toMatchObject({ kind: "tombstone", version: etag(before) + 1 });
    // created again through sidecache: above the delete
    const put = await call(b.url, "PUT", "/v1/kv/users/u3", { name: "back" });
    expect((put.json() as { version: number }).version).toBeGreaterThan(etag(before) + 1);
    await seenByBoth("re-created after DELETE", "users", "u3", (r) => r.text.includes("back"));
  });

  it("TRUNCATE drops the keyspace's entries (twice)", async () => {
    for (const k of ["e1", "e2", "e3"]) await call(a.url, "PUT", `/v1/kv/events/${k}`, { k });
    for (const k of ["e1", "e2", "e3"]) await cached("events", k);
    await call(a.url, "PUT", "/v1/kv/users/kept", { kept: true });
    await cached("users", "kept");
    await db.query(`truncate ${T.events}`);
    for (const k of ["e1", "e2", "e3"])
      await seenByBoth(`TRUNCATE (${k})`, "events", k, (r) => r.status === 404);
    expect((await get(b, "users", "kept")).headers["x-cache"]).toBe("HIT");
    // Counted once the drop's SCAN went over the whole of Redis, which its entries were unlinked on the way
    // through: a shared Redis with many other keys makes that the later of the two.
    const drops = () =>
      a
        .exposition()
        .then((e) => metric(e.body, "sidecache_cdc_keyspace_drops_total", { reason: "truncate" }));
    await waitFor("the drop to be counted", async () => ((await drops()) > 0 ? true : undefined));
    expect(await drops()).toBe(1);
  });

  it("a primary-key change drops both keys", async () => {
    await call(a.url, "PUT", "/v1/kv/users/pk-old", { who: "moving" });
    await cached("users", "pk-old");
    await get(a, "users", "pk-new");
    expect((await get(b, "users", "pk-new")).headers["x-cache"]).toBe("HIT");
    await db.query(`update ${T.users} set key = 'pk-new' where key = 'pk-old'`);
    await Promise.all([
      seenByBoth("PK change, old key", "users", "pk-old", (r) => r.status === 404),
      seenByBoth("PK change, new key", "users", "pk-new", (r) => r.status === 200),
    ]);
    expect((await get(a, "users", "pk-new")).json()).toEqual({ who: "moving" });
  });

  it("a TOASTed value the change did not touch is never taken from the stream: readers get the whole row", async () => {
    // random text does not compress: stored out of line (TOAST)
    const big = Array.from({ length: 200_000 / 16 }, () => Math.random().toString(36).slice(2, 18)).join("");
    await call(a.url, "PUT", "/v1/kv/users/big", { big });
    const before = await cached("users", "big");
    const stored = await db.query(`select pg_column_size(value) as size from ${T.users} where key = 'big'`);
    expect(Number(stored.rows[0].size)).toBeGreaterThan(100_000);
    await db.query(`update ${T.users} set updated_at = now() where key = 'big'`);
    await seenByBoth("UPDATE beside a TOASTed value", "users", "big", (r) => etag(r) > etag(before));
    for (const d of [a, b]) expect((await get(d, "users", "big")).json()).toEqual({ big });
  });

  it("a mapped table with the documented trigger: updates, inserts and deletes by id", async () => {
    await db.query(`insert into ${T.people} (id, name) values (1, 'ada')`);
    await seenByBoth("mapped INSERT", "people", "1", (r) => r.status === 200);
    await cached("people", "1");
    await db.query(`update ${T.people} set name = 'grace' where id = 1`);
    await seenByBoth("mapped UPDATE without a version", "people", "1", (r) => r.text.includes("grace"));
    await cached("people", "1");
    await db.query(`delete from ${T.people} where id = 1`);
    await seenByBoth("mapped DELETE", "people", "1", (r) => r.status === 404);
  });

  it("the trigger finds a key's tombstone by index, not by reading every tombstone", async () => {
    // regression: compared with the key column's "C" collation, the lookup could not use the index
    await db.query(
      `insert into sidecache_tombstones (tbl, key, version, deleted_at)
       select $1, 'gone-' || g, 1, now() from generate_series(1, 5000) as g on conflict do nothing`,
      [T.users],
    );
    await db.query(`analyze sidecache_tombstones`);
    const scans = async () => {
      await db.query(`select pg_stat_force_next_flush()`);
      await db.query(`select pg_stat_clear_snapshot()`);
      const r = await db.query(
        `select seq_scan::int as seq, coalesce(idx_scan, 0)::int as idx from pg_stat_user_tables
         where relname = 'sidecache_tombstones'`,
      );
      return r.rows[0] as { seq: number; idx: number };
    };
    const before = await scans();
    for (let i = 0; i < 20; i++) {
      await db.query(`insert into ${T.users} (key, value) values ($1, '{}')`, [`idx-${i}`]);
    }
    const after = await scans();
    expect(after.seq - before.seq).toBe(0);
    expect(after.idx - before.idx).toBeGreaterThanOrEqual(20);
  });

  it("sidecache's own writes pass the trigger unchanged", async () => {
    const put = await call(b.url, "PUT", "/v1/kv/users/own", { n: 1 });
    const version = (put.json() as { version: number }).version;
    const row = await db.query(`select version::text as v from ${T.users} where key = 'own'`);
    expect(Number(row.rows[0].v)).toBe(version);
    await cached("users", "own");
    expect(etag(await get(a, "users", "own"))).toBe(version);
    expect((await call(a.url, "DELETE", "/v1/kv/users/own")).status).toBe(204);
    expect((await get(b, "users", "own")).status).toBe(404);
  });

  it("near caches drop what the stream invalidates, in every daemon", async () => {
    await call(a.url, "PUT", "/v1/kv/near/n1", { v: 1 });
    // copied into each daemon's memory, then answered from there
    for (const d of [a, b]) {
      await waitFor("a near-cache hit", async () => {
        const r = await get(d, "near", "n1");
        return r.headers["x-cache-tier"] === "L1" ? r : undefined;
      });
    }
    await db.query(`update ${T.near} set value = '{"v":2}' where key = 'n1'`);
    await seenByBoth("UPDATE of a near-cached key", "near", "n1", (r) => r.text.includes("2"));
  });

  it("write-behind flushes pass the trigger, deletes included, and outside changes reach its cache", async () => {
    const put = await call(a.url, "PUT", "/v1/kv/queue/q1", { n: 1 });
    const v1 = (put.json() as { version: number }).version;
    await call(a.url, "PUT", "/v1/kv/queue/q2", { n: 1 });
    await call(a.url, "POST", "/v1/keyspaces/queue/flush");
    const del = await call(b.url, "DELETE", "/v1/kv/queue/q2");
    const deleted = (del.json() as { version: number }).version;
    await call(b.url, "POST", "/v1/keyspaces/queue/flush");
    const rows = await db.query(`select key, version::text as v from ${T.queue} order by key`);
    expect(rows.rows).toEqual([{ key: "q1", v: String(v1) }]);
    const tomb = await db.query(
      `select version::text as v from sidecache_tombstones where tbl = $1 and key = 'q2'`,
      [T.queue],
    );
    expect(Number(tomb.rows[0].v)).toBe(deleted);
    expect((await get(a, "queue", "q2")).status).toBe(404);
    await db.query(`update ${T.queue} set value = '{"n":9}' where key = 'q1'`);
    await seenByBoth("outside UPDATE of a write-behind key", "queue", "q1", (r) => r.text.includes("9"));
  });

  it("subscribers (near caches) get every invalidation, and the slot is confirmed only once they return", async () => {
    const reader = a.cdc!.reading ? a : b;
    const got: unknown[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const unsubscribe = reader.cdc!.subscribe(async (batch) => {
      got.push(...batch);
      if (batch.some((i) => "key" in i && i.key === "n1")) await held;
    });
    try {
      await db.query(`insert into ${T.users} (key, value) values ('n1', '{}')`);
      const lsn = String((await db.query(`select pg_current_wal_lsn()::text as l`)).rows[0].l);
      const version = Number(
        (await db.query(`select version::text as v from ${T.users} where key = 'n1'`)).rows[0].v,
      );
      await waitFor("the subscriber called", async () => (got.length > 0 ? true : undefined));
      expect(got).toContainEqual({ keyspace: "users", key: "n1", version });
      await new Promise((r) => setTimeout(r, 500));
      const confirmedWhileHeld = await slotState(db, `${tag}_slot`);
      expect(parseLsn(confirmedWhileHeld!.confirmed)).toBeLessThan(parseLsn(lsn));
      release();
      await waitFor("the slot confirmed past the transaction", async () => {
        const s = await slotState(db, `${tag}_slot`);
        return parseLsn(s!.confirmed) >= parseLsn(lsn) ? true : undefined;
      });
    } finally {
      release();
      unsubscribe();
    }
  });

  it("a keyspace added by a reload joins the publication and gets the trigger", async () => {
    const extra = `${tag}_extra`;
    const next = parseConfig(
      cdcYaml({
        storeUrl: server.url,
        prefix: tag,
        slot: `${tag}_slot`,
        publication: `${tag}_pub`,
        keyspaces: {
          ...KEYSPACES,
          extra: ["strategy: cache-aside", `table: ${extra}`],
        },
      }),
      "cdc.yaml",
    );
    for (const d of [a, b]) expect((await d.reload(next)).added).toEqual(["extra"]);
    await call(a.url, "PUT", "/v1/kv/extra/x", { n: 1 });
    await cached("extra", "x");
    await db.query(`update ${extra} set value = '{"n":2}' where key = 'x'`);
    await seenByBoth("UPDATE on a table added by a reload", "extra", "x", (r) => r.text.includes("2"));
  });

  it("commit-to-invalidation lag is measured", async () => {
    const text = (await a.exposition()).body;
    expect(metric(text, "sidecache_cdc_lag_seconds_count")).toBeGreaterThan(5);
    expect(metric(text, "sidecache_cdc_invalidations_total", { keyspace: "users" })).toBeGreaterThan(5);
    await waitFor("retained WAL gauge", async () =>
      /^sidecache_cdc_retained_wal_bytes \d/m.test((await b.exposition()).body) ? true : undefined,
    );
  });
});

/**
 * The race the version trigger exists for: a read loads the row, an outside UPDATE commits and is
 * invalidated, then the read fills. The load is held for real: a row-level security policy makes the
 * daemon's SELECT wait on an advisory lock the test holds, after the SELECT took its snapshot.
 */
describe("a fill racing an outside update", () => {
  const role = `${tag}_app`;
  const table = `${tag}_race`;
  let d: Daemon;
  let lock: pg.Client;

  beforeAll(async () => {
    await db.query(`create role ${role} login replication`);
    await db.query(`grant create on database postgres to ${role}`);
    await db.query(`grant create on schema public to ${role}`);
    await db.query(`create table ${table} (key text collate "C" primary key, value jsonb not null,
      version bigint not null, updated_at timestamptz not null default now())`);
    await db.query(`alter table ${table} owner to ${role}`);
    // sidecache's shared table is its role's own in a real deployment (here the first daemons made it)
    await db.query(`alter table sidecache_tombstones owner to ${role}`);
    await db.query(`alter table sidecache_cache_repairs owner to ${role}`);
    await db.query(`do $$ declare f regprocedure; begin
      for f in select oid::regprocedure from pg_proc where proname like 'sidecache%' loop
        execute format('alter function %s owner to %I', f, '${role}');
      end loop; end $$`);
    await db.query(`create or replace function ${tag}_gate() returns boolean language plpgsql volatile as $$
      begin perform pg_advisory_lock_shared(4242); perform pg_advisory_unlock_shared(4242); return true; end $$`);
    await db.query(`alter table ${table} enable row level security`);
    await db.query(`alter table ${table} force row level security`);
    await db.query(`create policy gate on ${table} using (${tag}_gate())`);
    const url = server.url.replace("postgres@", `${role}@`);
    const yaml = cdcYaml({
      storeUrl: url,
      prefix: `${tag}-race`,
      slot: `${tag}_race_slot`,
      publication: `${tag}_race_pub`,
      keyspaces: { race: ["strategy: cache-aside", `table: ${table}`] },
    }).replace("timeout: 2s", "timeout: 5s");
    d = await Daemon.start(parseConfig(yaml, "race.yaml"), { log: silentLogger });
    lock = await sqlClient(server.url);
  });

  afterAll(async () => {
    await d?.stop();
    await lock?.end();
    const race = new RedisPeek(`${tag}-race`);
    await race.cleanup();
  });

  it("never leaves the older value cached", async () => {
    const racePeek = new RedisPeek(`${tag}-race`);
    try {
      const put = await call(d.url, "PUT", "/v1/kv/race/k", { v: "old" });
      const v1 = (put.json() as { version: number }).version;
      await lock.query(`select pg_advisory_lock(4242)`);
      const reading = call(d.url, "GET", "/v1/kv/race/k");
      // the daemon's load has its snapshot and waits inside the policy
      await waitFor("the load held", async () => {
        const r = await db.query(
          `select 1 from pg_stat_activity where usename = $1 and wait_event = 'advisory' and query ilike 'select%'`,
          [role],
        );
        return r.rows.length > 0 ? true : undefined;
      });
      await db.query(`update ${table} set value = '{"v":"new"}' where key = 'k'`);
      const v2 = Number(
        (await db.query(`select version::text as v from ${table} where key = 'k'`)).rows[0].v,
      );
      expect(v2).toBeGreaterThan(v1);
      const invalidated = await waitFor("the update's tombstone", async () => {
        const e = await racePeek.entry("race", "k");
        return e?.kind === "tombstone" && e.version === v2 ? e : undefined;
      });
      console.log(`outside update invalidated after ${invalidated.ms.toFixed(1)} ms while the fill was held`);
      await lock.query(`select pg_advisory_unlock(4242)`);
      const held = await reading;
      // that read began before the update and answers from its snapshot; its fill must be refused
      expect(held.json()).toEqual({ v: "old" });
      expect(await racePeek.entry("race", "k")).toMatchObject({ kind: "tombstone", version: v2 });
      const after = await call(d.url, "GET", "/v1/kv/race/k");
      expect(after.json()).toEqual({ v: "new" });
      const hit = await call(d.url, "GET", "/v1/kv/race/k");
      expect(hit.headers["x-cache"]).toBe("HIT");
      expect(hit.json()).toEqual({ v: "new" });
    } finally {
      racePeek.redis.disconnect();
    }
  });
});

describe("the checker with change data capture", () => {
  it("reports the share of changes the cache reflected within the lag, beside its ratio", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `w${i}`);
    for (const k of keys) await db.query(`insert into ${T.users} (key, value) values ($1, '{"n":1}')`, [k]);
    for (const k of keys) await cached("users", k);
    await db.query(`update ${T.users} set value = '{"n":2}' where key = any($1)`, [keys]);
    const clean = (await call(a.url, "POST", "/v1/keyspaces/users/check", { full: true })).json() as {
      ratio: number;
      consistent_within_lag: { fraction: number; lag_ms: number; changes: number; within: number };
    };
    console.log("with the stream applied:", JSON.stringify(clean.consistent_within_lag));
    expect(clean.consistent_within_lag.lag_ms).toBe(1000);
    expect(clean.consistent_within_lag.changes).toBeGreaterThanOrEqual(30);
    expect(clean.consistent_within_lag.fraction).toBe(1);

    // an invalidation that never came: the cache keeps claiming the state before a change
    await db.query(`update ${T.users} set value = '{"n":3}' where key = 'w0'`);
    await seenByBoth("the change before the planted entry", "users", "w0", (r) => r.text.includes("3"));
    await a.cache.delete("users", "w0");
    const stale = { kind: "value" as const, version: 1, value: '{"n":2}', freshUntil: Date.now() + 600_000 };
    expect(await a.cache.setIfNewer("users", "w0", stale, 600_000)).toBe(true);
    const missed = (
      await call(b.url, "POST", "/v1/keyspaces/users/check", { full: true })
    ).json() as typeof clean;
    console.log("with one invalidation missed:", JSON.stringify(missed.consistent_within_lag));
    expect(missed.ratio).toBeGreaterThan(0);
    expect(missed.consistent_within_lag.within).toBe(missed.consistent_within_lag.changes - 1);
    expect(missed.consistent_within_lag.fraction).toBeLessThan(1);
  });
});

// Last: losing the slot drops every keyspace's entries, twice (the second time a few hundred ms later).
describe("a lost slot", () => {
  it("a dropped slot drops every keyspace's entries, is counted, and a new slot is streamed", async () => {
    await call(a.url, "PUT", "/v1/kv/users/s1", { n: 1 });
    await cached("users", "s1");
    const slot = `${tag}_slot`;
    for (let tries = 0; ; tries++) {
      try {
        await db.query(
          `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null`,
          [slot],
        );
        await db.query(`select pg_drop_replication_slot($1)`, [slot]);
        break;
      } catch (err) {
        if (tries > 50) throw err;
      }
    }
    const dropped = performance.now();
    await waitFor("the entry dropped", async () =>
      (await peek.entry("users", "s1")) === null ? true : undefined,
    );
    console.log(`dropped slot: entries gone after ${(performance.now() - dropped).toFixed(1)} ms`);
    const lost = metric((await a.exposition()).body, "sidecache_cdc_slot_lost_total", { reason: "dropped" });
    expect(lost).toBe(1);
    expect((await get(b, "users", "s1")).headers["x-cache"]).toBe("MISS");
    await new Promise((r) => setTimeout(r, REDROP_MS + 200)); // the second drop
    await cached("users", "s1");
    await db.query(`update ${T.users} set value = '{"n":2}' where key = 's1'`);
    await seenByBoth("UPDATE on the new slot", "users", "s1", (r) => r.text.includes("2"));
  });
});
