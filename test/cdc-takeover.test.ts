/**
 * Change data capture across daemon deaths, with daemons as child processes killed for real: the slot's
 * reader SIGKILLed before and after it applied a transaction, another daemon taking over; every daemon
 * down while rows change, then one coming back; a slot invalidated by max_slot_wal_keep_size while they
 * were down. Each test prints how long a reader waited to see the change.
 */
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLsn } from "../src/cdc/wire.js";
import { cdcYaml, metric, RedisPeek, slotState, sqlClient, waitFor } from "./support/cdc.js";
import { spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call, type Reply } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const tag = uniqueTag();
const table = `${tag}_users`;
const slot = `${tag}_slot`;
let server: PrivatePostgres;
let db: pg.Client;
let peek: RedisPeek;
const children: ChildDaemon[] = [];

function yaml(): string {
  return cdcYaml({
    storeUrl: server.url,
    prefix: tag,
    slot,
    publication: `${tag}_pub`,
    keyspaces: { users: ["strategy: cache-aside", `table: ${table}`] },
    logLevel: "info",
  });
}

async function spawn(): Promise<ChildDaemon> {
  const d = await spawnDaemon(yaml());
  children.push(d);
  return d;
}

const get = (d: ChildDaemon, key: string) => call(d.url, "GET", `/v1/kv/users/${key}`);
const metrics = async (d: ChildDaemon) => (await call(d.url, "GET", "/metrics")).text;
const isReader = async (d: ChildDaemon) => metric(await metrics(d), "sidecache_cdc_reader") === 1;

async function seen(
  d: ChildDaemon,
  key: string,
  ok: (r: Reply) => boolean,
  what: string,
  from = performance.now(),
) {
  await waitFor(what, async () => ((r) => (ok(r) ? r : undefined))(await get(d, key)), 15_000);
  const ms = performance.now() - from;
  console.log(`${what}: ${ms.toFixed(1)} ms`);
  return ms;
}

async function walLsn(): Promise<bigint> {
  return parseLsn(String((await db.query(`select pg_current_wal_lsn()::text as l`)).rows[0].l));
}

beforeAll(async () => {
  server = await startPrivatePostgres({
    wal_level: "logical",
    max_replication_slots: 4,
    max_wal_senders: 4,
    max_slot_wal_keep_size: "1MB",
  });
  db = await sqlClient(server.url);
  peek = new RedisPeek(tag);
});

afterAll(async () => {
  await Promise.allSettled(children.map((c) => c.kill("SIGKILL")));
  await db?.end();
  await peek?.cleanup();
  await server?.cleanup();
});

describe("change data capture when daemons die", () => {
  let a: ChildDaemon;
  let b: ChildDaemon;

  it("the reader SIGKILLed before it applies a transaction: the other daemon takes over and applies it", async () => {
    const aStarted = performance.now();
    a = await spawn();
    await waitFor("a reads the slot", async () => ((await isReader(a)) ? true : undefined));
    b = await spawn();
    // a created the slot and dropped every entry; the second drop comes 5 s later (store.timeout 2 s +
    // 1 s + cache.timeout 1 s + 1 s): let it pass before caching anything
    await new Promise((r) => setTimeout(r, Math.max(0, aStarted + 5_500 - performance.now())));
    expect(await isReader(b)).toBe(false);
    await call(a.url, "PUT", "/v1/kv/users/k1", { v: 1 });
    await get(b, "k1");
    expect((await get(b, "k1")).headers["x-cache"]).toBe("HIT");

    a.process.kill("SIGSTOP");
    await db.query(`update ${table} set value = '{"v":2}' where key = 'k1'`);
    await new Promise((r) => setTimeout(r, 300));
    // the reader is frozen: the old value is still served
    const stale = await get(b, "k1");
    expect(stale.json()).toEqual({ v: 1 });
    expect(stale.headers["x-cache"]).toBe("HIT");

    const killed = performance.now();
    await a.kill("SIGKILL");
    await seen(
      b,
      "k1",
      (r) => (r.json() as { v: number }).v === 2,
      "reader killed before applying: new value seen",
      killed,
    );
    expect(await isReader(b)).toBe(true);
  });

  it("the reader SIGKILLed after applying, before confirming: the next reader applies it again, harmlessly", async () => {
    const c = await spawn();
    expect(await isReader(c)).toBe(false);
    await call(b.url, "PUT", "/v1/kv/users/k2", { v: 1 });
    await get(c, "k2");
    expect((await get(c, "k2")).headers["x-cache"]).toBe("HIT");
    const before = await walLsn();
    await db.query(`update ${table} set value = '{"v":2}' where key = 'k2'`);
    const version = Number(
      (await db.query(`select version::text as v from ${table} where key = 'k2'`)).rows[0].v,
    );
    await waitFor(
      "the reader's tombstone",
      async () => ((await peek.entry("users", "k2"))?.version === version ? true : undefined),
      5_000,
      1,
    );
    b.process.kill("SIGSTOP");
    // applied, and not yet confirmed: the transaction begins after what the slot has confirmed
    const state = await slotState(db, slot);
    expect(parseLsn(state!.confirmed)).toBeLessThanOrEqual(before);
    const invalidationsBefore = metric(await metrics(c), "sidecache_cdc_invalidations_total");
    const killed = performance.now();
    await b.kill("SIGKILL");
    await waitFor("c reads the slot", async () => ((await isReader(c)) ? true : undefined));
    await waitFor("c applied the transaction again", async () =>
      metric(await metrics(c), "sidecache_cdc_invalidations_total") > invalidationsBefore ? true : undefined,
    );
    console.log(
      `reader killed after applying: replayed by the next reader after ${(performance.now() - killed).toFixed(1)} ms`,
    );
    expect(await peek.entry("users", "k2")).toMatchObject({ version });
    expect((await get(c, "k2")).json()).toEqual({ v: 2 });
    expect((await get(c, "k2")).headers["x-cache"]).toBe("HIT");
    await c.kill("SIGKILL");
  });

  it("every daemon down while rows change: the next one resumes from the slot before it serves", async () => {
    const d = await spawn();
    for (const k of ["d1", "d2", "d3"]) {
      await db.query(`insert into ${table} (key, value) values ($1, '{"v":1}')`, [k]);
    }
    for (const k of ["d1", "d2", "d3"]) {
      await get(d, k);
      expect((await get(d, k)).headers["x-cache"]).toBe("HIT");
    }
    await d.kill("SIGKILL");
    await db.query(`update ${table} set value = '{"v":2}' where key in ('d1', 'd2')`);
    await db.query(`delete from ${table} where key = 'd3'`);
    const started = performance.now();
    const e = await spawn();
    console.log(
      `daemon down while rows changed: listening after ${(performance.now() - started).toFixed(1)} ms`,
    );
    // the very first reads, right after it listens
    expect((await get(e, "d1")).json()).toEqual({ v: 2 });
    expect((await get(e, "d2")).json()).toEqual({ v: 2 });
    expect((await get(e, "d3")).status).toBe(404);
    await e.kill("SIGTERM");
  });

  it("a slot invalidated while every daemon was down: entries dropped, the loss counted, a new slot read; then PostgreSQL restarted", async () => {
    const f = await spawn();
    await call(f.url, "PUT", "/v1/kv/users/i1", { v: 1 });
    await get(f, "i1");
    expect((await get(f, "i1")).headers["x-cache"]).toBe("HIT");
    await f.kill("SIGTERM");
    // a change made while nobody reads the slot, then WAL past max_slot_wal_keep_size and a checkpoint
    await db.query(`update ${table} set value = '{"v":2}' where key = 'i1'`);
    for (let i = 0; i < 3; i++) {
      await db.query(`create table if not exists ${tag}_filler (x text)`);
      await db.query(`insert into ${tag}_filler select repeat('x', 1000) from generate_series(1, 2000)`);
      await db.query(`select pg_switch_wal()`);
    }
    await db.query(`checkpoint`);
    const status = await db.query(`select wal_status from pg_replication_slots where slot_name = $1`, [slot]);
    expect(status.rows[0].wal_status).toBe("lost");

    const g = await spawn();
    expect(metric(await metrics(g), "sidecache_cdc_slot_lost_total", { reason: "invalidated" })).toBe(1);
    expect(g.output()).toMatch(/the replication slot was lost/);
    expect((await get(g, "i1")).json()).toEqual({ v: 2 });
    const live = await db.query(`select wal_status from pg_replication_slots where slot_name = $1`, [slot]);
    expect(live.rows[0].wal_status).not.toBe("lost");
    const changed = performance.now();
    await db.query(`update ${table} set value = '{"v":3}' where key = 'i1'`);
    await seen(g, "i1", (r) => (r.json() as { v: number }).v === 3, "update on the recreated slot", changed);
    await get(g, "i1");
    expect((await get(g, "i1")).headers["x-cache"]).toBe("HIT");

    // PostgreSQL restarted under the reader: it reconnects and resumes from the slot
    await db.end();
    await server.stop();
    await server.start();
    db = await sqlClient(server.url);
    const restarted = performance.now();
    await db.query(`update ${table} set value = '{"v":4}' where key = 'i1'`);
    await seen(
      g,
      "i1",
      (r) => r.status === 200 && (r.json() as { v: number }).v === 4,
      "update after a PostgreSQL restart",
      restarted,
    );
    expect(metric(await metrics(g), "sidecache_cdc_slot_lost_total")).toBe(1);
  });
});
