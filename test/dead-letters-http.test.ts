/** The dead-letter admin routes: a write PostgreSQL refuses is listed, dropped or replayed over HTTP. */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const table = `dl_${tag}`;
let daemon: Daemon;
let db: pg.Client;
let base: string;

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${table} (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  daemon = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  stock:
    strategy: write-behind
    table: ${table}
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 50ms, batch_size: 100, max_queue: 1000, max_attempts: 2 }
  users: { strategy: cache-aside, table: ${table}_users }
`);
  base = daemon.url;
});

afterAll(async () => {
  await daemon?.stop();
  await db?.query(`drop table if exists ${table}, ${table}_users`);
  await db?.end();
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

const qty = async (id: string) =>
  (await db.query(`select qty from ${table} where id = $1`, [id])).rows[0]?.qty as number | undefined;

describe("dead letters over HTTP", () => {
  it("lists a refused write, replays it once the table allows it, drops another", async () => {
    expect((await call(base, "PUT", "/v1/kv/stock/good", { id: "good", qty: 1 })).status).toBe(202);
    expect((await call(base, "PUT", "/v1/kv/stock/bad", { id: "bad", qty: -1 })).status).toBe(202);
    expect((await call(base, "PUT", "/v1/kv/stock/worse", { id: "worse", qty: -2 })).status).toBe(202);
    const flushed = await call(base, "POST", "/v1/keyspaces/stock/flush");
    expect(flushed.status).toBe(200);
    expect(await qty("good")).toBe(1);
    expect(await qty("bad")).toBeUndefined();

    const list = await call(base, "GET", "/v1/keyspaces/stock/dead-letters");
    expect(list.status).toBe(200);
    const letters = (list.json() as { dead_letters: { id: string; key: string; reason: string }[] })
      .dead_letters;
    expect(letters.map((l) => l.key).sort()).toEqual(["bad", "worse"]);
    expect(letters[0]!.reason).toMatch(/check/i);
    const ks = (await call(base, "GET", "/v1/keyspaces")).json() as {
      keyspaces: { stock: { dead_letters: number } };
    };
    expect(ks.keyspaces.stock.dead_letters).toBe(2);
    expect((await call(base, "GET", "/metrics")).text).toMatch(
      /sidecache_writebehind_dead_letters\{keyspace="stock"\} 2/,
    );

    const worse = letters.find((l) => l.key === "worse")!;
    expect((await call(base, "DELETE", `/v1/keyspaces/stock/dead-letters/${worse.id}`)).status).toBe(204);
    expect((await call(base, "DELETE", `/v1/keyspaces/stock/dead-letters/${worse.id}`)).status).toBe(404);

    await db.query(`alter table ${table} drop constraint ${table}_qty_check`);
    const bad = letters.find((l) => l.key === "bad")!;
    const replay = await call(base, "POST", `/v1/keyspaces/stock/dead-letters/${bad.id}/replay`);
    expect(replay.status).toBe(202);
    await call(base, "POST", "/v1/keyspaces/stock/flush");
    expect(await qty("bad")).toBe(-1);
    expect(await qty("worse")).toBeUndefined();
    const after = (await call(base, "GET", "/v1/keyspaces/stock/dead-letters")).json() as {
      dead_letters: unknown[];
    };
    expect(after.dead_letters).toEqual([]);
  });

  it("answers in the contract's shape for wrong ids, methods and keyspaces", async () => {
    let r = await call(base, "GET", "/v1/keyspaces/users/dead-letters");
    expect(r.status).toBe(404);
    expect(r.json()).toMatchObject({ error: { code: "not_found" } });
    r = await call(base, "DELETE", "/v1/keyspaces/stock/dead-letters/not-an-id");
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    r = await call(base, "POST", "/v1/keyspaces/stock/dead-letters/1-0/replay");
    expect(r.status).toBe(404);
    r = await call(base, "PUT", "/v1/keyspaces/stock/dead-letters");
    expect(r.status).toBe(405);
    r = await call(base, "GET", "/v1/keyspaces/stock/dead-letters?count=0");
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
  });
});
