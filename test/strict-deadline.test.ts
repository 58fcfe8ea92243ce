/**
 * A strict write whose deadline passes while its tombstone is on its way to a frozen Redis (SIGSTOP on a
 * private redis-server, whose calls outlast the request deadline): the client is answered 504, and once
 * Redis resumes nothing of the write reaches PostgreSQL; the key keeps serving the value written before.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const tag = uniqueTag();
const table = `${tag}_strict`;
let server: PrivateRedis;
let daemon: Daemon;
let direct: Redis;
let db: pg.Client;

beforeAll(async () => {
  server = await startPrivateRedis();
  daemon = await startDaemon(`
server: { request_deadline: 300ms }
cache: { url: ${server.url}, prefix: ${tag}, timeout: 3s }
store: { url: "${PG_URL}", pool: 4 }
checker: { enabled: false }
keyspaces:
  s: { strategy: write-through, consistency: strict, table: ${table} }
`);
  direct = new Redis(server.url);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  await daemon?.stop();
  direct?.disconnect();
  await db?.query(`drop table if exists ${table}`);
  await db?.end();
  await server?.kill();
});

describe("a strict write past its deadline before it was sent", () => {
  it("is answered 504 and never written, though its tombstone reached Redis after the deadline", async () => {
    expect((await call(daemon.url, "PUT", "/v1/kv/s/k", { v: 1 })).status).toBe(200);
    const before = (await db.query(`select value, version from ${table} where key = 'k'`)).rows[0];
    const pid = Number(/process_id:(\d+)/.exec(await direct.info("server"))![1]);
    process.kill(pid, "SIGSTOP");
    let answer;
    try {
      const started = Date.now();
      answer = await call(daemon.url, "PUT", "/v1/kv/s/k", { v: 2 });
      expect(Date.now() - started).toBeLessThan(2000);
      // frozen past the request's deadline, well within the cache's own timeout
      await new Promise((r) => setTimeout(r, 700));
    } finally {
      process.kill(pid, "SIGCONT");
    }
    expect(answer.status).toBe(504);
    expect(answer.json()).toMatchObject({ error: { code: "timeout" } });

    // The tombstone lands once Redis resumes; the write stops there, and its tombstone is taken back.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await call(daemon.url, "GET", "/v1/kv/s/k");
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({ v: 1 });
      if (r.headers["x-cache"] === "HIT") break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((res) => setTimeout(res, 100));
    }
    const after = (await db.query(`select value, version from ${table} where key = 'k'`)).rows[0];
    expect(after).toEqual(before);

    // and the key takes the next write as usual
    const next = await call(daemon.url, "PUT", "/v1/kv/s/k", { v: 3 });
    expect(next.status).toBe(200);
    expect((await call(daemon.url, "GET", "/v1/kv/s/k")).json()).toEqual({ v: 3 });
  });
});
