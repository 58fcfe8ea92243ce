/**
 * The operator commands of the command line (node dist/cmd/sidecache.js, as users run it) against a
 * running daemon with auth: keyspaces, and dead letters made for real by a CHECK constraint PostgreSQL
 * enforces, listed, dropped and replayed.
 */
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { promisify } from "node:util";
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOpsCommand, type OpsOptions } from "../src/cli/ops-commands.js";
import type { Daemon } from "../src/daemon.js";
import { dropPrefix, until } from "./checker-support.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const run = promisify(execFile);
const tag = uniqueTag();
const prefix = `sc_cli_${tag}`;
const stock = `cli_stock_${tag}`;
const users = `cli_users_${tag}`;
const ADMIN = `admin-${tag}-0123456789`;
const READER = `reader-${tag}-0123456789`;
let daemon: Daemon;
let db: pg.Client;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["dist/cmd/sidecache.js", ...args], {
      env: { ...process.env, SIDECACHE_URL: daemon.url, SIDECACHE_TOKEN: "", ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
/** The same commands in this process (fast); `cli` runs the real executable. */
async function ops(args: string[], o: OpsOptions = {}, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const code = await runOpsCommand(
    args,
    { token: ADMIN, ...o },
    { out: (t) => (stdout += t), err: (t) => (stderr += t), env: { SIDECACHE_URL: daemon.url, ...env } },
  );
  return { code, stdout, stderr };
}

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${stock} (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  daemon = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
auth:
  tokens:
    - { name: admin, token: "${ADMIN}", allow: { "*": admin } }
    - { name: reader, token: "${READER}", allow: { "*": read } }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: ${users} }
  stock:
    strategy: write-behind
    table: ${stock}
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 50ms, batch_size: 100, max_queue: 1000, max_attempts: 1 }
`);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.query(`drop table if exists ${stock}, ${users}`);
  await db?.query(`delete from sidecache_tombstones where tbl = any($1)`, [[stock, users]]);
  await db?.end();
  const redis = new Redis(REDIS_URL);
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

const auth = { authorization: `Bearer ${ADMIN}` };

describe("sidecache keyspaces", () => {
  it("prints each keyspace of the running daemon as a table, or as JSON", async () => {
    await call(daemon.url, "PUT", "/v1/kv/users/a", { a: 1 }, auth);
    await call(daemon.url, "GET", "/v1/kv/users/a", undefined, auth);
    await call(daemon.url, "GET", "/v1/kv/users/a", undefined, auth);
    const r = await cli(["keyspaces", "--token", ADMIN]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^KEYSPACE\s+STRATEGY\s+QUEUED\s+OLDEST\s+DEAD\s+HIT RATIO\s+LAST CHECK/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ["users", "cache-aside"],
      ["stock", "write-behind"],
    ]);
    expect(lines[1]).toContain("50.0%");
    const json = await ops(["keyspaces"], { json: true });
    expect(JSON.parse(json.stdout)).toMatchObject({ keyspaces: { users: { strategy: "cache-aside" } } });
    // The token may come from the environment instead of the command line.
    expect((await cli(["keyspaces"], { SIDECACHE_TOKEN: ADMIN })).code).toBe(0);
  });

  it("says what the daemon refused, or that it could not reach it, and exits 1", async () => {
    const none = await ops(["keyspaces"], { token: "" });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/GET \/v1\/keyspaces: 401 unauthorized/);
    const reader = await ops(["keyspaces"], { token: READER });
    expect(reader.code).toBe(1);
    expect(reader.stderr).toMatch(/403 forbidden: Token "reader" may not admin/);
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const away = await ops(["keyspaces"], { url: `http://127.0.0.1:${port}` });
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(/could not reach http:\/\/127\.0\.0\.1:\d+/);
    const bad = await ops(["keyspaces"], { url: "not a url" });
    expect(bad.code).toBe(2);
  });
});

describe("sidecache dead-letters", () => {
  it("lists the writes PostgreSQL refused, drops one and replays another once the table allows it", async () => {
    for (const [id, qty] of [
      ["bad", -1],
      ["worse", -2],
    ] as const) {
      expect((await call(daemon.url, "PUT", `/v1/kv/stock/${id}`, { id, qty }, auth)).status).toBe(202);
    }
    expect((await call(daemon.url, "POST", "/v1/keyspaces/stock/flush", undefined, auth)).status).toBe(200);
    const list = await until(async () => {
      const r = await ops(["dead-letters", "list"], { keyspace: "stock" });
      return r.stdout.split("\n").length === 4 ? r : undefined;
    }, "two dead letters listed");
    expect(list!.code).toBe(0);
    const lines = list!.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+KEY\s+VERSION\s+OP\s+TRIES\s+AT\s+REASON$/);
    const rows = lines.slice(1).map((l) => l.split(/\s+/));
    expect(rows.map((r) => r[1]).sort()).toEqual(['"bad"', '"worse"']);
    expect(lines[1]).toMatch(/violates check constraint/);
    const id = (key: string) => rows.find((r) => r[1] === `"${key}"`)![0]!;

    const json = await ops(["dead-letters", "list"], { keyspace: "stock", count: "1", json: true });
    expect(JSON.parse(json.stdout)).toHaveLength(1);

    const drop = await ops(["dead-letters", "drop", id("worse")], { keyspace: "stock" });
    expect(drop.code, drop.stderr).toBe(0);
    expect(drop.stdout).toBe(`${id("worse")}: dropped\n`);
    const again = await ops(["dead-letters", "drop", id("worse")], { keyspace: "stock" });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("404 not_found");

    await db.query(`alter table ${stock} drop constraint ${stock}_qty_check`);
    // The real executable, with its argument parsing.
    const replay = await cli(["dead-letters", "replay", "--keyspace", "stock", id("bad"), "--token", ADMIN]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(new RegExp(`^${id("bad")}: queued again as version \\d+\\n$`));
    expect((await call(daemon.url, "POST", "/v1/keyspaces/stock/flush", undefined, auth)).status).toBe(200);
    const row = await db.query(`select qty from ${stock} where id = 'bad'`);
    expect(row.rows[0]?.qty).toBe(-1);
    expect((await ops(["dead-letters", "list"], { keyspace: "stock" })).stdout).toBe(
      "no dead letters in stock\n",
    );
  });

  it("refuses incomplete commands with exit 2 and a clear message", async () => {
    let r = await cli(["dead-letters", "list", "--token", ADMIN]);
    expect([r.code, r.stderr]).toEqual([2, "sidecache: dead-letters needs --keyspace KS\n"]);
    r = await ops(["dead-letters", "resurrect"], { keyspace: "stock" });
    expect([r.code, r.stderr]).toEqual([2, "sidecache: dead-letters takes list, replay or drop\n"]);
    r = await ops(["dead-letters", "replay"], { keyspace: "stock" });
    expect(r.code).toBe(2);
    r = await ops(["dead-letters", "list"], { keyspace: "users" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is not write-behind");
  });
});
