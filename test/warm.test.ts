/**
 * Cache warming against real Redis and PostgreSQL: on start-up from a query (only the keys it returns
 * are cached, at no more than the configured rate, and the query can change nothing), on demand over
 * HTTP and from the command line, and from the keys read most before the last shutdown, after the cache
 * lost everything.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOpsCommand } from "../src/cli/ops-commands.js";
import { parseConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";
import { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import { dropPrefix, rawEntry, until } from "./checker-support.js";
import { PG_URL, REDIS_URL, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const prefix = `sc_warm_${tag}`;
const users = `warm_users_${tag}`;
const items = `warm_items_${tag}`;
/** hot keys are remembered per keyspace name: a name of its own */
const ITEMS = `items_${tag}`;
const redis = new Redis(REDIS_URL);
let db: pg.Client;
const daemons: Daemon[] = [];

interface Progress {
  state: string;
  from: string;
  total: number | null;
  warmed: number;
  found: number;
  started_at: string;
  finished_at?: string;
  error?: string;
}

function yaml(usersWarm: string): string {
  return `
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  users:
    strategy: cache-aside
    table: ${users}
    warm: ${usersWarm}
  ${ITEMS}:
    strategy: read-through
    table: ${items}
    warm: { from: hot, limit: 5, on_start: true }
`;
}

async function start(usersWarm: string): Promise<Daemon> {
  const config = parseConfig(yaml(usersWarm), "warm.yaml");
  const d = await Daemon.start(
    { ...config, server: { ...config.server, port: 0 } },
    { log: silentLogger, warm: { saveEveryMs: 200 } },
  );
  daemons.push(d);
  return d;
}

const cached = async (ks: string, key: string) => (await rawEntry(redis, prefix, ks, key))?.kind;

async function progress(d: Daemon, ks: string): Promise<Progress> {
  const r = await call(d.url, "GET", `/v1/keyspaces/${ks}/warm`);
  expect(r.status, r.text).toBe(200);
  return r.json() as Progress;
}

async function finished(d: Daemon, ks: string): Promise<Progress> {
  return (await until(async () => {
    const p = await progress(d, ks);
    return p.state !== "running" ? p : undefined;
  }, `warming of ${ks}`))!;
}

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  for (const t of [users, items]) {
    await db.query(
      `create table ${t} (key text collate "C" primary key, value jsonb not null, version bigint not null,
       updated_at timestamptz not null default now())`,
    );
  }
  // 40 users, every other one a VIP; 20 items.
  await db.query(
    `insert into ${users} (key, value, version) select 'u' || i, jsonb_build_object('vip', i % 2 = 0), 1000 + i
     from generate_series(1, 40) i`,
  );
  await db.query(
    `insert into ${items} (key, value, version) select 'i' || i, jsonb_build_object('n', i), 1000 + i
     from generate_series(1, 20) i`,
  );
});

afterAll(async () => {
  for (const d of daemons) await d.stop();
  await db.query(`drop table if exists ${users}, ${items}`);
  await db.query(`delete from sidecache_tombstones where tbl = any($1)`, [[users, items]]);
  await db.query(`delete from sidecache_hot_keys where keyspace = $1`, [ITEMS]);
  await db.end();
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

describe("cache warming", () => {
  it("on start-up fills the cache with the keys its query returns, at no more than its rate", async () => {
    const d = await start(
      `{ from: query, query: "select key from ${users} where value->>'vip' = 'true' order by key", rate: 40, batch: 5 }`,
    );
    const p = await finished(d, "users");
    expect(p).toMatchObject({ state: "done", from: "query", total: 20, warmed: 20, found: 20 });
    // 20 keys at 40 per second, the first batch of 5 at once: at least (20 - 5) / 40 s.
    const took = Date.parse(p.finished_at!) - Date.parse(p.started_at);
    expect(took).toBeGreaterThanOrEqual(375 - 20);
    expect(await cached("users", "u2")).toBe("v");
    expect(await cached("users", "u40")).toBe("v");
    expect(await cached("users", "u1")).toBeUndefined();
    // The first read of a warmed key is a hit; of another, a miss.
    expect((await call(d.url, "GET", "/v1/kv/users/u2")).headers["x-cache"]).toBe("HIT");
    expect((await call(d.url, "GET", "/v1/kv/users/u3")).headers["x-cache"]).toBe("MISS");

    // On demand, over HTTP: bad requests change nothing.
    expect((await call(d.url, "POST", "/v1/keyspaces/users/warm", { from: "cold" })).status).toBe(400);
    expect((await call(d.url, "POST", "/v1/keyspaces/users/warm", { limit: 0 })).status).toBe(400);
    expect((await call(d.url, "POST", "/v1/keyspaces/users/warm", { keys: [] })).status).toBe(400);
    expect((await call(d.url, "DELETE", "/v1/keyspaces/users/warm")).status).toBe(405);
    const again = await call(d.url, "POST", "/v1/keyspaces/users/warm", { limit: 3 });
    expect(again.status).toBe(202);
    expect(await finished(d, "users")).toMatchObject({ state: "done", total: 3, warmed: 3 });
    await d.stop();
  });

  it("runs the query read-only: a query that writes fails and changes nothing", async () => {
    await db.query(`create sequence ${users}_seq`);
    const d = await start(
      `{ from: query, query: "select key from ${users} where nextval('${users}_seq') > 0" }`,
    );
    const p = await finished(d, "users");
    expect(p.state).toBe("failed");
    expect(p.error).toMatch(/read-only transaction/);
    const seq = await db.query(`select last_value, is_called from ${users}_seq`);
    expect(seq.rows[0].is_called).toBe(false);
    await db.query(`drop sequence ${users}_seq`);
    await d.stop();
  });

  it("from the keys read most before the last shutdown, after the cache lost everything", async () => {
    const d = await start(`{ from: query, query: "select key from ${users}", on_start: false }`);
    // Reads with a clear ranking: i1 read 10 times, i2 9 times ... i10 once.
    for (let i = 1; i <= 10; i++) {
      for (let n = 0; n < 11 - i; n++) await call(d.url, "GET", `/v1/kv/${ITEMS}/i${i}`);
    }
    await d.stop(); // saves the hot keys
    const saved = await db.query(
      `select key from sidecache_hot_keys where keyspace = $1 order by hits desc, key`,
      [ITEMS],
    );
    expect(saved.rows.map((r) => r.key)).toEqual(["i1", "i2", "i3", "i4", "i5"]);

    await dropPrefix(redis, prefix); // Redis restarted empty
    const next = await start(`{ from: query, query: "select key from ${users}", on_start: false }`);
    expect(await finished(next, ITEMS)).toMatchObject({ state: "done", from: "hot", total: 5, found: 5 });
    for (const k of ["i1", "i2", "i3", "i4", "i5"]) expect(await cached(ITEMS, k)).toBe("v");
    expect(await cached(ITEMS, "i6")).toBeUndefined();
    // Not warmed on start: users was not asked to.
    expect((await call(next.url, "GET", "/v1/keyspaces/users/warm")).status).toBe(404);

    // From the command line, waiting for the end.
    let out = "";
    const code = await runOpsCommand(
      ["warm"],
      { keyspace: "users", limit: "7", wait: true },
      { out: (t) => (out += t), err: (t) => (out += t), env: { SIDECACHE_URL: next.url } },
    );
    expect(code, out).toBe(0);
    expect(out.trim().split("\n").at(-1)).toBe("users: done, 7/7 keys warmed from query (7 found)");
    let usage = "";
    expect(
      await runOpsCommand(["warm"], { from: "cold" }, { out: () => {}, err: (t) => (usage += t), env: {} }),
    ).toBe(2);
    expect(usage).toBe("sidecache: warm needs --keyspace KS\n");
  });

  it("refuses a warm: section that can not work, naming the line and field", () => {
    const bad = (warm: string) => () => parseConfig(`keyspaces:\n  users:\n    warm: ${warm}\n`, "bad.yaml");
    expect(bad("{ from: query }")).toThrow(
      /bad\.yaml:3: keyspaces\.users\.warm\.from: is query: give the query/,
    );
    expect(bad('{ from: query, query: "delete from users" }')).toThrow(ConfigError);
    expect(bad('{ from: query, query: "select 1; drop table users" }')).toThrow(/must be one SELECT/);
    expect(bad('{ from: hot, query: "select 1" }')).toThrow(/applies only to from: query/);
    expect(bad("{ from: hot, rate: 0 }")).toThrow(/warm\.rate/);
    expect(bad("{ from: cold }")).toThrow(/must be one of query, hot/);
  });
});
