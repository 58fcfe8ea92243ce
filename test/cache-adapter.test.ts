import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { cacheAdapterContract } from "./cache-adapter.contract.js";
import { decodeEntry, encodeEntry } from "../src/cache/codec.js";
import { createCache, MemoryCache, RedisCache } from "../src/cache/index.js";
import type { CacheConfig } from "../src/config/types.js";

const REDIS_URL = process.env.SIDECACHE_TEST_REDIS ?? "redis://127.0.0.1:6379";
const prefix = `sc-test-cache-${randomBytes(6).toString("hex")}`;

function config(url: string, over: Partial<CacheConfig> = {}): CacheConfig {
  return { url, prefix, maxEntries: 10_000, timeoutMs: 1000, ...over };
}

afterAll(async () => {
  const admin = new Redis(REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    admin.disconnect();
  }
});

cacheAdapterContract("redis", async () => createCache(config(REDIS_URL)));
cacheAdapterContract("memory", async () => createCache(config("memory:")));

describe("createCache", () => {
  it("picks the adapter by URL", async () => {
    const memory = createCache(config("memory:"));
    expect(memory).toBeInstanceOf(MemoryCache);
    expect(memory.kind).toBe("memory");
    const redis = createCache(config(REDIS_URL));
    expect(redis).toBeInstanceOf(RedisCache);
    expect(redis.kind).toBe("redis");
    await redis.ping();
    expect((redis as RedisCache).client.status).toBe("ready");
    await Promise.all([memory.close(), redis.close()]);
    expect(() => createCache(config("memcached://127.0.0.1"))).toThrow(/memory:, redis:\/\/ or rediss:\/\//);
  });
});

describe("redis layout", () => {
  it("stores one compact string per entry under prefix:kv:{keyspace}:key, with its incarnation", async () => {
    const cache = new RedisCache(config(REDIS_URL));
    const admin = new Redis(REDIS_URL);
    try {
      const entry = {
        kind: "value" as const,
        version: 1_712_345_678_901_234,
        freshUntil: 1_712_345_679_000,
        value: '{"a":1}',
      };
      await cache.setIfNewer("users", "alice:1", entry, 60_000);
      const raw = await admin.get(`${prefix}:kv:{users}:alice:1`);
      // the incarnation is the one the marker holds beside the server's run id
      const marker = await admin.get(`${prefix}:inc:{users}`);
      const runId = /run_id:(\w+)/.exec(await admin.info("server"))![1];
      const incarnation = marker!.slice(marker!.indexOf(":") + 1);
      expect(marker).toBe(`${runId}:${incarnation}`);
      expect(incarnation).toMatch(/^[0-9a-z]{1,12}$/);
      expect(raw).toBe(`v1712345678901234:${incarnation}:1712345679000:{"a":1}`);
      const ttl = await admin.pttl(`${prefix}:kv:{users}:alice:1`);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
      // something that is not an entry reads as nothing cached and is overwritten by any version
      await admin.set(`${prefix}:kv:{users}:junk`, "not an entry");
      expect(await cache.get("users", "junk")).toBeNull();
      expect(await cache.setIfNewer("users", "junk", { ...entry, version: 1 }, 60_000)).toBe(true);
    } finally {
      admin.disconnect();
      await cache.close();
    }
  });
});

describe("memory bound", () => {
  it("keeps at most maxEntries, dropping the least recently used", async () => {
    const cache = new MemoryCache({ maxEntries: 3 });
    const e = (v: number) => ({ kind: "value" as const, version: v, freshUntil: 0, value: String(v) });
    for (const k of ["a", "b", "c"]) await cache.setIfNewer("ks", k, e(1), 60_000);
    await cache.get("ks", "a");
    await cache.setIfNewer("ks", "d", e(1), 60_000);
    expect(await cache.get("ks", "b")).toBeNull();
    expect((await cache.sampleKeys("ks", 10)).sort()).toEqual(["a", "c", "d"]);
    await cache.close();
  });
});

describe("codec", () => {
  it("round-trips and refuses what is not an entry", () => {
    const entries = [
      { kind: "value" as const, version: 2 ** 53, freshUntil: 1, value: "" },
      { kind: "value" as const, version: 0, freshUntil: -5, value: ':::"x":::' },
      { kind: "absent" as const, version: 3, freshUntil: 1_700_000_000_000 },
      { kind: "tombstone" as const, version: 4, freshUntil: 0 },
    ];
    for (const entry of entries) expect(decodeEntry(encodeEntry(entry))).toEqual(entry);
    for (const bad of ["", "x1:2:", "v:2:", "v1::x", "v1", "v1:2", "vabc:2:x"])
      expect(decodeEntry(bad)).toBeNull();
    expect(() => encodeEntry({ kind: "value", version: 1.5, freshUntil: 0, value: "1" })).toThrow(TypeError);
    expect(() => encodeEntry({ kind: "value", version: 1, freshUntil: 0 })).toThrow(TypeError);
  });
});
