/**
 * Group commit when things go wrong, made to happen for real:
 * - PostgreSQL killed (SIGKILL) while a batch is in flight: every write of the batch fails as an unknown
 *   outcome, and a write-through strict daemon settles the keys once PostgreSQL is back (readers get the
 *   committed value, and hits again);
 * - requests that time out: a write still waiting to be gathered is never written; one whose statement
 *   was in flight commits later and no reader is left on the entry it replaced.
 * Statements are held in flight by advisory locks a test session takes on their keys (the locks every
 * write takes).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgProxy } from "../bench/lib/pgproxy.js";
import { BackendUnavailableError } from "../src/errors.js";
import type { Daemon } from "../src/daemon.js";
import { isCommitUnknown } from "../src/store/errors.js";
import { createStore } from "../src/store/index.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const tag = uniqueTag();

async function lockKeys(client: pg.Client, table: string, keys: string[]): Promise<void> {
  await client.query(`select pg_advisory_lock(hashtext($1), hashtext(k)) from unnest($2::text[]) as k`, [
    table,
    keys,
  ]);
}

/** Polls until `n` sessions wait on a lock while running a write, or fails after 10 s. */
async function waitForBlocked(client: pg.Client, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await client.query(
      `select count(*)::int as n from pg_stat_activity
       where wait_event_type = 'Lock' and (query like '%sidecache_under_key_locks%' or query like '%sidecache_locked_%')`,
    );
    if (r.rows[0].n >= n) return;
    if (Date.now() > deadline) throw new Error(`only ${r.rows[0].n} writes wait on a lock, not ${n}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe("PostgreSQL killed while a batch is in flight", () => {
  let server: PrivatePostgres;
  let proxy: PgProxy;
  let raw: pg.Client;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    server = await startPrivatePostgres();
    proxy = new PgProxy({ host: "127.0.0.1", port: server.port }, 0);
    proxy.watch("writes", /sidecache_(under_key_locks|locked_)/);
    await proxy.listen();
  });

  afterAll(async () => {
    for (const d of daemons) await d.stop().catch(() => {});
    await raw?.end().catch(() => {});
    await proxy?.close();
    await server?.cleanup();
  });

  async function connectRaw(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: server.url });
    c.on("error", () => {});
    await c.connect();
    return c;
  }

  it("fails every write of the batch as an unknown outcome, at the store", async () => {
    const url = server.url.replace(`:${server.port}/`, `:${proxy.port}/`);
    const store = await createStore({ url, poolSize: 10, timeoutMs: 5_000 });
    try {
      const t = await store.table({ table: "killed_batch" });
      raw = await connectRaw();
      const held = ["held-0"];
      const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
      await lockKeys(raw, "killed_batch", [...held, ...keys]);
      const before = proxy.watched("writes");
      const blocked = held.map((k) =>
        t.write([{ key: k, value: "1" }], { minVersion: 1 }).catch((e: unknown) => e),
      );
      const batch = keys.map((k) =>
        t.write([{ key: k, value: "1" }], { minVersion: 1 }).catch((e: unknown) => e),
      );
      await waitForBlocked(raw, 2);
      // the six went out together, behind the held one
      expect(proxy.watched("writes") - before).toBe(2);
      await server.kill();
      for (const err of await Promise.all([...blocked, ...batch])) {
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect(isCommitUnknown(err), String(err)).toBe(true);
      }
    } finally {
      await store.close();
      await server.start();
    }
  });

  it("a write-through strict daemon settles the keys: readers get the committed value, then hits", async () => {
    const table = `${tag}_killed`;
    const url = server.url.replace(`:${server.port}/`, `:${proxy.port}/`);
    const d = await startDaemon(`
cache: { url: ${REDIS_URL}, prefix: ${tag}k }
store: { url: "${url}", pool: 10, timeout: 2s }
checker: { enabled: false }
keyspaces:
  s: { strategy: write-through, consistency: strict, table: ${table} }
`);
    daemons.push(d);
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    for (const k of keys) expect((await call(d.url, "PUT", `/v1/kv/s/${k}`, { v: 1 })).status).toBe(200);
    for (const k of keys) expect((await call(d.url, "GET", `/v1/kv/s/${k}`)).headers["x-cache"]).toBe("HIT");

    raw = await connectRaw();
    await lockKeys(raw, table, keys);
    const before = proxy.watched("writes");
    const puts = keys.map((k) => call(d.url, "PUT", `/v1/kv/s/${k}`, { v: 2 }));
    await waitForBlocked(raw, proxy.watched("writes") - before);
    const sent = proxy.watched("writes") - before;
    expect(sent).toBeLessThan(keys.length);
    await server.kill();
    for (const r of await Promise.all(puts)) {
      expect(r.status).toBe(503);
      expect(r.json()).toMatchObject({ error: { code: "backend_unavailable" } });
    }
    await server.start();
    // None committed: every reader gets v1, and once the keys are settled, from the cache again.
    const deadline = Date.now() + 20_000;
    for (const k of keys) {
      for (;;) {
        const r = await call(d.url, "GET", `/v1/kv/s/${k}`);
        if (r.status === 200) {
          expect(r.json()).toEqual({ v: 1 });
          if (r.headers["x-cache"] === "HIT") break;
        }
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    const check = await connectRaw();
    const rows = await check.query(`select key, value from ${table} order by key`);
    await check.end();
    expect(rows.rows.map((r) => r.value)).toEqual(keys.map(() => ({ v: 1 })));
  });
});

describe("requests that time out inside a batch", () => {
  let d: Daemon;
  let raw: pg.Client;
  const table = `${tag}_timeout`;

  beforeAll(async () => {
    d = await startDaemon(`
server: { request_deadline: 1s }
cache: { url: ${REDIS_URL}, prefix: ${tag}t }
store: { url: "${PG_URL}", pool: 10, timeout: 5s }
checker: { enabled: false }
keyspaces:
  a: { strategy: cache-aside, table: ${table} }
`);
    raw = new pg.Client({ connectionString: PG_URL });
    await raw.connect();
  });

  afterAll(async () => {
    await d?.stop();
    await raw?.query(`drop table if exists ${table}`);
    await raw?.query(`delete from sidecache_tombstones where tbl = $1`, [table]);
    await raw?.end();
  });

  it("a write still waiting to be gathered is dropped; those in flight commit and are settled", async () => {
    const inFlight = ["k1", "k2", "k3", "k4"];
    const all = [...inFlight, "k5"];
    for (const k of all) expect((await call(d.url, "PUT", `/v1/kv/a/${k}`, { v: "old" })).status).toBe(200);
    for (const k of all) {
      await call(d.url, "GET", `/v1/kv/a/${k}`);
      expect((await call(d.url, "GET", `/v1/kv/a/${k}`)).headers["x-cache"]).toBe("HIT");
    }
    await lockKeys(raw, table, inFlight);
    // One at a time, so that each is a statement of its own: four in flight, the most there may be.
    const puts = [];
    for (const [i, k] of inFlight.entries()) {
      puts.push(call(d.url, "PUT", `/v1/kv/a/${k}`, { v: "new" }));
      await waitForBlocked(raw, i + 1);
    }
    // The fifth waits to be gathered until its request's deadline.
    puts.push(call(d.url, "PUT", `/v1/kv/a/k5`, { v: "new" }));
    for (const r of await Promise.all(puts)) expect(r.status).toBe(504);
    await raw.query(`select pg_advisory_unlock_all()`);

    const rowOf = async (k: string) =>
      (await raw.query(`select value from ${table} where key = $1`, [k])).rows[0]?.value as { v: string };
    const deadline = Date.now() + 10_000;
    for (const k of inFlight) {
      while ((await rowOf(k)).v !== "new") {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((res) => setTimeout(res, 20));
      }
    }
    await new Promise((res) => setTimeout(res, 300));
    expect(await rowOf("k5")).toEqual({ v: "old" });
    // No reader is left on the entries the committed writes replaced.
    for (const k of inFlight)
      expect((await call(d.url, "GET", `/v1/kv/a/${k}`)).json()).toEqual({ v: "new" });
    expect((await call(d.url, "GET", `/v1/kv/a/k5`)).json()).toEqual({ v: "old" });
  });
});
