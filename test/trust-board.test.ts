/**
 * One daemon sweeps the repair intents for all the daemons on the same keyspaces; the others trust their
 * cache on its progress. The sweeper is SIGKILLed: another daemon takes the lease within one trust lease,
 * and a write whose cache update failed after the kill (its intent in PostgreSQL, the replaced value still
 * in Redis) is hidden from every survivor once one lease has passed, as its writer waits before
 * acknowledging. Three daemon processes; run `npm run build` first.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_URL, REDIS_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const table = `${tag}_aside`;
const LEASE_MS = 1_500;
let direct: Redis;
let db: pg.Client;
let daemons: ChildDaemon[] = [];

const yaml = `
server: { port: 0 }
cache: { url: "${REDIS_URL}", prefix: ${tag}, trust_lease: ${LEASE_MS}ms }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${table}, ttl: 1h }
`;

/** The lease keys, from every page of the scan: the shared Redis may hold many other keys. */
async function leaseKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, page] = await direct.scan(cursor, "MATCH", `${tag}:trust:*:lease`, "COUNT", 1000);
    keys.push(...page);
    cursor = next;
  } while (cursor !== "0");
  return keys;
}

async function leaseHolder(): Promise<string | null> {
  const keys = await leaseKeys();
  if (keys.length === 0) return null;
  const text = await direct.get(keys[0]!);
  return text === null ? null : text.slice(0, text.lastIndexOf("|"));
}

function sweeperOf(id: string): ChildDaemon | undefined {
  return daemons.find((d) => d.output().includes(`"sweeper":"${id}"`));
}

beforeAll(async () => {
  direct = new Redis(REDIS_URL);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  daemons = await Promise.all([spawnDaemon(yaml), spawnDaemon(yaml), spawnDaemon(yaml)]);
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.kill("SIGKILL")));
  const keys = await direct.keys(`${tag}:*`);
  if (keys.length > 0) await direct.del(...keys);
  direct?.disconnect();
  await db?.query(`drop table if exists ${table}`);
  await db?.query(`delete from sidecache_cache_repairs where tbl = $1`, [table]).catch(() => {});
  await db?.query(`delete from sidecache_tombstones where tbl = $1`, [table]).catch(() => {});
  await db?.end();
});

describe("the repair sweeper of a fleet", () => {
  it("is one daemon; the others serve hits on its progress without reading PostgreSQL for it", async () => {
    const w = await call(daemons[0]!.url, "PUT", "/v1/kv/aside/k", { n: 1 });
    expect(w.status).toBe(200);
    for (const d of daemons) await call(d.url, "GET", "/v1/kv/aside/k");
    // several leases: the daemons that do not sweep must have renewed their trust from the board
    await new Promise((r) => setTimeout(r, 3 * LEASE_MS));
    for (const d of daemons) {
      const r = await call(d.url, "GET", "/v1/kv/aside/k");
      expect(r.json()).toEqual({ n: 1 });
      expect(r.headers["x-cache"]).toBe("HIT");
    }
    const holder = await leaseHolder();
    expect(holder).not.toBeNull();
    expect(sweeperOf(holder!)).toBeDefined();
  });

  it("no sweep under way (the lease held by a daemon that does nothing): every daemon stops trusting within one lease", async () => {
    const lease = (await leaseKeys())[0]!;
    expect((await call(daemons[0]!.url, "PUT", "/v1/kv/aside/q", { n: 1 })).status).toBe(200);
    for (const d of daemons) {
      await call(d.url, "GET", "/v1/kv/aside/q");
      expect((await call(d.url, "GET", "/v1/kv/aside/q")).headers["x-cache"]).toBe("HIT");
    }
    const version = Number(
      String((await call(daemons[0]!.url, "GET", "/v1/kv/aside/q")).headers.etag).replace(/"/g, ""),
    );
    await direct.set(lease, "ghost|0", "PX", 60_000);
    await db.query("begin");
    await db.query(`update ${table} set value = '{"n": 2}', version = $1 where key = 'q'`, [version + 1]);
    await db.query(`insert into sidecache_cache_repairs (tbl, key, version) values ($1, 'q', $2)`, [
      table,
      version + 1,
    ]);
    await db.query("commit");
    await new Promise((r) => setTimeout(r, LEASE_MS));
    for (const d of daemons) {
      const r = await call(d.url, "GET", "/v1/kv/aside/q");
      expect(r.json()).toEqual({ n: 2 });
      expect(r.headers["x-cache"], "no sweep proves the cache: PostgreSQL answers").toBe("MISS");
    }
    // the lease free again: a daemon takes it, applies the intent, and everyone trusts again
    await direct.del(lease);
    await new Promise((r) => setTimeout(r, LEASE_MS));
    expect(await leaseHolder()).not.toBe("ghost");
    for (const d of daemons) {
      await call(d.url, "GET", "/v1/kv/aside/q");
      const r = await call(d.url, "GET", "/v1/kv/aside/q");
      expect(r.json()).toEqual({ n: 2 });
      expect(r.headers["x-cache"]).toBe("HIT");
    }
  });

  it("SIGKILLed: another daemon takes over within one lease, and no survivor serves a repaired value after one lease", async () => {
    const holder = (await leaseHolder())!;
    const sweeper = sweeperOf(holder)!;
    expect(sweeper).toBeDefined();
    const survivors = daemons.filter((d) => d !== sweeper);
    const version = Number(
      String((await call(survivors[0]!.url, "GET", "/v1/kv/aside/k")).headers.etag).replace(/"/g, ""),
    );

    const killedAt = performance.now();
    await sweeper.kill("SIGKILL");
    // A write whose cache update failed, right after the kill: committed with its repair intent, while
    // Redis still holds the value it replaced.
    await db.query("begin");
    await db.query(`update ${table} set value = '{"n": 2}', version = $1 where key = 'k'`, [version + 1]);
    await db.query(`insert into sidecache_cache_repairs (tbl, key, version) values ($1, 'k', $2)`, [
      table,
      version + 1,
    ]);
    await db.query("commit");
    const recordedAt = performance.now();

    // The writer would answer one lease after the intent was recorded; from then on nobody serves n: 1.
    let next: string | null = holder;
    let tookOverMs = Infinity;
    while (performance.now() - recordedAt < LEASE_MS) {
      next = await leaseHolder();
      if (next !== null && next !== holder && tookOverMs === Infinity)
        tookOverMs = performance.now() - killedAt;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 0; i < 20; i++) {
      for (const d of survivors) {
        const r = await call(d.url, "GET", "/v1/kv/aside/k");
        expect(r.json(), "read after the write would have been acknowledged").toEqual({ n: 2 });
      }
    }
    while (tookOverMs === Infinity && performance.now() - killedAt < 10_000) {
      next = await leaseHolder();
      if (next !== null && next !== holder) tookOverMs = performance.now() - killedAt;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(tookOverMs).toBeLessThan(LEASE_MS);
    expect(survivors).toContain(sweeperOf(next!));
    // nothing is left owed: the new sweeper applied the intent (a tombstone at its version) and cleared it
    const left = await db.query(`select 1 from sidecache_cache_repairs where tbl = $1`, [table]);
    expect(left.rowCount).toBe(0);
    // and the survivors trust their cache again
    for (const d of survivors) {
      await call(d.url, "GET", "/v1/kv/aside/k");
      const r = await call(d.url, "GET", "/v1/kv/aside/k");
      expect(r.json()).toEqual({ n: 2 });
      expect(r.headers["x-cache"]).toBe("HIT");
    }
  });
});
