/**
 * The read path against real Redis and PostgreSQL: one PostgreSQL read for a stampede of misses, a fill
 * racing a write, negative caching, TTL expiry and read-through refresh ahead.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import type { CacheEntry } from "../src/cache/adapter.js";
import type { Daemon } from "../src/daemon.js";
import type { StoredRow, TableStore } from "../src/store/adapter.js";
import type { StrategyContext } from "../src/strategies/strategy.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const TABLES = ["stampede", "fleet", "aside", "wts", "wte", "around", "neg", "ttl", "rt"];
let db: pg.Client;
let redis: Redis;
const daemons: Daemon[] = [];

function yaml(extra = ""): string {
  return `
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: "${PG_URL}?application_name=${tag}" }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte }
  around: { strategy: write-around, table: ${tag}_around }
${extra}`;
}

async function start(extra = ""): Promise<Daemon> {
  const d = await startDaemon(yaml(extra));
  daemons.push(d);
  return d;
}

async function cached(ks: string, key: string): Promise<CacheEntry | null> {
  const text = await redis.get(`${tag}:kv:{${ks}}:${key}`);
  return text === null ? null : decodeEntry(text);
}

async function metric(base: string, name: string, ks: string): Promise<number> {
  const text = (await call(base, "GET", "/metrics")).text;
  const m = new RegExp(`^${name}\\{keyspace="${ks}"\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** seq_scan + idx_scan of a table as PostgreSQL counts them. */
async function scans(table: string): Promise<number> {
  await db.query("select pg_stat_clear_snapshot()");
  const r = await db.query(
    `select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) as n from pg_stat_user_tables where relname = $1`,
    [table],
  );
  return Number(r.rows[0]?.n ?? 0);
}

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The store a keyspace's strategy reads, so a test can hold a load after PostgreSQL answered it. */
function storeOf(d: Daemon, ks: string): TableStore {
  const strategy = d.keyspaces.get(ks)!.strategy as unknown as { ctx: StrategyContext };
  return strategy.ctx.store;
}

/** Holds the next load of `key` after its SELECT returned; resolves `loaded` with the row it read. */
function holdNextLoad(store: TableStore, key: string) {
  const original = store.get.bind(store);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let loadedResolve!: (row: StoredRow | null) => void;
  const loaded = new Promise<StoredRow | null>((r) => (loadedResolve = r));
  store.get = async (k: string) => {
    const row = await original(k);
    if (k !== key) return row;
    store.get = original;
    loadedResolve(row);
    await gate;
    return row;
  };
  return { loaded, release };
}

const version = (r: { json: () => unknown }) => (r.json() as { version: number }).version;

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  for (const d of daemons) await d.stop();
  for (const t of TABLES) await db?.query(`drop table if exists ${tag}_${t}`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

describe("no stampede", () => {
  it("300 concurrent GETs of one cold key cost one PostgreSQL read, and all get the value", async () => {
    // The table is made by a connection that then exits, so PostgreSQL has flushed the scan of its index
    // build before the count starts; the daemon then finds the table there.
    const setup = new pg.Client({ connectionString: PG_URL });
    await setup.connect();
    await setup.query(
      `create table ${tag}_stampede ("key" text collate "C" primary key, "value" jsonb not null,
         "version" bigint not null, "updated_at" timestamptz not null default now())`,
    );
    await setup.query(`insert into ${tag}_stampede (key, value, version) values ('hot', '{"n": 7}', 5)`);
    await setup.end();
    await until("the setup's statistics", async () => (await scans(`${tag}_stampede`)) >= 1);
    const before = await scans(`${tag}_stampede`);
    const d = await start(`  stampede: { strategy: cache-aside, table: ${tag}_stampede }`);
    const readsBefore = await metric(d.url, "sidecache_store_reads_total", "stampede");

    const replies = await Promise.all(
      Array.from({ length: 300 }, () => call(d.url, "GET", "/v1/kv/stampede/hot")),
    );
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({ n: 7 });
      expect(r.headers.etag).toBe('"5"');
    }
    expect(replies.filter((r) => r.headers["x-cache"] === "MISS").length).toBeGreaterThan(0);
    expect((await metric(d.url, "sidecache_store_reads_total", "stampede")) - readsBefore).toBe(1);

    // PostgreSQL flushes a backend's statistics at the latest when it exits: stop the daemon, wait until
    // its connections are gone, then read the table's scan count.
    await d.stop();
    await until("the daemon's connections to close", async () => {
      const r = await db.query(
        `select count(*)::int as n from pg_stat_activity where application_name = $1`,
        [tag],
      );
      return r.rows[0].n === 0;
    });
    expect((await scans(`${tag}_stampede`)) - before).toBe(1);
  });

  it("a reader that missed before another daemon's load ended takes that load's fill instead of loading again", async () => {
    const one = await start(`  fleet: { strategy: cache-aside, table: ${tag}_fleet }`);
    const two = await start(`  fleet: { strategy: cache-aside, table: ${tag}_fleet }`);
    await db.query(`insert into ${tag}_fleet (key, value, version) values ('late', '{"n": 9}', 4)`);
    // PostgreSQL reads of the key, counted at both daemons' stores
    let loads = 0;
    for (const d of [one, two]) {
      const store = storeOf(d, "fleet");
      const original = store.get.bind(store);
      store.get = async (k: string, request) => {
        if (k === "late") loads++;
        return original(k, request);
      };
    }
    // The second daemon's reader finds nothing in Redis, and is held there until the first daemon's
    // load has filled the key and given its fill lease back.
    const strategy = two.keyspaces.get("fleet")!.strategy as unknown as { ctx: StrategyContext };
    const cache = strategy.ctx.cache;
    const originalGet = cache.get.bind(cache);
    let missed!: () => void;
    const miss = new Promise<void>((r) => (missed = r));
    let resume!: () => void;
    const gate = new Promise<void>((r) => (resume = r));
    cache.get = async (ks, key, options) => {
      const entry = await originalGet(ks, key, options);
      if (key !== "late") return entry;
      cache.get = originalGet;
      expect(entry).toBeNull();
      missed();
      await gate;
      return entry;
    };
    const late = call(two.url, "GET", "/v1/kv/fleet/late");
    await miss;
    const first = await call(one.url, "GET", "/v1/kv/fleet/late");
    expect(first.headers["x-cache"]).toBe("MISS");
    await until("the first daemon's fill", async () => (await cached("fleet", "late")) !== null);
    const lease = `${tag}:fl:{fleet}:late`;
    await until("the fill lease to be given back", async () => (await redis.exists(lease)) === 0);
    resume();
    const r = await late;
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ n: 9 });
    expect(loads).toBe(1);
  });
});

describe("a fill racing a write never leaves the older value cached", () => {
  let d: Daemon;
  let other: Daemon;
  beforeAll(async () => {
    d = await start();
    other = await start();
  });

  for (const ks of ["aside", "wts", "wte", "around"]) {
    for (const via of ["the same daemon", "another daemon"]) {
      it(`${ks}: write through ${via} while a fill holds the old row`, async () => {
        const key = `race-${via.length}`;
        const v1 = version(await call(d.url, "PUT", `/v1/kv/${ks}/${key}`, { v: 1 }));
        // Make sure nothing is cached, so the next GET loads from PostgreSQL.
        await redis.del(`${tag}:kv:{${ks}}:${key}`);
        const hold = holdNextLoad(storeOf(d, ks), key);
        const read = call(d.url, "GET", `/v1/kv/${ks}/${key}`);
        expect((await hold.loaded)?.version).toBe(v1);

        const writer = via === "the same daemon" ? d : other;
        const w = await call(writer.url, "PUT", `/v1/kv/${ks}/${key}`, { v: 2 });
        expect(w.status).toBe(200);
        const v2 = version(w);
        expect(v2).toBeGreaterThan(v1);

        hold.release();
        const r = await read;
        expect(r.status).toBe(200);
        // The read began before the write was acknowledged: either value is allowed for it.
        expect([1, 2]).toContain((r.json() as { v: number }).v);

        const entry = await cached(ks, key);
        // Whatever the cache holds is at the new version: the value, or a tombstone that makes reads miss.
        expect(entry).not.toBeNull();
        expect(entry!.version).toBe(v2);
        if (ks === "wts" || ks === "wte") expect(entry).toMatchObject({ kind: "value", value: '{"v":2}' });

        for (const reader of [d, other]) {
          const again = await call(reader.url, "GET", `/v1/kv/${ks}/${key}`);
          expect(again.json()).toEqual({ v: 2 });
          expect(again.headers.etag).toBe(`"${v2}"`);
        }
        expect((await cached(ks, key))!).toMatchObject({ kind: "value", version: v2 });
      });
    }
  }

  it("a held _mget fill does not overwrite a newer write either", async () => {
    const v1 = version(await call(d.url, "PUT", "/v1/kv/aside/m1", { v: 1 }));
    await redis.del(`${tag}:kv:{aside}:m1`);
    const store = storeOf(d, "aside");
    const original = store.getMany.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let loaded!: () => void;
    const didLoad = new Promise<void>((r) => (loaded = r));
    store.getMany = async (keys) => {
      const rows = await original(keys);
      store.getMany = original;
      loaded();
      await gate;
      return rows;
    };
    const read = call(d.url, "POST", "/v1/kv/aside/_mget", { keys: ["m1"] });
    await didLoad;
    const v2 = version(await call(other.url, "PUT", "/v1/kv/aside/m1", { v: 2 }));
    expect(v2).toBeGreaterThan(v1);
    release();
    expect((await read).status).toBe(200);
    expect((await cached("aside", "m1"))!.version).toBe(v2);
    expect((await call(d.url, "GET", "/v1/kv/aside/m1")).json()).toEqual({ v: 2 });
  });
});

describe("expiry", () => {
  let d: Daemon;
  beforeAll(async () => {
    d = await start(`
  neg: { strategy: cache-aside, table: ${tag}_neg, negative_ttl: 400ms }
  ttl: { strategy: cache-aside, table: ${tag}_ttl, ttl: 400ms, ttl_jitter: 0, stale_grace: 1m }
  rt: { strategy: read-through, table: ${tag}_rt, ttl: 1s, refresh_ahead: 800ms, ttl_jitter: 0, stale_grace: 1m }`);
  });

  it("a 404 is remembered for negative_ttl, then a row inserted in PostgreSQL is seen", async () => {
    let r = await call(d.url, "GET", "/v1/kv/neg/later");
    expect(r.status).toBe(404);
    expect(r.headers["x-cache"]).toBe("MISS");
    const t0 = Date.now();
    await db.query(
      `insert into ${tag}_neg (key, value, version, updated_at) values ('later', '"here"', 3, now())`,
    );
    r = await call(d.url, "GET", "/v1/kv/neg/later");
    expect(r.status).toBe(404);
    expect(r.headers["x-cache"]).toBe("HIT");
    await until("the negative entry to expire", async () => {
      r = await call(d.url, "GET", "/v1/kv/neg/later");
      return r.status === 200;
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(r.json()).toBe("here");
    expect(r.headers["x-cache"]).toBe("MISS");
    expect((await call(d.url, "GET", "/v1/kv/neg/later")).headers["x-cache"]).toBe("HIT");
  });

  it("an entry past its TTL is loaded again: a row changed behind the daemon's back is served and cached", async () => {
    await call(d.url, "PUT", "/v1/kv/ttl/k", { v: 1 });
    expect((await call(d.url, "GET", "/v1/kv/ttl/k")).headers["x-cache"]).toBe("MISS");
    expect((await call(d.url, "GET", "/v1/kv/ttl/k")).headers["x-cache"]).toBe("HIT");
    await db.query(`update ${tag}_ttl set value = '{"v": 2}', version = version + 1 where key = 'k'`);
    // Still the cached value until the TTL passes.
    expect((await call(d.url, "GET", "/v1/kv/ttl/k")).json()).toEqual({ v: 1 });
    let r = await call(d.url, "GET", "/v1/kv/ttl/k");
    await until("the changed row to be served", async () => {
      r = await call(d.url, "GET", "/v1/kv/ttl/k");
      return (r.json() as { v: number }).v === 2;
    });
    expect(r.headers["x-cache"]).toBe("MISS");
    r = await call(d.url, "GET", "/v1/kv/ttl/k");
    expect(r.headers["x-cache"]).toBe("HIT");
    expect(r.json()).toEqual({ v: 2 });
  });

  it("read-through refreshes a key read near expiry in the background, without a MISS", async () => {
    await db.query(
      `insert into ${tag}_rt (key, value, version, updated_at) values ('k', '{"v": 1}', 10, now())`,
    );
    const refreshesBefore = await metric(d.url, "sidecache_refresh_ahead_total", "rt");
    expect((await call(d.url, "GET", "/v1/kv/rt/k")).headers["x-cache"]).toBe("MISS");
    await db.query(`update ${tag}_rt set value = '{"v": 2}', version = 11 where key = 'k'`);
    const seen: string[] = [];
    await until("the refreshed value", async () => {
      const r = await call(d.url, "GET", "/v1/kv/rt/k");
      seen.push(String(r.headers["x-cache"]));
      return (r.json() as { v: number }).v === 2;
    });
    expect(seen.every((s) => s === "HIT")).toBe(true);
    expect(await metric(d.url, "sidecache_refresh_ahead_total", "rt")).toBeGreaterThan(refreshesBefore);
    expect((await cached("rt", "k"))!).toMatchObject({ kind: "value", version: 11 });
  });
});
