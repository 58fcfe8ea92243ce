/** write-behind against the real Redis and PostgreSQL: reads before the flush, flushing, coalescing, conditions, queue limits. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueFullError, VersionMismatchError } from "../src/errors.js";
import type { WriteBehindStrategy } from "../src/strategies/write-behind.js";
import { flushEvents, until, wbHarness, type WbHarness } from "./support/write-behind.js";

describe("write-behind", () => {
  let h: WbHarness;
  let wb: WriteBehindStrategy;
  const cacheKey = (key: string) => `${h.prefix}:kv:{ev}:${key}`;

  beforeAll(async () => {
    // A long flush interval: nothing reaches PostgreSQL unless flush() is called or a batch fills.
    h = await wbHarness({
      writeBehind: "{ flush_interval: 10s, batch_size: 500, max_queue: 100000, max_attempts: 3 }",
    });
    wb = await h.strategy();
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it("acknowledges with 202 and serves the write before PostgreSQL has it, even with the cache entry gone", async () => {
    const first = await wb.put("a", '{"n":1}', {});
    expect(first.status).toBe(202);
    expect(await wb.flush()).toBeGreaterThanOrEqual(1);
    expect(await h.row("a")).toEqual({ value: { n: 1 }, version: first.version });

    const second = await wb.put("a", '{"n":2}', {});
    expect(second.version).toBeGreaterThan(first.version);
    expect(await wb.get("a")).toMatchObject({
      found: true,
      value: '{"n":2}',
      version: second.version,
      cache: "HIT",
    });

    // Evicted before the flush: the pending write answers, never the older row.
    await h.redis.del(cacheKey("a"));
    expect((await h.row("a"))?.value).toEqual({ n: 1 });
    expect(await wb.get("a")).toMatchObject({
      found: true,
      value: '{"n":2}',
      version: second.version,
      cache: "MISS",
    });
    await h.redis.del(cacheKey("a"));
    const many = await wb.getMany(["a", "nope"]);
    expect(many.get("a")).toMatchObject({ found: true, version: second.version });
    expect(JSON.parse(many.get("a")!.value!)).toEqual({ n: 2 });
    expect((await h.row("a"))?.value).toEqual({ n: 1 });
    expect(many.get("nope")?.found).toBe(false);

    // A pending delete hides the row too.
    const del = await wb.delete("a", {});
    expect(del.status).toBe(202);
    await h.redis.del(cacheKey("a"));
    expect((await wb.get("a")).found).toBe(false);
    expect((await wb.pendingVersions(["a", "nope"])).has("a")).toBe(true);

    await wb.flush();
    expect(await h.row("a")).toBeUndefined();
    expect((await wb.get("a")).found).toBe(false);
    expect(await wb.pendingVersions(["a"])).toEqual(new Map());
  });

  it("flush() lands every write acknowledged before it, the last value of each key", async () => {
    const last = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const key = `f${i % 37}`;
      await wb.put(key, JSON.stringify({ i }), {});
      last.set(key, i);
    }
    const items = new Map([...Array(20).keys()].map((i) => [`m${i}`, JSON.stringify({ m: i })]));
    const many = await wb.putMany(items);
    expect(many.status).toBe(202);
    expect(Object.keys(many.versions)).toHaveLength(20);

    const flushed = await wb.flush();
    expect(flushed).toBeGreaterThanOrEqual(320);
    for (const [key, i] of last) expect((await h.row(key))?.value).toEqual({ i });
    for (const [key, v] of Object.entries(many.versions)) expect((await h.row(key))?.version).toBe(v);
    expect((await wb.queueStatus()).depth).toBe(0);
    expect(await h.redis.hlen(`${h.prefix}:wb:{ev}:pending`)).toBe(0);
  });

  it("coalesces: 1000 writes to 10 keys take a handful of statements", async () => {
    const before = flushEvents(h.events).length;
    const final = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const key = `c${i % 10}`;
      final.set(key, (await wb.put(key, JSON.stringify(i), {})).version);
    }
    await wb.flush();
    const flushes = flushEvents(h.events).slice(before);
    const writes = flushes.reduce((n, e) => n + e.writes, 0);
    const statements = flushes.reduce((n, e) => n + e.statements, 0);
    expect(writes).toBe(1000);
    expect(statements).toBeLessThanOrEqual(4);
    for (const [key, version] of final) expect((await h.row(key))?.version).toBe(version);
  });

  it("keeps the order of one key's put, delete and put within a batch", async () => {
    await wb.put("o", '"one"', {});
    await wb.delete("o", {});
    const last = await wb.put("o", '"three"', {});
    await wb.put("o2", '"x"', {});
    await wb.delete("o2", {});
    await wb.flush();
    expect(await h.row("o")).toEqual({ value: "three", version: last.version });
    expect(await h.row("o2")).toBeUndefined();
    expect(await h.tableStore.currentVersion("o2")).toBeGreaterThan(0);
  });

  it("checks If-Match and If-None-Match against the pending write, the cache, then PostgreSQL", async () => {
    const created = await wb.put("k", '"v1"', { ifNoneMatch: true });
    await expect(wb.put("k", '"v2"', { ifNoneMatch: true })).rejects.toBeInstanceOf(VersionMismatchError);
    await expect(wb.put("k", '"v2"', { ifMatch: created.version - 1 })).rejects.toBeInstanceOf(
      VersionMismatchError,
    );
    const updated = await wb.put("k", '"v2"', { ifMatch: created.version });

    // Only PostgreSQL knows the key now: pending gone after the flush, cache entry removed.
    await wb.flush();
    await h.redis.del(cacheKey("k"));
    await expect(wb.put("k", '"v3"', { ifMatch: created.version })).rejects.toBeInstanceOf(
      VersionMismatchError,
    );
    await h.redis.del(cacheKey("k"));
    await expect(wb.put("k", '"v3"', { ifNoneMatch: true })).rejects.toBeInstanceOf(VersionMismatchError);
    await h.redis.del(cacheKey("k"));
    const third = await wb.put("k", '"v3"', { ifMatch: updated.version });
    expect(third.version).toBeGreaterThan(updated.version);

    await wb.delete("k", { ifMatch: third.version });
    await expect(wb.put("k", '"v4"', { ifMatch: third.version })).rejects.toThrow(/does not exist/);
    await wb.put("k", '"v4"', { ifNoneMatch: true });
    await expect(wb.delete("absent-key", { ifMatch: 5 })).rejects.toBeInstanceOf(VersionMismatchError);
    await wb.flush();
    expect((await h.row("k"))?.value).toBe("v4");
  });

  it("never moves a key backwards when an older batch is replayed", async () => {
    const v1 = await wb.put("r", '"old"', {});
    const v2 = await wb.put("r", '"new"', {});
    await wb.flush();
    expect(await h.row("r")).toEqual({ value: "new", version: v2.version });
    const changed = await h.tableStore.applyVersioned([{ key: "r", value: '"old"', version: v1.version }]);
    expect(changed).toBe(0);
    await h.tableStore.applyVersioned([{ key: "r", value: null, version: v1.version }]);
    expect(await h.row("r")).toEqual({ value: "new", version: v2.version });
  });

  it("a key deleted and written again continues above its versions, also with the cache and queue state gone", async () => {
    const v1 = await wb.put("g", '"a"', {});
    await wb.delete("g", {});
    await wb.flush();
    await h.redis.del(cacheKey("g"), `${h.prefix}:wb:{ev}:clock`);
    const v3 = await wb.put("g", '"b"', {});
    expect(v3.version).toBeGreaterThan(v1.version);
    await wb.flush();
    expect(await h.row("g")).toEqual({ value: "b", version: v3.version });
  });
});

describe("write-behind queue limits and shutdown", () => {
  let h: WbHarness;
  afterAll(async () => {
    await h?.cleanup();
  });

  it("answers queue_full with Retry-After while the flusher is stopped, and takes writes again once drained", async () => {
    h = await wbHarness({
      writeBehind: "{ flush_interval: 200ms, batch_size: 2, max_queue: 5, max_attempts: 3 }",
    });
    // Not started: writes are taken while nothing drains the queue.
    const s = await h.strategy({ start: false });
    try {
      for (let i = 0; i < 5; i++) await s.put(`q${i}`, String(i), {});
      const err = await s.put("q5", "5", {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(QueueFullError);
      expect((err as QueueFullError).status).toBe(429);
      expect(Number((err as QueueFullError).headers["retry-after"])).toBeGreaterThanOrEqual(1);
      await expect(s.putMany(new Map([["q6", "6"]]))).rejects.toBeInstanceOf(QueueFullError);
      expect((await s.queueStatus()).depth).toBe(5);
      expect((await s.get("q5")).found).toBe(false);

      await s.start();
      await until("the queue drains", async () => (await s.queueStatus()).depth === 0);
      await s.put("q5", "5", {});
      await s.flush();
      for (let i = 0; i < 6; i++) expect((await h.row(`q${i}`))?.value).toBe(i);
    } finally {
      await s.stop(0);
    }
  });

  it("stop() drains the queue within its deadline, then closes", async () => {
    const d = await wbHarness({
      writeBehind: "{ flush_interval: 5s, batch_size: 1000, max_queue: 100000, max_attempts: 3 }",
    });
    try {
      const s = await d.strategy();
      for (let i = 0; i < 50; i++) await s.put(`s${i}`, String(i), {});
      expect(await d.row("s0")).toBeUndefined();
      const started = Date.now();
      await s.stop(10_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      for (let i = 0; i < 50; i++) expect((await d.row(`s${i}`))?.value).toBe(i);
      await expect(s.put("late", "1", {})).rejects.toThrow(/closed/);
    } finally {
      await d.cleanup();
    }
  });
});
