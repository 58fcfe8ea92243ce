/** Every route, status and error code of the protocol against real Redis and PostgreSQL. */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call, seg } from "./support/http.js";

const tag = uniqueTag();
let daemon: Daemon;
let db: pg.Client;
let redis: Redis;
let base: string;

const yaml = `
server: { port: 0, max_value: 64kb, max_batch: 50 }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users, ttl: 1m, negative_ttl: 30s }
  profiles: { strategy: read-through, table: ${tag}_profiles }
  products: { strategy: write-through, consistency: strict, table: ${tag}_products }
  prices: { strategy: write-through, consistency: eventual, table: ${tag}_prices }
  audit: { strategy: write-around, table: ${tag}_audit }
`;

async function row(table: string, key: string): Promise<{ value: unknown; version: string } | undefined> {
  const r = await db.query(`select value, version from ${tag}_${table} where key = $1`, [key]);
  return r.rows[0];
}

async function count(table: string): Promise<number> {
  const r = await db.query(`select count(*)::int as n from ${tag}_${table}`);
  return r.rows[0].n;
}

beforeAll(async () => {
  daemon = await startDaemon(yaml);
  base = daemon.url;
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await daemon?.stop();
  for (const t of ["users", "profiles", "products", "prices", "audit"])
    await db?.query(`drop table if exists ${tag}_${t}`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

describe("reads and writes", () => {
  it("misses, fills, hits, and tells a stored value by ETag", async () => {
    let r = await call(base, "GET", "/v1/kv/users/alice");
    expect(r.status).toBe(404);
    expect(r.json()).toMatchObject({ error: { code: "not_found" } });
    expect(r.headers["x-cache"]).toBe("MISS");
    r = await call(base, "GET", "/v1/kv/users/alice");
    expect(r.status).toBe(404);
    expect(r.headers["x-cache"]).toBe("HIT"); // negative cache

    r = await call(base, "PUT", "/v1/kv/users/alice", { name: "Alice", tags: ["a", "b"], n: 1.5 });
    expect(r.status).toBe(200);
    const { version } = r.json() as { version: number };
    expect(Number.isSafeInteger(version)).toBe(true);
    expect(await row("users", "alice")).toEqual({
      value: { name: "Alice", tags: ["a", "b"], n: 1.5 },
      version: String(version),
    });

    r = await call(base, "GET", "/v1/kv/users/alice");
    expect(r.status).toBe(200);
    expect(r.headers["x-cache"]).toBe("MISS");
    expect(r.headers.etag).toBe(`"${version}"`);
    expect(r.json()).toEqual({ name: "Alice", tags: ["a", "b"], n: 1.5 });
    r = await call(base, "GET", "/v1/kv/users/alice");
    expect(r.headers["x-cache"]).toBe("HIT");
    expect(r.headers.etag).toBe(`"${version}"`);
    expect(r.json()).toEqual({ name: "Alice", tags: ["a", "b"], n: 1.5 });
  });

  it("a write invalidates: the next read returns the new value, never the old", async () => {
    await call(base, "PUT", "/v1/kv/users/bob", { v: 1 });
    await call(base, "GET", "/v1/kv/users/bob"); // fill
    expect((await call(base, "GET", "/v1/kv/users/bob")).headers["x-cache"]).toBe("HIT");
    const w = await call(base, "PUT", "/v1/kv/users/bob", { v: 2 });
    const r = await call(base, "GET", "/v1/kv/users/bob");
    expect(r.json()).toEqual({ v: 2 });
    expect(r.headers.etag).toBe(`"${(w.json() as { version: number }).version}"`);
  });

  it("stores any JSON value, null and scalars included, and tells a stored null from absence", async () => {
    for (const [key, value] of [
      ["n", null],
      ["s", "text é 😀"],
      ["num", 42],
      ["arr", [1, [2, {}]]],
      ["f", false],
    ] as const) {
      expect((await call(base, "PUT", `/v1/kv/users/${key}`, JSON.stringify(value))).status).toBe(200);
      const r = await call(base, "GET", `/v1/kv/users/${key}`);
      expect(r.status).toBe(200);
      expect(r.json()).toEqual(value);
    }
  });

  it("keys are one segment of any UTF-8, slashes percent-encoded, up to 512 bytes", async () => {
    for (const key of [
      "a/b/c",
      "ключ",
      "😀 emoji",
      "'; drop table users; --",
      "x".repeat(512),
      "_mget",
      "%41",
    ]) {
      const put = await call(base, "PUT", `/v1/kv/users/${seg(key)}`, { key });
      expect(put.status, key).toBe(200);
      const r = await call(base, "GET", `/v1/kv/users/${seg(key)}`);
      expect(r.status, key).toBe(200);
      expect(r.json()).toEqual({ key });
      expect(await row("users", key)).toBeDefined();
    }
  });

  it("deletes, and deleting an absent key is not an error", async () => {
    await call(base, "PUT", "/v1/kv/users/gone", { x: 1 });
    await call(base, "GET", "/v1/kv/users/gone");
    let r = await call(base, "DELETE", "/v1/kv/users/gone");
    expect(r.status).toBe(204);
    expect(r.text).toBe("");
    expect(await row("users", "gone")).toBeUndefined();
    r = await call(base, "GET", "/v1/kv/users/gone");
    expect(r.status).toBe(404);
    expect((await call(base, "DELETE", "/v1/kv/users/never-was")).status).toBe(204);
  });

  it("a key deleted and written again continues above every version it had", async () => {
    const v1 = ((await call(base, "PUT", "/v1/kv/users/phoenix", 1)).json() as { version: number }).version;
    await call(base, "DELETE", "/v1/kv/users/phoenix");
    const v2 = ((await call(base, "PUT", "/v1/kv/users/phoenix", 2)).json() as { version: number }).version;
    expect(v2).toBeGreaterThan(v1);
  });
});

describe("conditional writes", () => {
  it("If-Match: the current version writes, another one is 412 and changes nothing", async () => {
    const v = ((await call(base, "PUT", "/v1/kv/users/cond", { n: 1 })).json() as { version: number })
      .version;
    let r = await call(base, "PUT", "/v1/kv/users/cond", { n: 2 }, { "if-match": `"${v - 1}"` });
    expect(r.status).toBe(412);
    expect(r.json()).toMatchObject({ error: { code: "version_mismatch" } });
    expect((await row("users", "cond"))?.value).toEqual({ n: 1 });
    r = await call(base, "PUT", "/v1/kv/users/cond", { n: 3 }, { "if-match": `"${v}"` });
    expect(r.status).toBe(200);
    expect((await row("users", "cond"))?.value).toEqual({ n: 3 });
    r = await call(base, "PUT", "/v1/kv/users/cond-absent", { n: 1 }, { "if-match": `"${v}"` });
    expect(r.status).toBe(412);
    expect(await row("users", "cond-absent")).toBeUndefined();
    r = await call(base, "DELETE", "/v1/kv/users/cond", undefined, { "if-match": `"${v}"` });
    expect(r.status).toBe(412);
    expect(await row("users", "cond")).toBeDefined();
  });

  it("If-None-Match: * creates only", async () => {
    let r = await call(base, "PUT", "/v1/kv/users/once", { n: 1 }, { "if-none-match": "*" });
    expect(r.status).toBe(200);
    r = await call(base, "PUT", "/v1/kv/users/once", { n: 2 }, { "if-none-match": "*" });
    expect(r.status).toBe(412);
    expect((await row("users", "once"))?.value).toEqual({ n: 1 });
  });

  it("malformed conditions are invalid_request", async () => {
    const r = await call(base, "PUT", "/v1/kv/users/cond2", { n: 1 }, { "if-match": "abc" });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    expect(await row("users", "cond2")).toBeUndefined();
  });
});

describe("batches", () => {
  it("_mget answers null for absent keys and for stored nulls", async () => {
    await call(base, "PUT", "/v1/kv/users/m1", { m: 1 });
    await call(base, "PUT", "/v1/kv/users/m-null", "null");
    const r = await call(base, "POST", "/v1/kv/users/_mget", { keys: ["m1", "m-null", "m-absent", "m1"] });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ values: { m1: { m: 1 }, "m-null": null, "m-absent": null } });
  });

  it("_mset writes all in one transaction and answers every version", async () => {
    const r = await call(base, "POST", "/v1/kv/products/_mset", {
      items: { p1: { price: 1 }, p2: { price: 2 }, "p/3": [3] },
    });
    expect(r.status).toBe(200);
    const { versions } = r.json() as { versions: Record<string, number> };
    expect(Object.keys(versions).sort()).toEqual(["p/3", "p1", "p2"]);
    expect((await row("products", "p2"))?.value).toEqual({ price: 2 });
    const g = await call(base, "GET", "/v1/kv/products/p1");
    expect(g.headers["x-cache"]).toBe("HIT"); // write-through filled the cache
    expect(g.json()).toEqual({ price: 1 });
  });

  it("_mset is all or nothing: one bad key and nothing is written", async () => {
    const before = await count("products");
    const r = await call(base, "POST", "/v1/kv/products/_mset", { items: { ok1: 1, "..": 2 } });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: { code: "invalid_key" } });
    expect(await count("products")).toBe(before);
  });

  it("batch limits and shapes are checked", async () => {
    const keys = Array.from({ length: 51 }, (_, i) => `k${i}`);
    let r = await call(base, "POST", "/v1/kv/users/_mget", { keys });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    r = await call(base, "POST", "/v1/kv/users/_mget", { keys: "k1" });
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    r = await call(base, "POST", "/v1/kv/users/_mset", { items: [1, 2] });
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    r = await call(base, "POST", "/v1/kv/users/_mset", { items: { big: "x".repeat(70 * 1024) } });
    expect(r.status).toBe(413);
    expect(await row("users", "big")).toBeUndefined();
  });
});

describe("strategies", () => {
  it("read-through refuses writes with 405", async () => {
    for (const [m, p, b] of [
      ["PUT", "/v1/kv/profiles/a", 1],
      ["DELETE", "/v1/kv/profiles/a", undefined],
      ["POST", "/v1/kv/profiles/_mset", { items: { a: 1 } }],
    ] as const) {
      const r = await call(base, m, p, b);
      expect(r.status).toBe(405);
      expect(r.json()).toMatchObject({ error: { code: "method_not_allowed" } });
    }
    expect(await count("profiles")).toBe(0);
  });

  it("read-through serves rows written in PostgreSQL", async () => {
    await db.query(
      `insert into ${tag}_profiles (key, value, version, updated_at) values ('pg', '{"from":"pg"}', 7, now())`,
    );
    const r = await call(base, "GET", "/v1/kv/profiles/pg");
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ from: "pg" });
    expect(r.headers.etag).toBe('"7"');
  });

  it("write-through leaves the new value in the cache; write-around leaves none", async () => {
    await call(base, "PUT", "/v1/kv/prices/x", { p: 1 });
    expect((await call(base, "GET", "/v1/kv/prices/x")).headers["x-cache"]).toBe("HIT");
    await call(base, "PUT", "/v1/kv/audit/x", { a: 1 });
    const r = await call(base, "GET", "/v1/kv/audit/x");
    expect(r.headers["x-cache"]).toBe("MISS");
    expect(r.json()).toEqual({ a: 1 });
  });
});

describe("bad requests get the contract's error shape and change nothing", () => {
  const cases: [string, string, string, unknown, Record<string, string>, number, string][] = [
    ["unknown keyspace", "GET", "/v1/kv/nope/a", undefined, {}, 404, "unknown_keyspace"],
    ["dot key", "GET", "/v1/kv/users/%2E", undefined, {}, 400, "invalid_key"],
    ["dot-dot key", "PUT", "/v1/kv/users/%2e%2E", "1", {}, 400, "invalid_key"],
    ["empty key", "PUT", "/v1/kv/users/", "1", {}, 400, "invalid_key"],
    ["invalid UTF-8 key", "PUT", "/v1/kv/users/%FF%FE", "1", {}, 400, "invalid_key"],
    [
      "key over 512 bytes",
      "PUT",
      `/v1/kv/users/${"é".repeat(257)}`.replace(/é/g, "%C3%A9"),
      "1",
      {},
      400,
      "invalid_key",
    ],
    ["unencoded slash", "PUT", "/v1/kv/users/a/b", "1", {}, 400, "invalid_key"],
    ["invalid JSON", "PUT", "/v1/kv/users/bad", "{nope", {}, 400, "invalid_json"],
    ["empty body", "PUT", "/v1/kv/users/bad", "", {}, 400, "invalid_json"],
    [
      "invalid UTF-8 body",
      "PUT",
      "/v1/kv/users/bad",
      Buffer.from([0x22, 0xff, 0x22]),
      {},
      400,
      "invalid_json",
    ],
    [
      "deep nesting",
      "PUT",
      "/v1/kv/users/bad",
      "[".repeat(20000) + "]".repeat(20000),
      {},
      400,
      "invalid_json",
    ],
    [
      "wrong media type",
      "PUT",
      "/v1/kv/users/bad",
      "1",
      { "content-type": "text/plain" },
      415,
      "unsupported_media_type",
    ],
    [
      "too large",
      "PUT",
      "/v1/kv/users/bad",
      JSON.stringify("x".repeat(65 * 1024)),
      {},
      413,
      "value_too_large",
    ],
    ["POST on a key", "POST", "/v1/kv/users/bad", "1", {}, 405, "method_not_allowed"],
    ["PATCH on a key", "PATCH", "/v1/kv/users/bad", "1", {}, 405, "method_not_allowed"],
    ["unknown route", "GET", "/v2/whatever", undefined, {}, 404, "not_found"],
    ["bad check body", "POST", "/v1/keyspaces/users/check", { sample: -1 }, {}, 400, "invalid_request"],
  ];
  for (const [name, method, path, body, headers, status, code] of cases) {
    it(name, async () => {
      const before = await count("users");
      const r = await call(base, method, path, body as string, headers);
      expect(r.status).toBe(status);
      expect(r.headers["content-type"]).toBe("application/json");
      const e = r.json() as { error: { code: string; message: string } };
      expect(e.error.code).toBe(code);
      expect(e.error.message.length).toBeGreaterThan(10);
      expect(await count("users")).toBe(before);
      expect(await row("users", "bad")).toBeUndefined();
    });
  }
});

describe("operations routes", () => {
  it("/healthz, /readyz, /metrics, /v1/keyspaces", async () => {
    expect((await call(base, "GET", "/healthz")).status).toBe(200);
    const ready = await call(base, "GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({ status: "ok", checks: { cache: "up", store: "up" } });
    const m = await call(base, "GET", "/metrics");
    expect(m.status).toBe(200);
    expect(m.text).toMatch(
      /sidecache_requests_total\{keyspace="users",op="get",status="200",protocol="http"\} \d+/,
    );
    expect(m.text).toMatch(/sidecache_cache_hits_total\{keyspace="users"\} [1-9]/);
    expect(m.text).toMatch(
      /sidecache_request_duration_seconds_bucket\{le="0.001",keyspace="users",op="get",protocol="http"\}/,
    );
    expect(m.text).not.toContain("alice"); // labels by keyspace, never by key
    const ks = await call(base, "GET", "/v1/keyspaces");
    expect(ks.status).toBe(200);
    const body = ks.json() as { keyspaces: Record<string, { strategy: string; hit_ratio: number | null }> };
    expect(body.keyspaces.users!.strategy).toBe("cache-aside");
    expect(body.keyspaces.products).toMatchObject({ strategy: "write-through", consistency: "strict" });
    expect(body.keyspaces.users!.hit_ratio).toBeGreaterThan(0);
  });

  it("flush on a keyspace without a queue answers 0", async () => {
    const r = await call(base, "POST", "/v1/keyspaces/users/flush");
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ flushed: 0 });
  });
});
