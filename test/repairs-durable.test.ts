/**
 * Cache repairs outlive the daemon that owed them. Redis hangs (SIGSTOP, so it keeps its data); a daemon
 * whose cache breaker is open acknowledges cache-aside, write-around and write-through eventual writes
 * while its cache updates can not reach Redis, and is SIGKILLed before any repair can run; Redis resumes
 * with the entries those writes replaced. Neither a daemon started afterwards nor one that ran the whole
 * time ever serves a replaced value, and the repair intents in PostgreSQL are gone once applied.
 * Child daemons: run `npm run build` first.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEntry } from "../src/cache/adapter.js";
import { decodeEntry } from "../src/cache/codec.js";
import { PG_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const tag = uniqueTag();
const KEYSPACES = ["aside", "around", "wte"] as const;
let redis: PrivateRedis;
let direct: Redis;
let redisPid: number;
let db: pg.Client;
const daemons: ChildDaemon[] = [];

/** The writer: its cache breaker stays open for a minute once opened, so nothing it sends reaches Redis. */
const config = (cooldown: string) => `
server: { port: 0 }
cache: { url: "${redis.url}", prefix: ${tag}, timeout: 300ms, breaker: { failures: 3, cooldown: ${cooldown} } }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside, ttl: 1h }
  around: { strategy: write-around, table: ${tag}_around, ttl: 1h }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte, ttl: 1h }
`;

async function start(cooldown: string): Promise<ChildDaemon> {
  const d = await spawnDaemon(config(cooldown));
  daemons.push(d);
  return d;
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function put(d: ChildDaemon, ks: string, key: string, n: number): Promise<number> {
  const r = await call(d.url, "PUT", `/v1/kv/${ks}/${key}`, { n });
  expect(r.status, `${ks}/${key} ${r.text}`).toBe(200);
  return (r.json() as { version: number }).version;
}

/** Reads the key and checks it is the acknowledged value; returns X-Cache. */
async function expectRead(d: ChildDaemon, ks: string, key: string, n: number, version: number) {
  const r = await call(d.url, "GET", `/v1/kv/${ks}/${key}`);
  expect(r.status, `${ks}/${key}`).toBe(200);
  expect(r.json(), `${ks}/${key} read after the write of ${n} was acknowledged`).toEqual({ n });
  expect(Number(String(r.headers.etag).replace(/"/g, "")), `${ks}/${key}`).toBe(version);
  return String(r.headers["x-cache"]);
}

async function cached(ks: string, key: string): Promise<CacheEntry | null> {
  const text = await direct.get(`${tag}:kv:{${ks}}:${key}`);
  return text === null ? null : decodeEntry(text);
}

async function intents(): Promise<{ tbl: string; key: string; version: number }[]> {
  const r = await db.query(
    `select tbl, key, version from sidecache_cache_repairs where tbl like $1 order by tbl, key`,
    [`${tag}\\_%`],
  );
  return r.rows.map((x: { tbl: string; key: string; version: string }) => ({
    ...x,
    version: Number(x.version),
  }));
}

/** Writes n to the key of every keyspace through `d` and reads it twice there, so each entry is cached. */
async function warm(d: ChildDaemon, key: string, n: number): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (const ks of KEYSPACES) {
    const v = await put(d, ks, key, n);
    versions.set(ks, v);
    await expectRead(d, ks, key, n, v);
    expect(await expectRead(d, ks, key, n, v)).toBe("HIT");
    expect(await cached(ks, key)).toMatchObject({ kind: "value", version: v });
  }
  return versions;
}

/**
 * With Redis frozen: opens the writer's cache breaker, then writes n to the key of every keyspace; each
 * write is acknowledged with its repair intent in PostgreSQL. Returns the acknowledged versions.
 */
async function writeWhileFrozen(writer: ChildDaemon, key: string, n: number, before: number) {
  await until("the writer's cache breaker to open", async () => {
    // Each read waits out the cache timeout, then answers from PostgreSQL.
    const r = await call(writer.url, "GET", `/v1/kv/aside/${key}`);
    expect(r.json()).toEqual({ n: before });
    const ready = await call(writer.url, "GET", "/readyz");
    return (ready.json() as { breakers?: { cache?: string } }).breakers?.cache === "open";
  });
  const versions = new Map<string, number>();
  for (const ks of KEYSPACES) versions.set(ks, await put(writer, ks, key, n));
  const pending = await intents();
  for (const ks of KEYSPACES) {
    expect(pending, ks).toContainEqual({ tbl: `${tag}_${ks}`, key, version: versions.get(ks) });
  }
  return versions;
}

beforeAll(async () => {
  redis = await startPrivateRedis();
  direct = new Redis(redis.url);
  redisPid = Number(/process_id:(\d+)/.exec(await direct.info("server"))![1]);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  process.kill(redisPid, "SIGCONT");
  await Promise.all(daemons.map((d) => d.kill("SIGKILL")));
  direct?.disconnect();
  for (const ks of KEYSPACES) await db?.query(`drop table if exists ${tag}_${ks}`);
  await db?.query(`delete from sidecache_tombstones where tbl like $1`, [`${tag}\\_%`]).catch(() => {});
  await db?.query(`delete from sidecache_cache_repairs where tbl like $1`, [`${tag}\\_%`]).catch(() => {});
  await db?.end();
  await redis?.kill();
});

describe("repairs owed by a daemon killed while Redis hung", () => {
  let survivor: ChildDaemon;

  it("are applied by the next daemon before it serves: no read returns a replaced value", async () => {
    const writer = await start("1m");
    const old = await warm(writer, "k", 1);

    process.kill(redisPid, "SIGSTOP");
    let acked: Map<string, number>;
    try {
      acked = await writeWhileFrozen(writer, "k", 2, 1);
      expect(await writer.kill("SIGKILL")).toBeNull();
    } finally {
      process.kill(redisPid, "SIGCONT");
    }
    // No daemon is left: Redis holds what it had before the writes, and only the intents know better.
    for (const ks of KEYSPACES) {
      expect(await cached(ks, "k"), ks).toMatchObject({ kind: "value", version: old.get(ks) });
    }

    survivor = await start("300ms");
    for (let round = 0; round < 5; round++) {
      for (const ks of KEYSPACES) await expectRead(survivor, ks, "k", 2, acked.get(ks)!);
    }
    const hits = new Set<string>();
    await until("reads to hit the cache again", async () => {
      for (const ks of KEYSPACES) {
        if ((await expectRead(survivor, ks, "k", 2, acked.get(ks)!)) === "HIT") hits.add(ks);
      }
      return hits.size === KEYSPACES.length;
    });
    expect(await intents()).toEqual([]);
  });

  it("are applied by a daemon that ran all along, which never serves a replaced value meanwhile", async () => {
    const old = await warm(survivor, "m", 10);
    const writer = await start("1m");

    process.kill(redisPid, "SIGSTOP");
    let acked: Map<string, number>;
    try {
      // The survivor keeps serving while Redis hangs: from PostgreSQL, the value of the day.
      for (const ks of KEYSPACES) expect(await expectRead(survivor, ks, "m", 10, old.get(ks)!)).toBe("MISS");
      acked = await writeWhileFrozen(writer, "m", 11, 10);
      for (const ks of KEYSPACES) await expectRead(survivor, ks, "m", 11, acked.get(ks)!);
      expect(await writer.kill("SIGKILL")).toBeNull();
    } finally {
      process.kill(redisPid, "SIGCONT");
    }

    // Read through the survivor all the while it finds Redis back with the old entries and repairs them.
    const hits = new Set<string>();
    await until("reads to hit the cache again", async () => {
      for (const ks of KEYSPACES) {
        if ((await expectRead(survivor, ks, "m", 11, acked.get(ks)!)) === "HIT") hits.add(ks);
      }
      return hits.size === KEYSPACES.length;
    });
    expect(await intents()).toEqual([]);
    for (const ks of KEYSPACES) {
      expect(await cached(ks, "m"), ks).toMatchObject({ kind: "value", version: acked.get(ks) });
    }
  });
});
