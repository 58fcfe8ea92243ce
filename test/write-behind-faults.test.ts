/** write-behind under faults: PostgreSQL down for a while, and a daemon that dies with writes claimed. */
import { afterAll, describe, expect, it } from "vitest";
import { BackendUnavailableError } from "../src/errors.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";
import { until, wbHarness, type WbHarness } from "./support/write-behind.js";

describe("write-behind with PostgreSQL down", () => {
  let pgServer: PrivatePostgres | undefined;
  let h: WbHarness | undefined;
  afterAll(async () => {
    await h?.cleanup();
    await pgServer?.cleanup();
  });

  it("takes and serves writes while PostgreSQL is stopped, and lands them all once it is back", async () => {
    pgServer = await startPrivatePostgres();
    h = await wbHarness({
      storeUrl: pgServer.url,
      writeBehind: "{ flush_interval: 50ms, batch_size: 100, max_queue: 100000, max_attempts: 3 }",
    });
    const wb = await h.strategy();
    await wb.put("before", '"landed"', {});
    await wb.flush();
    expect((await h.row("before"))?.value).toBe("landed");

    await pgServer.stop();
    const versions = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const key = `k${i % 120}`;
      versions.set(key, (await wb.put(key, JSON.stringify({ i }), {})).version);
    }
    await wb.delete("before", {});
    // Served from the cache, and from the pending writes once the cache entries are gone.
    expect((await wb.get("k5")).found).toBe(true);
    await h.redis.del(`${h.prefix}:kv:{ev}:k5`, `${h.prefix}:kv:{ev}:before`);
    const k5 = await wb.get("k5");
    expect(k5).toMatchObject({ found: true, cache: "MISS", version: versions.get("k5") });
    expect((await wb.get("before")).found).toBe(false);
    // A key with nothing pending needs PostgreSQL: 503, not a wrong answer.
    await expect(wb.get("never-written")).rejects.toBeInstanceOf(BackendUnavailableError);
    expect((await wb.queueStatus()).depth).toBeGreaterThan(0);

    await pgServer.start();
    // The flusher resumes by itself: no flush() needed.
    await until("the queue drained", async () => (await wb.queueStatus()).depth === 0, 30_000);
    expect(await wb.flush()).toBe(0);
    for (const [key, version] of versions) expect((await h.row(key))?.version).toBe(version);
    expect((await h.row("k59"))?.value).toEqual({ i: 299 });
    expect(await h.row("before")).toBeUndefined();
    expect((await wb.queueStatus()).depth).toBe(0);
  });
});

describe("write-behind with two daemons", () => {
  let h: WbHarness | undefined;
  afterAll(async () => {
    await h?.cleanup();
  });

  it("a daemon stopped abruptly with a batch claimed: the other claims it and everything lands", async () => {
    h = await wbHarness({
      writeBehind: "{ flush_interval: 1s, batch_size: 1000, max_queue: 100000, max_attempts: 3 }",
    });
    const harness = h;
    const a = await harness.strategy();
    const b = await harness.strategy();
    const stream = `${harness.prefix}:wb:{ev}:stream`;
    const pendingAt = async (consumer: string) =>
      ((await harness.redis.xpending(stream, "flushers", "-", "+", 10_000, consumer)) as unknown[]).length;

    const last = new Map<string, number>();
    let i = 0;
    const write = async (via: typeof a) => {
      const key = `w${i % 50}`;
      last.set(key, (await via.put(key, JSON.stringify(i), {})).version);
      i++;
    };
    // Writes through both until the first daemon holds some, then it dies without draining.
    await until("a batch claimed by the first daemon", async () => {
      await write(i % 2 === 0 ? a : b);
      return (await pendingAt(a.consumer)) > 0;
    });
    await a.stop(0);
    const stranded = await pendingAt(a.consumer);
    expect(stranded).toBeGreaterThan(0);
    for (let n = 0; n < 200; n++) await write(b);

    await b.flush();
    expect(await pendingAt(a.consumer)).toBe(0);
    for (const [key, version] of last) expect((await harness.row(key))?.version).toBe(version);
    expect((await b.queueStatus()).depth).toBe(0);
  });
});

describe("write-behind with Redis down", () => {
  let redis: PrivateRedis | undefined;
  let h: WbHarness | undefined;
  afterAll(async () => {
    await h?.cleanup();
    await redis?.stop();
  });

  it("answers 503 rather than break its guarantee, and works again once Redis is back", async () => {
    redis = await startPrivateRedis();
    h = await wbHarness({
      redisUrl: redis.url,
      writeBehind: "{ flush_interval: 50ms, batch_size: 100, max_queue: 1000, max_attempts: 3 }",
    });
    const wb = await h.strategy();
    await wb.put("a", "1", {});
    await wb.flush();

    await redis.kill();
    const write = await wb.put("a", "2", {}).catch((e: unknown) => e);
    expect(write).toBeInstanceOf(BackendUnavailableError);
    expect((write as BackendUnavailableError).backend).toBe("cache");
    expect((write as BackendUnavailableError).status).toBe(503);
    // No cache and no pending writes to consult: a read could go backwards, so it is refused too.
    await expect(wb.get("a")).rejects.toBeInstanceOf(BackendUnavailableError);

    // Back empty (nothing persisted): the flusher makes its group again and the queue flows.
    await redis.start();
    await until("writes taken again", async () => {
      try {
        await wb.put("b", "3", {});
        return true;
      } catch {
        return false;
      }
    });
    await wb.flush();
    expect((await h.row("b"))?.value).toBe(3);
    expect((await h.row("a"))?.value).toBe(1);
  });
});
