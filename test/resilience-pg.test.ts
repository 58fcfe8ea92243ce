/**
 * PostgreSQL goes away under a running daemon (a private server, stopped for real): expired entries within
 * their stale grace are served as STALE, others answer 503, /readyz names the store, and everything comes
 * back by itself when the server does.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import type { CacheEntry } from "../src/cache/adapter.js";
import type { Daemon } from "../src/daemon.js";
import { REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const tag = uniqueTag();
const GRACE_MS = 600;
let server: PrivatePostgres;
let daemon: Daemon;
let redis: Redis;
let base: string;

async function cached(ks: string, key: string): Promise<CacheEntry | null> {
  const text = await redis.get(`${tag}:kv:{${ks}}:${key}`);
  return text === null ? null : decodeEntry(text);
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  server = await startPrivatePostgres();
  redis = new Redis(REDIS_URL);
  daemon = await startDaemon(`
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: "${server.url}", timeout: 1s, pool: 4 }
checker: { enabled: false }
keyspaces:
  long: { strategy: cache-aside, table: long_kv, ttl: 300ms, ttl_jitter: 0, stale_grace: 1m }
  short: { strategy: write-through, table: short_kv, ttl: 300ms, ttl_jitter: 0, stale_grace: ${GRACE_MS}ms }
`);
  base = daemon.url;
});

afterAll(async () => {
  await daemon?.stop();
  await server?.cleanup();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

describe("PostgreSQL down", () => {
  it("serves STALE within the grace, 503 past it or for a key never cached, and recovers by itself", async () => {
    for (const ks of ["long", "short"]) {
      expect((await call(base, "PUT", `/v1/kv/${ks}/k`, { ks })).status).toBe(200);
      await call(base, "GET", `/v1/kv/${ks}/k`);
      expect((await call(base, "GET", `/v1/kv/${ks}/k`)).headers["x-cache"]).toBe("HIT");
    }
    const long = (await cached("long", "k"))!;
    const short = (await cached("short", "k"))!;
    await until(
      "both entries to pass their TTL",
      async () => Date.now() > Math.max(long.freshUntil, short.freshUntil),
    );

    await server.stop();

    let r = await call(base, "GET", "/v1/kv/long/k");
    expect(r.status).toBe(200);
    expect(r.headers["x-cache"]).toBe("STALE");
    expect(r.headers.etag).toBe(`"${long.version}"`);
    expect(r.json()).toEqual({ ks: "long" });

    r = await call(base, "GET", "/v1/kv/long/never");
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({ error: { code: "backend_unavailable" } });

    r = await call(base, "GET", "/readyz");
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({ status: "unavailable", checks: { cache: "up", store: "down" } });

    // short: STALE until its grace runs out, then 503.
    await until("the short grace to run out", async () => {
      r = await call(base, "GET", "/v1/kv/short/k");
      if (r.status === 200) expect(r.headers["x-cache"]).toBe("STALE");
      return r.status === 503;
    });
    expect(Date.now()).toBeGreaterThanOrEqual(short.freshUntil + GRACE_MS);
    expect(r.json()).toMatchObject({ error: { code: "backend_unavailable" } });

    // Writes need PostgreSQL: refused, nothing cached by them.
    r = await call(base, "PUT", "/v1/kv/long/k", { ks: "lost" });
    expect(r.status).toBe(503);
    expect((await cached("long", "k"))!.version).toBe(long.version);
    expect((await call(base, "GET", "/v1/kv/long/k")).json()).toEqual({ ks: "long" });

    await server.start();
    await until("the store to be ready again", async () => {
      r = await call(base, "GET", "/readyz");
      return r.status === 200;
    });
    expect(r.json()).toMatchObject({ status: "ok", checks: { cache: "up", store: "up" } });

    // A key whose entry is gone: MISS, then cached again.
    r = await call(base, "GET", "/v1/kv/short/k");
    expect(r.status).toBe(200);
    expect(r.headers["x-cache"]).toBe("MISS");
    expect(r.json()).toEqual({ ks: "short" });
    r = await call(base, "GET", "/v1/kv/short/k");
    expect(r.headers["x-cache"]).toBe("HIT");

    // A key whose stale entry is still kept: served from PostgreSQL again, never STALE once it is back.
    r = await call(base, "GET", "/v1/kv/long/k");
    expect(r.status).toBe(200);
    expect(r.headers["x-cache"]).toBe("MISS");
    expect(r.json()).toEqual({ ks: "long" });

    r = await call(base, "GET", "/v1/kv/long/never");
    expect(r.status).toBe(404);
    expect(r.headers["x-cache"]).toBe("MISS");
    expect((await call(base, "GET", "/v1/kv/long/never")).headers["x-cache"]).toBe("HIT");

    // Writes work again and are read back.
    r = await call(base, "PUT", "/v1/kv/long/k", { ks: "after" });
    expect(r.status).toBe(200);
    expect((await call(base, "GET", "/v1/kv/long/k")).json()).toEqual({ ks: "after" });
    expect((await call(base, "GET", "/v1/kv/long/k")).headers["x-cache"]).toBe("HIT");
  });
});
