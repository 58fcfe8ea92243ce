/**
 * One PostgreSQL read per key per miss window, whatever the key's entry holds: an expired hot key and a
 * key just written (a tombstone), 300 concurrent readers while PostgreSQL is slow, readers arriving all
 * through the load. Reads are counted on the wire, by a proxy in front of PostgreSQL, not by the daemon.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgProxy } from "../bench/lib/pgproxy.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const table = (ks: string) => `${tag}_${ks}`;
const KEYSPACES = ["aside", "wts", "wte", "around"];
let proxy: PgProxy;
let daemon: Daemon;
let db: pg.Client;

beforeAll(async () => {
  // 25 ms each way: a load takes more than 50 ms, long enough for hundreds of readers to pile up
  const pgAt = new URL(PG_URL);
  proxy = new PgProxy({ host: pgAt.hostname, port: Number(pgAt.port || 5432) }, 25, KEYSPACES.map(table));
  await proxy.listen();
  // The lease is long here: a daemon starved of CPU (the rest of the suite runs beside it) that let its
  // cache trust lapse would read PostgreSQL without single flight's vouching; that is tested elsewhere.
  daemon = await startDaemon(`
cache: { url: ${REDIS_URL}, prefix: ${tag}, trust_lease: 10s }
store: { url: "${proxy.url}", pool: 20 }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${table("aside")}, ttl: 3s, ttl_jitter: 0 }
  wts: { strategy: write-through, consistency: strict, table: ${table("wts")}, ttl: 3s, ttl_jitter: 0 }
  wte: { strategy: write-through, consistency: eventual, table: ${table("wte")}, ttl: 3s, ttl_jitter: 0 }
  around: { strategy: write-around, table: ${table("around")}, ttl: 3s, ttl_jitter: 0 }
`);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  await daemon?.stop();
  await proxy?.close();
  for (const ks of KEYSPACES) await db?.query(`drop table if exists ${table(ks)}`);
  await db?.end();
});

async function readers(ks: string, key: string, n: number, spreadMs = 0) {
  const replies = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      if (spreadMs > 0) await new Promise((r) => setTimeout(r, (i * spreadMs) / n));
      return call(daemon.url, "GET", `/v1/kv/${ks}/${key}`);
    }),
  );
  return replies;
}

describe("a hot key whose entry expired, 300 concurrent readers, PostgreSQL slow", () => {
  // The ttl (3 s) is longer than a stampede takes on a loaded machine: a second miss window would rightly
  // cost a second read.
  it("costs one PostgreSQL read, for every strategy", async () => {
    for (const ks of KEYSPACES) {
      expect((await call(daemon.url, "PUT", `/v1/kv/${ks}/hot`, { n: 1 })).status).toBe(200);
      await call(daemon.url, "GET", `/v1/kv/${ks}/hot`);
      expect((await call(daemon.url, "GET", `/v1/kv/${ks}/hot`)).headers["x-cache"]).toBe("HIT");
    }
    await new Promise((r) => setTimeout(r, 3_100)); // the entries are past their ttl, kept for the grace
    for (const ks of KEYSPACES) {
      const before = proxy.selectsOn(table(ks));
      const replies = await readers(ks, "hot", 300);
      for (const r of replies) expect(r.json()).toEqual({ n: 1 });
      expect({ ks, loads: proxy.selectsOn(table(ks)) - before }).toEqual({ ks, loads: 1 });
      expect((await call(daemon.url, "GET", `/v1/kv/${ks}/hot`)).headers["x-cache"]).toBe("HIT");
    }
  });
});

describe("300 concurrent readers right after a write", () => {
  for (const ks of KEYSPACES) {
    it(`${ks}: one PostgreSQL read at most, every reader sees the write`, async () => {
      await call(daemon.url, "PUT", `/v1/kv/${ks}/fresh`, { n: 1 });
      await call(daemon.url, "GET", `/v1/kv/${ks}/fresh`);
      expect((await call(daemon.url, "PUT", `/v1/kv/${ks}/fresh`, { n: 2 })).status).toBe(200);
      const before = proxy.selectsOn(table(ks));
      const replies = await readers(ks, "fresh", 300);
      for (const r of replies) expect(r.json()).toEqual({ n: 2 });
      // cache-aside and write-around leave a tombstone: one load; write-through leaves the value: none
      const loads = proxy.selectsOn(table(ks)) - before;
      expect(loads).toBe(ks === "aside" || ks === "around" ? 1 : 0);
      // the tombstone let the fill of the row's current version in
      expect((await call(daemon.url, "GET", `/v1/kv/${ks}/fresh`)).headers["x-cache"]).toBe("HIT");
    });
  }
});

describe("readers arriving all through the load of a cold key", () => {
  it("share it: one PostgreSQL read for 300 readers spread over 60 ms", async () => {
    await db.query(
      `insert into ${table("aside")} (key, value, version, updated_at) values ('cold', '{"c":1}', 7, now())`,
    );
    const before = proxy.selectsOn(table("aside"));
    const replies = await readers("aside", "cold", 300, 60);
    for (const r of replies) expect(r.json()).toEqual({ c: 1 });
    expect(proxy.selectsOn(table("aside")) - before).toBe(1);
  });

  it("and for an absent key, one read, then the negative entry answers", async () => {
    const before = proxy.selectsOn(table("aside"));
    const replies = await readers("aside", "nobody", 300, 60);
    for (const r of replies) expect(r.status).toBe(404);
    expect(proxy.selectsOn(table("aside")) - before).toBe(1);
  });
});

describe("many daemons sharing the cache", () => {
  let others: Daemon[] = [];
  beforeAll(async () => {
    const y = `
cache: { url: ${REDIS_URL}, prefix: ${tag}, trust_lease: 10s }
store: { url: "${proxy.url}", pool: 20 }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${table("aside")}, ttl: 3s, ttl_jitter: 0, fill_lease: 1s }
`;
    others = [await startDaemon(y), await startDaemon(y)];
  });
  afterAll(async () => {
    for (const d of others) await d.stop();
  });

  it("1,000 concurrent cold reads over 3 daemons cost one PostgreSQL read", async () => {
    await db.query(
      `insert into ${table("aside")} (key, value, version, updated_at) values ('fleet', '{"f":1}', 9, now())`,
    );
    const urls = [daemon.url, ...others.map((d) => d.url)];
    const before = proxy.selectsOn(table("aside"));
    const replies = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) => call(urls[i % 3]!, "GET", "/v1/kv/aside/fleet")),
    );
    for (const r of replies) expect(r.json()).toEqual({ f: 1 });
    expect(proxy.selectsOn(table("aside")) - before).toBe(1);
  });

  it("a daemon that died holding the fill lease delays the others by at most fill_lease", async () => {
    await db.query(
      `insert into ${table("aside")} (key, value, version, updated_at) values ('orphan', '{"o":1}', 9, now())`,
    );
    // the lease a daemon took before it was killed: nobody will fill
    const redis = new Redis(REDIS_URL);
    await redis.set(`${tag}:fl:{aside}:orphan`, "dead-daemon", "PX", 1_000);
    redis.disconnect();
    const t0 = Date.now();
    const replies = await Promise.all(others.map((d) => call(d.url, "GET", "/v1/kv/aside/orphan")));
    const took = Date.now() - t0;
    for (const r of replies) expect(r.json()).toEqual({ o: 1 });
    expect(took).toBeLessThan(2_500);
    expect(took).toBeGreaterThanOrEqual(900);
  });
});
