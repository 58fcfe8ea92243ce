/**
 * Every backend error code over RESP, made for real: a private redis-server killed (BACKEND_UNAVAILABLE for
 * the strategies whose guarantee needs the cache, reads and cache-aside writes going on), a private
 * PostgreSQL frozen (TIMEOUT at the request deadline; a write-behind queue that can not drain answers
 * QUEUE_FULL), and a row changed behind sidecache's back (VERSION_MISMATCH where a conditional write loses).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import { uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";
import { plain, RawResp, RespErrorReply } from "./support/resp.js";

const tag = uniqueTag();
let redis: PrivateRedis;
let postgres: PrivatePostgres;
let daemon: Daemon;
let db: pg.Client;
let c: RawResp;

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const code = (r: unknown) =>
  r instanceof RespErrorReply ? r.code : `not an error: ${JSON.stringify(plain(r as never))}`;

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startPrivateRedis(), startPrivatePostgres()]);
  const yaml = `
server: { request_deadline: 800ms, resp: { port: 0 } }
cache: { url: ${redis.url}, prefix: ${tag}, timeout: 200ms, trust_lease: 400ms, breaker: { failures: 3, cooldown: 300ms } }
store: { url: ${postgres.url}, timeout: 3s, breaker: { failures: 3, cooldown: 300ms } }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: users }
  strict: { strategy: write-through, consistency: strict, table: strict_items }
  wb: { strategy: write-behind, table: wb_items, write_behind: { flush_interval: 100ms, max_queue: 3 } }
`;
  daemon = await Daemon.start(parseConfig(yaml, "resp-faults.yaml"), { log: silentLogger });
  db = new pg.Client({ connectionString: postgres.url });
  db.on("error", () => {});
  await db.connect();
  c = await RawResp.connect(daemon.respPort!);
}, 120_000);

afterAll(async () => {
  c?.end();
  await daemon?.stop();
  await db?.end().catch(() => {});
  await redis?.kill();
  await postgres?.cleanup();
});

describe("Redis killed and started again", () => {
  it("BACKEND_UNAVAILABLE for write-through strict and write-behind; reads fall back, cache-aside writes go on", async () => {
    expect(plain(await c.one("SET", "users:a", "A"))).toBe("OK");
    expect(plain(await c.one("SET", "strict:s", "S"))).toBe("OK");
    await redis.kill();

    expect(plain(await c.one("GET", "users:a"))).toBe("A");
    expect(plain(await c.one("SET", "users:b", "B"))).toBe("OK");
    expect(plain(await c.one("MGET", "users:a", "users:b", "strict:s"))).toEqual(["A", "B", "S"]);
    const strict = await c.one("SET", "strict:s", "changed");
    expect(code(strict)).toBe("BACKEND_UNAVAILABLE");
    expect(code(await c.one("SET", "wb:w", "W"))).toBe("BACKEND_UNAVAILABLE");
    expect(code(await c.one("MSET", "strict:x", "1", "strict:y", "2"))).toBe("BACKEND_UNAVAILABLE");
    // strict: nothing changed
    expect(plain(await c.one("GET", "strict:s"))).toBe("S");
    const m = (await call(daemon.url, "GET", "/metrics")).text;
    expect(m).toMatch(
      /sidecache_requests_total\{keyspace="strict",op="put",status="503",protocol="resp"\} [1-9]/,
    );

    await redis.start();
    await until(
      "strict writes succeed again",
      async () => plain(await c.one("SET", "strict:s", "back")) === "OK",
    );
    expect(plain(await c.one("SET", "wb:w", "W"))).toBe("OK");
    expect(plain(await c.one("GET", "strict:s"))).toBe("back");
  });
});

describe("PostgreSQL frozen", () => {
  it("TIMEOUT at the request deadline; cached values still served; a write-behind queue that can not drain is QUEUE_FULL", async () => {
    expect(plain(await c.one("SET", "users:cached", "C"))).toBe("OK");
    expect(plain(await c.one("GET", "users:cached"))).toBe("C"); // fills the cache
    expect((await call(daemon.url, "POST", "/v1/keyspaces/wb/flush")).status).toBe(200); // an empty queue
    await postgres.pause();
    try {
      for (const cmd of [
        ["GET", "users:uncached"],
        ["SET", "users:w", "w"],
        ["MGET", "users:x", "users:y"],
      ]) {
        const t0 = Date.now();
        const r = await c.one(...cmd);
        const took = Date.now() - t0;
        expect(code(r), cmd.join(" ")).toBe("TIMEOUT");
        expect(took).toBeGreaterThanOrEqual(700);
        expect(took).toBeLessThan(2_000);
      }
      expect(plain(await c.one("GET", "users:cached"))).toBe("C");

      // write-behind acknowledges from Redis; with nothing draining, the fourth write finds the queue full
      for (let i = 0; i < 3; i++) expect(plain(await c.one("SET", `wb:q${i}`, `${i}`))).toBe("OK");
      const full = await c.one("SET", "wb:q3", "3");
      expect((full as RespErrorReply).message).toMatch(
        /^QUEUE_FULL The write-behind queue of "wb" is full; retry after \d+s/,
      );
      expect(code(await c.one("MSET", "wb:q4", "4", "wb:q5", "5"))).toBe("QUEUE_FULL");
      // acknowledged writes are read back while PostgreSQL is away
      expect(plain(await c.one("MGET", "wb:q0", "wb:q2"))).toEqual(["0", "2"]);
    } finally {
      await postgres.resume();
    }
    await until(
      "the queue drains and takes writes again",
      async () => plain(await c.one("SET", "wb:q3", "3")) === "OK",
    );
    expect((await call(daemon.url, "POST", "/v1/keyspaces/wb/flush")).status).toBe(200);
    const rows = await db.query(`select key, value from wb_items where key like 'q%' order by key`);
    expect(rows.rows).toEqual([0, 1, 2, 3].map((i) => ({ key: `q${i}`, value: String(i) })));
    const m = (await call(daemon.url, "GET", "/metrics")).text;
    expect(m).toMatch(
      /sidecache_requests_total\{keyspace="users",op="get",status="504",protocol="resp"\} [1-9]/,
    );
    expect(m).toMatch(
      /sidecache_requests_total\{keyspace="wb",op="put",status="429",protocol="resp"\} [1-9]/,
    );
  });
});

describe("a row changed behind sidecache's back", () => {
  it("SET ... XX, SET ... GET and DEL answer VERSION_MISMATCH rather than overwrite what they did not read", async () => {
    expect(plain(await c.one("SET", "users:vm", "mine"))).toBe("OK");
    // Served from the cache once the daemon trusts it again (after the Redis restart above).
    await until(
      "the value is served from the cache",
      async () => (await call(daemon.url, "GET", "/v1/kv/users/vm")).headers["x-cache"] === "HIT",
    );
    // Another writer changes the row in PostgreSQL directly; the cache still holds the older version.
    await db.query(`update users set value = '"theirs"', version = version + 1000 where key = 'vm'`);
    for (const cmd of [
      ["SET", "users:vm", "new", "XX"],
      ["SET", "users:vm", "new", "GET"],
      ["DEL", "users:vm"],
    ]) {
      const r = await c.one(...cmd);
      expect((r as RespErrorReply).message, cmd.join(" ")).toMatch(
        /^VERSION_MISMATCH The key changed between the read and the write of (SET|DEL) 3 times; nothing was written/,
      );
    }
    const row = await db.query(`select value from users where key = 'vm'`);
    expect(row.rows[0].value).toBe("theirs");
    // a plain SET does not condition on what it read, and wins
    expect(plain(await c.one("SET", "users:vm", "last"))).toBe("OK");
    expect(plain(await c.one("GET", "users:vm"))).toBe("last");
  });
});
