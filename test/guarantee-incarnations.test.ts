/**
 * A Redis that is not the one the daemon wrote to never serves an entry older than an acknowledged write:
 * restarted from an RDB snapshot taken before the write, restarted from its AOF, emptied by FLUSHALL while
 * a fill that read the old row is in flight, and replaced at the same address by a replica that lagged.
 * Every strategy that reads through the cache, two daemons each, every read checked.
 */
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import type { StoredRow, TableStore } from "../src/store/adapter.js";
import type { StrategyContext } from "../src/strategies/strategy.js";
import { PG_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const tag = uniqueTag();
const KEYSPACES = {
  aside: "strategy: cache-aside",
  wts: "strategy: write-through, consistency: strict",
  wte: "strategy: write-through, consistency: eventual",
  around: "strategy: write-around",
} as const;
type Ks = keyof typeof KEYSPACES;
let db: pg.Client;
const cleanups: (() => Promise<void>)[] = [];

function yaml(redisUrl: string, prefix: string): string {
  const lines = Object.entries(KEYSPACES).map(
    ([ks, s]) => `  ${ks}: { ${s}, table: ${prefix}_${ks}, ttl: 1h }`,
  );
  return `
cache: { url: ${redisUrl}, prefix: ${prefix} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
${lines.join("\n")}
`;
}

interface Setup {
  redis: PrivateRedis;
  admin: Redis;
  daemons: Daemon[];
  prefix: string;
}

async function setup(persistence: "rdb" | "aof"): Promise<Setup> {
  const prefix = `${tag}${cleanups.length}`;
  const redis = await startPrivateRedis({ persistence });
  const daemons = [await startDaemon(yaml(redis.url, prefix)), await startDaemon(yaml(redis.url, prefix))];
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  admin.on("error", () => {});
  cleanups.push(async () => {
    for (const d of daemons) await d.stop();
    admin.disconnect();
    await redis.kill();
    for (const ks of Object.keys(KEYSPACES)) await db.query(`drop table if exists ${prefix}_${ks}`);
  });
  return { redis, admin, daemons, prefix };
}

const put = async (d: Daemon, ks: Ks, key: string, value: unknown) => {
  const r = await call(d.url, "PUT", `/v1/kv/${ks}/${key}`, value);
  expect(r.status).toBe(200);
  return (r.json() as { version: number }).version;
};

/** Reads until `ms` have passed, from every daemon; each read must be the acknowledged value or an error. */
async function readsNeverOlder(daemons: Daemon[], ks: Ks, key: string, want: unknown, ms: number) {
  const deadline = Date.now() + ms;
  let served = 0;
  while (Date.now() < deadline || served === 0) {
    for (const d of daemons) {
      const r = await call(d.url, "GET", `/v1/kv/${ks}/${key}`);
      if (r.status === 200) {
        expect({ ks, key, value: r.json() }).toEqual({ ks, key, value: want });
        served++;
      } else {
        // the cache or the daemon may still be coming back; never an older value
        expect([503, 504]).toContain(r.status);
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Both daemons cache v1 of the key (a miss then a hit each). */
async function cacheOld(s: Setup, ks: Ks, key: string): Promise<void> {
  await put(s.daemons[0]!, ks, key, { v: 1 });
  for (const d of s.daemons) {
    for (let i = 0; i < 3; i++) await call(d.url, "GET", `/v1/kv/${ks}/${key}`);
    const hit = await call(d.url, "GET", `/v1/kv/${ks}/${key}`);
    expect(hit.headers["x-cache"]).toBe("HIT");
    expect(hit.json()).toEqual({ v: 1 });
  }
}

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  for (const c of cleanups) await c().catch(() => {});
  await db?.end();
});

describe("a Redis restarted from a snapshot taken before an acknowledged write", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup("rdb");
    await s.admin.connect();
  });

  it("serves no entry of the snapshot: every strategy, both daemons", async () => {
    for (const ks of Object.keys(KEYSPACES) as Ks[]) await cacheOld(s, ks, "k");
    await s.admin.save();
    for (const ks of Object.keys(KEYSPACES) as Ks[]) await put(s.daemons[1]!, ks, "k", { v: 2 });
    await s.redis.kill();
    await s.redis.start();
    // the snapshot holds the old entries: a daemon that trusted them would answer v1 as a HIT
    for (const ks of Object.keys(KEYSPACES) as Ks[]) {
      await readsNeverOlder(s.daemons, ks, "k", { v: 2 }, 300);
    }
    // and the cache warms again, once the daemon trusts it (ready): the second read of a key is a hit
    await until(async () => (await call(s.daemons[0]!.url, "GET", "/readyz")).status === 200);
    for (const ks of Object.keys(KEYSPACES) as Ks[]) {
      await call(s.daemons[0]!.url, "GET", `/v1/kv/${ks}/k`);
      const again = await call(s.daemons[0]!.url, "GET", `/v1/kv/${ks}/k`);
      expect(again.headers["x-cache"]).toBe("HIT");
      expect(again.json()).toEqual({ v: 2 });
    }
  });

  it("a daemon started after the restart adopts the new incarnation and keeps the cache warm", async () => {
    const late = await startDaemon(yaml(s.redis.url, s.prefix));
    s.daemons.push(late);
    await until(async () => (await call(late.url, "GET", "/readyz")).status === 200);
    const r = await call(late.url, "GET", `/v1/kv/wts/k`);
    expect(r.headers["x-cache"]).toBe("HIT");
    expect(r.json()).toEqual({ v: 2 });
  });
});

describe("a Redis on its append-only file, killed and restarted", () => {
  it("serves the acknowledged values (the cache is cold, never stale)", async () => {
    const s = await setup("aof");
    for (const ks of Object.keys(KEYSPACES) as Ks[]) {
      await cacheOld(s, ks, "a");
      await put(s.daemons[1]!, ks, "a", { v: 2 });
    }
    await s.redis.kill();
    await s.redis.start();
    for (const ks of Object.keys(KEYSPACES) as Ks[]) await readsNeverOlder(s.daemons, ks, "a", { v: 2 }, 200);
  });
});

describe("a replica that lagged, put in place of the primary at its address", () => {
  it("serves nothing the replica held from before the write", async () => {
    const s = await setup("rdb");
    const replica = await startPrivateRedis({
      persistence: "rdb",
      args: ["--replicaof", "127.0.0.1", String(s.redis.port)],
    });
    cleanups.push(() => replica.kill());
    const rep = new Redis(replica.url);
    for (const ks of Object.keys(KEYSPACES) as Ks[]) await cacheOld(s, ks, "r");
    // the replica has caught up with the old entries, then stops following
    const until = Date.now() + 10_000;
    while (!(await rep.info("replication")).includes("master_link_status:up") && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await s.admin.connect();
    await s.admin.wait(1, 5_000);
    await rep.replicaof("NO", "ONE");
    for (const ks of Object.keys(KEYSPACES) as Ks[]) await put(s.daemons[1]!, ks, "r", { v: 2 });
    // the failover: the replica's data now answers at the primary's address
    await rep.save();
    rep.disconnect();
    await s.redis.kill();
    copyFileSync(join(replica.dir, "dump.rdb"), join(s.redis.dir, "dump.rdb"));
    await s.redis.start();
    for (const ks of Object.keys(KEYSPACES) as Ks[]) await readsNeverOlder(s.daemons, ks, "r", { v: 2 }, 200);
  });
});

/** The store a keyspace's strategy reads, so a test can hold a load after PostgreSQL answered it. */
function storeOf(d: Daemon, ks: string): TableStore {
  const strategy = d.keyspaces.get(ks)!.strategy as unknown as { ctx: StrategyContext };
  return strategy.ctx.store;
}

describe("FLUSHALL while a fill that read the old row is in flight", () => {
  it("the fill does not land: the older value is never cached", async () => {
    const s = await setup("rdb");
    await s.admin.connect();
    for (const ks of Object.keys(KEYSPACES) as Ks[]) {
      const key = "f";
      const v1 = await put(s.daemons[0]!, ks, key, { v: 1 });
      const store = storeOf(s.daemons[0]!, ks);
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
      await s.admin.del(`${s.prefix}:kv:{${ks}}:${key}`);
      const reading = call(s.daemons[0]!.url, "GET", `/v1/kv/${ks}/${key}`);
      expect((await read)?.version).toBe(v1);
      await put(s.daemons[1]!, ks, key, { v: 2 });
      await s.admin.flushall();
      release();
      expect([{ v: 1 }, { v: 2 }]).toContainEqual((await reading).json());
      await readsNeverOlder(s.daemons, ks, key, { v: 2 }, 100);
    }
  });
});
