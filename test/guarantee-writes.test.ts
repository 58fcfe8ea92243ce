/**
 * The write side of the guarantees, made to happen for real:
 * - write-through strict: no reader, on any daemon, is served a value before PostgreSQL committed it, and
 *   a commit PostgreSQL refuses (a deferred constraint) leaves every reader on the committed value;
 * - a write whose request timed out while its transaction went on to commit does not leave the entry it
 *   replaced behind;
 * - a delete's marker outlives a slow fill even with negative_ttl: 0;
 * - two daemons with in-process caches refuse to share a table;
 * - a write-behind write that finds a newer row written by someone else is dead-lettered, never a silent
 *   success;
 * - the checker's repair removes only the entry it compared.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisCache } from "../src/cache/redis.js";
import { Repairer } from "../src/checker/repair.js";
import { parseConfig } from "../src/config/load.js";
import type { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import type { StoredRow, TableStore } from "../src/store/adapter.js";
import type { StrategyContext } from "../src/strategies/strategy.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
let db: pg.Client;
let redis: Redis;
const daemons: Daemon[] = [];
const tables: string[] = [];

async function start(yaml: string): Promise<Daemon> {
  const d = await startDaemon(yaml);
  daemons.push(d);
  return d;
}

function storeOf(d: Daemon, ks: string): TableStore {
  const strategy = d.keyspaces.get(ks)!.strategy as unknown as { ctx: StrategyContext };
  return strategy.ctx.store;
}

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  for (const d of daemons) await d.stop().catch(() => {});
  for (const t of tables) await db.query(`drop table if exists ${t}`);
  await db.query(`drop function if exists ${tag}_slow_check() cascade`);
  await db?.end();
  const keys = await redis.keys(`${tag}*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

/**
 * A deferred constraint trigger: at COMMIT it sleeps `ms` when the value has "slow", and refuses the row
 * when the value has "bad": a commit that takes its time and one PostgreSQL refuses.
 */
async function slowCommits(table: string, ms: number): Promise<void> {
  await db.query(`
    create or replace function ${tag}_slow_check() returns trigger language plpgsql as $$
    begin
      if new.value ? 'slow' or new.value ? 'bad' then perform pg_sleep(${ms / 1000}); end if;
      if new.value ? 'bad' then raise exception 'refused by a deferred check' using errcode = '23514'; end if;
      return new;
    end $$`);
  await db.query(`create constraint trigger ${table}_slow after insert or update on ${table}
    deferrable initially deferred for each row execute function ${tag}_slow_check()`);
}

describe("write-through strict: no dirty reads", () => {
  let a: Daemon;
  let b: Daemon;
  const table = `${tag}_strict`;
  beforeAll(async () => {
    tables.push(table);
    const yaml = `
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: "${PG_URL}", timeout: 5s }
checker: { enabled: false }
keyspaces:
  s: { strategy: write-through, consistency: strict, table: ${table} }
`;
    a = await start(yaml);
    b = await start(yaml);
    await slowCommits(table, 600);
  });

  /** Reads from both daemons until `done` settles; every value served, with when its read ended. */
  async function readWhile(done: Promise<unknown>, key: string): Promise<{ value: unknown; end: number }[]> {
    const seen: { value: unknown; end: number }[] = [];
    let over = false;
    void done.finally(() => (over = true));
    while (!over) {
      for (const d of [a, b]) {
        const r = await call(d.url, "GET", `/v1/kv/s/${key}`);
        seen.push({ value: r.json(), end: Date.now() });
      }
    }
    return seen;
  }

  it("a commit PostgreSQL refuses: every reader stays on the committed value, during and after", async () => {
    expect((await call(a.url, "PUT", "/v1/kv/s/k", { v: 1 })).status).toBe(200);
    for (const d of [a, b]) expect((await call(d.url, "GET", "/v1/kv/s/k")).json()).toEqual({ v: 1 });
    const refused = call(a.url, "PUT", "/v1/kv/s/k", { v: 2, bad: true });
    const seen = await readWhile(refused, "k");
    expect(seen.length).toBeGreaterThan(4);
    // never committed: no read may show it, however late
    for (const s of seen) expect(s.value).toEqual({ v: 1 });
    const r = await refused;
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    const row = await db.query(`select value from ${table} where key = 'k'`);
    expect(row.rows[0].value).toEqual({ v: 1 });
    for (const d of [a, b]) expect((await call(d.url, "GET", "/v1/kv/s/k")).json()).toEqual({ v: 1 });
    // the write's marker is taken back: the committed value is cached again
    await call(a.url, "GET", "/v1/kv/s/k");
    expect((await call(b.url, "GET", "/v1/kv/s/k")).headers["x-cache"]).toBe("HIT");
  });

  it("a commit that takes its time: nobody sees the value before the commit, everybody after", async () => {
    const sent = Date.now();
    const pending = call(a.url, "PUT", "/v1/kv/s/k", { v: 3, slow: true });
    const seen = await readWhile(pending, "k");
    // the commit can not happen before the trigger's 600 ms sleep: a read that ended before is dirty if
    // it shows the new value (one that ended later overlaps the commit and may show either)
    const early = seen.filter((s) => s.end < sent + 550);
    expect(early.length).toBeGreaterThan(4);
    for (const s of early) expect(s.value).toEqual({ v: 1 });
    expect((await pending).status).toBe(200);
    for (const d of [a, b])
      expect((await call(d.url, "GET", "/v1/kv/s/k")).json()).toEqual({ v: 3, slow: true });
  });
});

describe("a write whose request timed out and whose transaction committed after", () => {
  it("leaves no reader on the entry it replaced once it committed", async () => {
    const table = `${tag}_unknown`;
    tables.push(table);
    const yaml = `
server: { request_deadline: 300ms }
cache: { url: ${REDIS_URL}, prefix: ${tag}u }
store: { url: "${PG_URL}", timeout: 5s }
checker: { enabled: false }
keyspaces:
  u: { strategy: cache-aside, table: ${table} }
`;
    const a = await start(yaml);
    const b = await start(yaml);
    await slowCommits(table, 1_000);
    expect((await call(a.url, "PUT", "/v1/kv/u/k", { v: 1 })).status).toBe(200);
    for (const d of [a, b]) {
      await call(d.url, "GET", "/v1/kv/u/k");
      expect((await call(d.url, "GET", "/v1/kv/u/k")).headers["x-cache"]).toBe("HIT");
    }
    const r = await call(a.url, "PUT", "/v1/kv/u/k", { v: 2, slow: true });
    expect(r.status).toBe(504);
    // the transaction goes on at PostgreSQL and commits
    const deadline = Date.now() + 5_000;
    for (;;) {
      const row = await db.query(`select value from ${table} where key = 'k'`);
      if (row.rows[0].value.v === 2) break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((res) => setTimeout(res, 20));
    }
    // the writer settles the key on its lock as soon as the transaction ended: no daemon serves v1
    await new Promise((res) => setTimeout(res, 300));
    for (let i = 0; i < 10; i++) {
      for (const d of [a, b])
        expect((await call(d.url, "GET", "/v1/kv/u/k")).json()).toEqual({ v: 2, slow: true });
    }
  });
});

describe("a delete's marker with negative_ttl: 0", () => {
  it("outlives a fill that read the row before the delete", async () => {
    const table = `${tag}_neg`;
    tables.push(table);
    const d = await start(`
cache: { url: ${REDIS_URL}, prefix: ${tag}n }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  n: { strategy: cache-aside, table: ${table}, negative_ttl: 0s }
`);
    expect((await call(d.url, "PUT", "/v1/kv/n/k", { v: 1 })).status).toBe(200);
    const store = storeOf(d, "n");
    const original = store.get.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let loaded!: (row: StoredRow | null) => void;
    const read = new Promise<StoredRow | null>((r) => (loaded = r));
    store.get = async (k: string) => {
      const row = await original(k);
      store.get = original;
      loaded(row);
      await gate;
      return row;
    };
    const reading = call(d.url, "GET", "/v1/kv/n/k");
    expect((await read)?.value).toBe('{"v": 1}');
    expect((await call(d.url, "DELETE", "/v1/kv/n/k")).status).toBe(204);
    release();
    await reading;
    for (let i = 0; i < 3; i++) expect((await call(d.url, "GET", "/v1/kv/n/k")).status).toBe(404);
  });
});

describe("in-process caches over one PostgreSQL", () => {
  it("a second daemon with cache.url memory: on the same table does not start, and says why", async () => {
    const table = `${tag}_mem`;
    tables.push(table);
    const yaml = `
cache: { url: "memory:" }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  m: { strategy: cache-aside, table: ${table} }
`;
    const first = await start(yaml);
    await expect(startDaemon(yaml)).rejects.toThrow(/already uses table .*memory:.*Redis/s);
    // a Redis daemon beside it is refused too: the memory daemon would not see its writes
    await expect(
      startDaemon(yaml.replace(`url: "memory:"`, `url: ${REDIS_URL}, prefix: ${tag}m`)),
    ).rejects.toThrow(/in-process cache/);
    // the first one is unaffected; once it stops, another may start
    expect((await call(first.url, "PUT", "/v1/kv/m/k", { v: 1 })).status).toBe(200);
    await first.stop();
    const next = await start(yaml);
    expect((await call(next.url, "GET", "/v1/kv/m/k")).json()).toEqual({ v: 1 });
  });
});

describe("write-behind: a row someone else wrote at a newer version", () => {
  it("the queued write goes to the dead letters as superseded, counted", async () => {
    const table = `${tag}_wb`;
    tables.push(table);
    const d = await start(`
cache: { url: ${REDIS_URL}, prefix: ${tag}w }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  w: { strategy: write-behind, table: ${table}, write_behind: { flush_interval: 1h } }
`);
    const queued = await call(d.url, "PUT", "/v1/kv/w/k", { from: "queue" });
    expect(queued.status).toBe(202);
    const version = (queued.json() as { version: number }).version;
    // another service writes the row directly, at a version above the queued one
    await db.query(
      `insert into ${table} (key, value, version, updated_at) values ('k', '{"from":"outside"}', $1, now())`,
      [String(version + 1_000)],
    );
    expect((await call(d.url, "POST", "/v1/keyspaces/w/flush")).status).toBe(200);
    const letters = (await call(d.url, "GET", "/v1/keyspaces/w/dead-letters")).json() as {
      dead_letters: { key: string; reason: string }[];
    };
    expect(letters.dead_letters).toHaveLength(1);
    expect(letters.dead_letters[0]).toMatchObject({ key: "k" });
    expect(letters.dead_letters[0]!.reason).toMatch(/^superseded/);
    const metrics = (await call(d.url, "GET", "/metrics")).text;
    expect(metrics).toMatch(/sidecache_writebehind_superseded_total\{keyspace="w"\} 1/);
    // reads show what PostgreSQL holds, not the write that did not land
    expect((await call(d.url, "GET", "/v1/kv/w/k")).json()).toEqual({ from: "outside" });
  });
});

describe("the checker's repair", () => {
  it("removes only the entry it compared: a write that replaced it meanwhile stays", async () => {
    const config = parseConfig(
      `cache: { url: ${REDIS_URL}, prefix: ${tag}c }\nkeyspaces:\n  c: { strategy: cache-aside, table: ${tag}_c }\n`,
      "c.yaml",
    );
    const cache = new RedisCache(config.cache, silentLogger);
    try {
      const ks = config.keyspaces.get("c")!;
      const observed = {
        kind: "value" as const,
        version: 5,
        value: '"old"',
        freshUntil: Date.now() + 60_000,
      };
      await cache.setIfNewer("c", "k", observed, 60_000);
      const later = { kind: "value" as const, version: 6, value: '"new"', freshUntil: Date.now() + 60_000 };
      await cache.setIfNewer("c", "k", later, 60_000);
      const repairer = new Repairer(ks, cache, {} as TableStore);
      const changed = await repairer.repair("invalidate", {
        key: "k",
        kind: "mismatch",
        entry: observed,
        row: { key: "k", value: '"other"', version: 5 },
      });
      expect(changed).toBe(false);
      expect(await cache.get("c", "k")).toMatchObject({ kind: "value", version: 6, value: '"new"' });
      // the entry it compared is removed
      await repairer.repair("invalidate", {
        key: "k",
        kind: "mismatch",
        entry: later,
        row: { key: "k", value: '"other"', version: 6 },
      });
      expect(await cache.get("c", "k")).toBeNull();
    } finally {
      await cache.close();
    }
  });
});
