/**
 * Fleet-wide single flight, with daemons as separate processes: 1,000 concurrent reads of a cold key spread
 * over 3 daemon processes cost one PostgreSQL read, counted by PostgreSQL itself (pg_stat_statements on a
 * private server), with PostgreSQL 25 ms away (a proxy holds each chunk) so that every read arrives while
 * the load is under way. Run `npm run build` first.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgProxy } from "../bench/lib/pgproxy.js";
import { REDIS_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const tag = uniqueTag();
const table = `${tag}_aside`;
const READS = 1_000;
let server: PrivatePostgres;
let proxy: PgProxy;
let db: pg.Client;
let daemons: ChildDaemon[] = [];

/** Statements PostgreSQL ran that read the table (the loads), as pg_stat_statements counts them. */
/** Each statement that read the table, with its count: what a failed assertion shows. */
async function statementsAtPostgres(): Promise<{ query: string; calls: number }[]> {
  const r = await db.query(
    `select query, calls::int as calls from pg_stat_statements
     where query ilike 'select%' and query like $1`,
    [`%${table}%`],
  );
  return r.rows as { query: string; calls: number }[];
}

beforeAll(async () => {
  server = await startPrivatePostgres({ shared_preload_libraries: "pg_stat_statements" });
  db = new pg.Client({ connectionString: server.url });
  await db.connect();
  await db.query("create extension if not exists pg_stat_statements");
  proxy = new PgProxy({ host: "127.0.0.1", port: server.port }, 25, [table]);
  await proxy.listen();
  // A long trust lease: a daemon starved of CPU by a thousand requests must not lapse (a daemon that can
  // not vouch for its cache reads PostgreSQL by itself; that is tested elsewhere).
  const yaml = `
server: { port: 0 }
cache: { url: ${REDIS_URL}, prefix: ${tag}, trust_lease: 10s }
store: { url: "postgres://postgres@127.0.0.1:${proxy.port}/postgres", pool: 20 }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${table}, ttl: 1h, fill_lease: 5s }
`;
  daemons = await Promise.all([spawnDaemon(yaml), spawnDaemon(yaml), spawnDaemon(yaml)]);
}, 120_000);

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.kill("SIGKILL")));
  await proxy?.close();
  await db?.end().catch(() => {});
  await server?.cleanup();
});

describe("a cold key read by three daemon processes at once", () => {
  it(`${READS} concurrent reads cost one PostgreSQL read`, async () => {
    await db.query(
      `insert into ${table} (key, value, version, updated_at) values ('fleet', '{"f": 1}', 9, now())`,
    );
    const before = await statementsAtPostgres();
    const onWire = proxy.selectsOn(table);
    const replies = await Promise.all(
      Array.from({ length: READS }, (_, i) => call(daemons[i % 3]!.url, "GET", "/v1/kv/aside/fleet")),
    );
    for (const r of replies) expect(r.json()).toEqual({ f: 1 });
    const after = await statementsAtPostgres();
    const count = (xs: { calls: number }[]) => xs.reduce((n, s) => n + s.calls, 0);
    expect(count(after), JSON.stringify({ before, after })).toBe(count(before) + 1);
    expect(proxy.selectsOn(table) - onWire).toBe(1);
    // the fill serves every daemon afterwards
    for (const d of daemons)
      expect((await call(d.url, "GET", "/v1/kv/aside/fleet")).headers["x-cache"]).toBe("HIT");
  });
});
