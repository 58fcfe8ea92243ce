/**
 * Schedules and coordination: node-cron driven by a fake clock (a leading seconds field included), two
 * daemons on one Redis running each tick once between them, a run never overlapping the next tick, and a
 * write-behind write whose queue entry is lost found as missing_write and restored.
 */
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { CheckScheduler, cronTicks, type TickSource } from "../src/checker/scheduler.js";
import type { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import type { TelemetryEvent } from "../src/telemetry.js";
import { call } from "./support/http.js";
import { clients, daemonWith, dropPrefix, PG_URL, rawEntry, REDIS_URL, until } from "./checker-support.js";

const tag = `t${randomBytes(4).toString("hex")}`;
const prefix = `sc_chks_${tag}`;
const { redis, pg } = clients();
const daemons: Daemon[] = [];
const tables: string[] = [];

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  for (const t of tables) await pg.query(`drop table if exists ${t}`);
  await pg.query(`delete from sidecache_tombstones where tbl = any($1)`, [tables]);
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await pg.end();
});

describe("node-cron schedules on a fake clock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("ticks each keyspace on its own schedule, seconds field included, and follows reloads", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    vi.setSystemTime(new Date("2030-01-01T00:00:00.500Z"));
    const ticks: { ks: string; slot: string; interval: number }[] = [];
    const scheduler = new CheckScheduler(
      (ks, slot, interval) => ticks.push({ ks, slot: slot.toISOString(), interval }),
      silentLogger,
      cronTicks,
    );
    const ks = (name: string, schedule: string, enabled = true) =>
      ({ name, checker: { schedule, enabled, sample: 1, repair: "report", alertRatio: 0 } }) as never;
    scheduler.sync([ks("fast", "*/2 * * * * *"), ks("slow", "*/1 * * * *"), ks("off", "* * * * * *", false)]);
    expect(scheduler.scheduled().sort()).toEqual(["fast", "slow"]);
    await vi.advanceTimersByTimeAsync(61_000);
    const fast = ticks.filter((t) => t.ks === "fast");
    expect(fast).toHaveLength(30);
    expect(fast[0]).toEqual({ ks: "fast", slot: "2030-01-01T00:00:02.000Z", interval: 2_000 });
    expect(new Set(fast.map((t) => t.slot)).size).toBe(30);
    expect(ticks.filter((t) => t.ks === "slow")).toEqual([
      { ks: "slow", slot: "2030-01-01T00:01:00.000Z", interval: 60_000 },
    ]);
    // A changed schedule replaces the task; a removed keyspace stops ticking.
    ticks.length = 0;
    scheduler.sync([ks("fast", "*/10 * * * * *")]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(ticks.map((t) => t.ks)).toEqual(["fast", "fast", "fast"]);
    scheduler.stop();
    ticks.length = 0;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(ticks).toEqual([]);
  });
});

/** A tick source the test fires by hand, the same slot on every daemon, as their clocks would. */
function handTicks(): { source: TickSource; fire(slot: Date): void } {
  const listeners: ((slot: Date, interval: number) => void)[] = [];
  return {
    source: (_expr, onTick) => {
      listeners.push(onTick);
      return { stop: () => listeners.splice(listeners.indexOf(onTick), 1) };
    },
    fire: (slot) => listeners.forEach((l) => l(slot, 1_000)),
  };
}

describe("several daemons on one Redis", () => {
  it("run each schedule tick once between them, and never overlap", async () => {
    const table = `chks_${tag}`;
    tables.push(table);
    const yaml = `
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
checker: { schedule: "* * * * * *", sample: 20 }
keyspaces:
  users: { strategy: cache-aside, table: ${table} }
`;
    const ticks = handTicks();
    const runs: string[] = [];
    for (const name of ["a", "b", "c"]) {
      const d = await daemonWith(yaml, { ticks: ticks.source });
      daemons.push(d);
      d.telemetry.subscribe((e: TelemetryEvent) => {
        if (e.type === "consistency_check") runs.push(name);
      });
    }
    const [a] = daemons;
    for (let i = 0; i < 5; i++) await call(a!.url, "PUT", `/v1/kv/users/k${i}`, { i });
    const base = Date.parse("2030-01-01T00:00:00Z");
    for (let s = 1; s <= 6; s++) {
      ticks.fire(new Date(base + s * 1000));
      // a daemon whose clock fires late sees the tick taken
      ticks.fire(new Date(base + s * 1000));
      await until(() => runs.length >= s, `run of tick ${s}`);
    }
    // Give a wrong second run every chance to show up.
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toHaveLength(6);
    const who = daemons.map((d) => d.keyspaces.get("users")!.lastCheck).filter(Boolean);
    expect(who.length).toBeGreaterThanOrEqual(1);

    // A run still going on (held lease) makes the next tick skip rather than overlap.
    const held = await redis.set(`${prefix}:checker:{users}:running`, "someone", "PX", 5_000, "NX");
    expect(held).toBe("OK");
    ticks.fire(new Date(base + 100_000));
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toHaveLength(6);
    await redis.del(`${prefix}:checker:{users}:running`);
    ticks.fire(new Date(base + 101_000));
    await until(() => runs.length === 7, "run after the lease is free");
  });
});

describe("write-behind", () => {
  it("skips a queued write, and finds a write whose queue entry is lost as missing_write, restored by rewrite", async () => {
    const table = `chks_wb_${tag}`;
    tables.push(table);
    const d = await daemonWith(
      `
cache: { url: "${REDIS_URL}", prefix: ${prefix}_wb }
store: { url: "${PG_URL}" }
checker: { enabled: false, repair: rewrite }
keyspaces:
  ev: { strategy: write-behind, table: ${table}, write_behind: { flush_interval: 1h } }
`,
      { limits: { lostWriteMarginMs: 300, recheckDelayMs: 20 } },
    );
    daemons.push(d);
    const put = await call(d.url, "PUT", "/v1/kv/ev/order-1", { total: 12 });
    expect(put.status).toBe(202);
    const version = (put.json() as { version: number }).version;
    const check = async () => (await call(d.url, "POST", "/v1/keyspaces/ev/check", { full: true })).json();
    // Queued, not in PostgreSQL yet: skipped, also once older than the margin (its queue entry is there).
    expect(await check()).toMatchObject({ inconsistent: 0, skipped: 1 });
    await new Promise((r) => setTimeout(r, 400));
    expect(await check()).toMatchObject({ inconsistent: 0, skipped: 1 });

    // The queue loses the entry (the cache entry and the pending write survive).
    const stream = `${prefix}_wb:wb:{ev}:stream`;
    const entries = await redis.xrange(stream, "-", "+");
    expect(entries).toHaveLength(1);
    await redis.xdel(stream, entries[0]![0]);
    await new Promise((r) => setTimeout(r, 400));
    const report = await check();
    expect(report).toMatchObject({ inconsistent: 1, by_kind: { missing_write: 1 }, repaired: 1 });
    const row = await pg.query(`select value, version from ${table} where key = 'order-1'`);
    expect(row.rows[0]).toEqual({ value: { total: 12 }, version: String(version) });
    expect((await rawEntry(redis, `${prefix}_wb`, "ev", "order-1"))!.version).toBe(version);
    expect(await check()).toMatchObject({ inconsistent: 0, skipped: 0 });
  });
});
