import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEntry } from "../src/cache/adapter.js";
import { createCache, RedisCache } from "../src/cache/index.js";
import { BackendUnavailableError } from "../src/errors.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const entry = (version: number, value: string): CacheEntry => ({
  kind: "value",
  version,
  value,
  freshUntil: Date.now() + 60_000,
});

async function rejectsFast(what: string, run: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  const err = await run().then(
    () => new Error(`${what} resolved while Redis was down`),
    (e: unknown) => e,
  );
  const ms = performance.now() - started;
  expect(err, what).toBeInstanceOf(BackendUnavailableError);
  expect((err as BackendUnavailableError).code).toBe("backend_unavailable");
  expect((err as BackendUnavailableError).backend).toBe("cache");
  expect((err as BackendUnavailableError).status).toBe(503);
  expect((err as Error).message).toMatch(/cache \(redis at redis:\/\/127\.0\.0\.1:\d+\)/);
  expect(ms, `${what} took ${ms.toFixed(0)} ms`).toBeLessThan(1000);
}

describe("Redis cache across a server crash and restart", () => {
  let server: PrivateRedis;
  let cache: RedisCache;

  beforeAll(async () => {
    server = await startPrivateRedis();
    cache = createCache({
      url: server.url,
      prefix: "restart",
      maxEntries: 1000,
      timeoutMs: 500,
    }) as RedisCache;
  });
  afterAll(async () => {
    await cache?.close();
    await server?.stop();
  });

  it("fails fast while the server is down and recovers by itself when it is back", async () => {
    expect(await cache.setIfNewer("ks", "k", entry(1, '"before"'), 60_000)).toBe(true);
    expect((await cache.get("ks", "k"))?.value).toBe('"before"');

    await server.kill();

    // the first calls may race the client noticing the closed socket; they must fail fast all the same
    for (let round = 0; round < 3; round++) {
      await rejectsFast("get", () => cache.get("ks", "k"));
      await rejectsFast("setIfNewer", () => cache.setIfNewer("ks", "k", entry(2, '"during"'), 60_000));
      await rejectsFast("ping", () => cache.ping());
      await rejectsFast("getMany", () => cache.getMany("ks", ["k", "j"]));
      await rejectsFast("sampleKeys", () => cache.sampleKeys("ks", 5));
      await rejectsFast("delete", () => cache.delete("ks", "k"));
    }

    await server.start();

    // the same adapter, not recreated, answers again within a bounded wait
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await cache.ping();
        break;
      } catch (err) {
        expect(err).toBeInstanceOf(BackendUnavailableError);
        if (Date.now() > deadline) throw new Error("the cache did not come back within 10 s", { cause: err });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // the restarted server is empty (nothing persisted), and the script is loaded again on demand
    expect(await cache.get("ks", "k")).toBeNull();
    expect(await cache.setIfNewer("ks", "k", entry(3, '"after"'), 60_000)).toBe(true);
    expect(await cache.setIfNewer("ks", "k", entry(2, '"older"'), 60_000)).toBe(false);
    expect((await cache.get("ks", "k"))?.value).toBe('"after"');
    expect(await cache.sampleKeys("ks", 5)).toEqual(["k"]);
  });

  it("close stops reconnecting, also while the server is down", async () => {
    await cache.close();
    await server.kill();
    const other = new RedisCache({ url: server.url, prefix: "restart", maxEntries: 1000, timeoutMs: 200 });
    await rejectsFast("ping of a new adapter", () => other.ping());
    await other.close();
    await rejectsFast("get after close", () => other.get("ks", "k"));
    await server.start();
    const admin = new Redis(server.url);
    try {
      // longer than the reconnect backoff cap: a closed adapter that still retried would be connected by now
      await new Promise((r) => setTimeout(r, 1500));
      const clients = (await admin.client("LIST")) as string;
      expect(clients.trim().split("\n")).toHaveLength(1);
      expect(other.client.status).not.toBe("ready");
    } finally {
      admin.disconnect();
    }
  });
});
