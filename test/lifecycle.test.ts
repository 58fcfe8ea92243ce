/**
 * The daemon as a child process (dist/, built by `npm test`): SIGTERM drains requests in flight and exits
 * 0, SIGHUP reloads keyspaces without dropping a keep-alive connection and refuses an invalid file, and
 * the command line validates files and prints its help.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import { PG_URL, REDIS_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call } from "./support/http.js";

const run = promisify(execFile);
const CLI = "dist/cmd/sidecache.js";
const tag = uniqueTag();
const TABLES = ["drain", "a", "b", "c"];
let db: pg.Client;
let redis: Redis;
const children: ChildDaemon[] = [];

function config(keyspaces: string): string {
  return `
server: { port: 0 }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: "${PG_URL}?application_name=${tag}", timeout: 20s }
checker: { enabled: false }
log: { level: info }
keyspaces:
${keyspaces}`;
}

async function spawn(yaml: string): Promise<ChildDaemon> {
  const d = await spawnDaemon(yaml);
  children.push(d);
  return d;
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function exitOf(d: ChildDaemon): Promise<number | null> {
  if (d.process.exitCode !== null) return Promise.resolve(d.process.exitCode);
  return new Promise((resolve) => d.process.once("exit", (code) => resolve(code)));
}

/** GET over one keep-alive agent; answers with the local port of the socket used. */
function keepAliveGet(agent: Agent, base: string, path: string) {
  const url = new URL(base);
  return new Promise<{ status: number; body: string; localPort: number; cache: string }>(
    (resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path, agent }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            localPort: req.socket?.localPort ?? 0,
            cache: String(res.headers["x-cache"]),
          }),
        );
      });
      req.on("error", reject);
      req.end();
    },
  );
}

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is built by npm test (npm run build)`).toBe(true);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  for (const c of children) await c.kill("SIGKILL");
  for (const t of TABLES) await db?.query(`drop table if exists ${tag}_${t}`);
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

describe("SIGTERM", () => {
  it("lets requests in flight finish, then exits 0", async () => {
    const d = await spawn(config(`  drain: { strategy: cache-aside, table: ${tag}_drain }`));
    for (let i = 0; i < 5; i++)
      expect((await call(d.url, "PUT", `/v1/kv/drain/k${i}`, { i })).status).toBe(200);
    // Hold the daemon's reads inside PostgreSQL: a lock no SELECT can pass until this transaction ends.
    await db.query("begin");
    await db.query(`lock table ${tag}_drain in access exclusive mode`);
    const inFlight = Array.from({ length: 5 }, (_, i) => call(d.url, "GET", `/v1/kv/drain/k${i}`));
    await until("the reads to wait on the lock", async () => {
      // Inside a transaction the activity view is a snapshot: take a new one each time.
      await db.query("select pg_stat_clear_snapshot()");
      const r = await db.query(
        `select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`,
        [tag],
      );
      return r.rows[0].n === 5;
    });
    const exited = exitOf(d);
    d.process.kill("SIGTERM");
    await until("the daemon to stop listening", async () =>
      call(d.url, "GET", "/healthz").then(
        () => false,
        () => true,
      ),
    );
    await db.query("commit");
    const replies = await Promise.all(inFlight);
    replies.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.json()).toEqual({ i });
    });
    expect(await exited).toBe(0);
    expect(d.output()).toMatch(/sidecache stopped/);
  });
});

describe("SIGHUP", () => {
  let d: ChildDaemon;
  let file: string;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    d = await spawn(
      config(`  a: { strategy: cache-aside, table: ${tag}_a, ttl: 1h }
  b: { strategy: cache-aside, table: ${tag}_b }`),
    );
    file = d.process.spawnargs[3]!;
    expect(file).toMatch(/sidecache\.yaml$/);
  });

  afterAll(() => agent.destroy());

  async function reloaded(times: number): Promise<void> {
    await until("the reload to be logged", async () => {
      const n = (d.output().match(/configuration reloaded|reload refused/g) ?? []).length;
      return n >= times;
    });
  }

  it("adds, changes and removes keyspaces on the keep-alive connection it already serves", async () => {
    expect((await call(d.url, "PUT", "/v1/kv/a/before", { a: 1 })).status).toBe(200);
    expect((await call(d.url, "PUT", "/v1/kv/b/k", { b: 1 })).status).toBe(200);
    const first = await keepAliveGet(agent, d.url, "/v1/kv/a/before");
    expect(first.status).toBe(200);
    expect((await redis.pttl(`${tag}:kv:{a}:before`)) > 60_000).toBe(true);

    writeFileSync(
      file,
      config(`  a: { strategy: cache-aside, table: ${tag}_a, ttl: 2s, ttl_jitter: 0, stale_grace: 1s }
  c: { strategy: write-through, table: ${tag}_c }`),
    );
    d.process.kill("SIGHUP");
    await reloaded(1);

    const c = await keepAliveGet(agent, d.url, "/v1/kv/c/x");
    expect(c.status).toBe(404);
    expect(JSON.parse(c.body)).toMatchObject({ error: { code: "not_found" } });
    expect((await call(d.url, "PUT", "/v1/kv/c/x", { c: 1 })).status).toBe(200);
    const cx = await keepAliveGet(agent, d.url, "/v1/kv/c/x");
    expect(JSON.parse(cx.body)).toEqual({ c: 1 });
    expect(cx.cache).toBe("HIT"); // write-through filled it

    const b = await keepAliveGet(agent, d.url, "/v1/kv/b/k");
    expect(b.status).toBe(404);
    expect(JSON.parse(b.body)).toMatchObject({ error: { code: "unknown_keyspace" } });

    expect((await call(d.url, "PUT", "/v1/kv/a/after", { a: 2 })).status).toBe(200);
    const filledAt = Date.now();
    const a = await keepAliveGet(agent, d.url, "/v1/kv/a/after");
    expect(a.cache).toBe("MISS");
    const entry = decodeEntry((await redis.get(`${tag}:kv:{a}:after`))!)!;
    expect(entry.freshUntil - filledAt).toBeLessThanOrEqual(2_000 + 50);
    expect(entry.freshUntil - filledAt).toBeGreaterThan(1_000);
    expect(await redis.pttl(`${tag}:kv:{a}:after`)).toBeLessThanOrEqual(3_000);

    // One connection all along.
    expect(new Set([first, c, cx, b, a].map((r) => r.localPort)).size).toBe(1);
  });

  it("refuses an invalid file, logs why, and keeps serving the configuration in force", async () => {
    const before = (d.output().match(/configuration reloaded|reload refused/g) ?? []).length;
    writeFileSync(file, config(`  a: { strategy: cache-aside, table: ${tag}_a, ttl: soon }`));
    d.process.kill("SIGHUP");
    await reloaded(before + 1);
    expect(d.output()).toMatch(/reload refused[^\n]*|[^\n]*reload refused/);
    expect(d.output()).toMatch(/keyspaces\.a\.ttl/);
    const c = await keepAliveGet(agent, d.url, "/v1/kv/c/x");
    expect(c.status).toBe(200);
    expect(JSON.parse(c.body)).toEqual({ c: 1 });
    expect((await call(d.url, "GET", "/readyz")).status).toBe(200);
    expect(d.process.exitCode).toBeNull();
  });
});

describe("command line", () => {
  it("validate: exit 0 on the shipped files", async () => {
    for (const file of ["config/sidecache.yaml", "config/example.yaml"]) {
      const { stdout } = await run(process.execPath, [CLI, "validate", "--config", file]);
      expect(stdout).toMatch(new RegExp(`^${file.replace(".", "\\.")}: valid`));
    }
  });

  it("validate: exit 1 naming file, line and field of a broken one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sidecache-validate-"));
    const file = join(dir, "broken.yaml");
    writeFileSync(file, "keyspaces:\n  users:\n    strategy: cache-aside\n    table: users\n    ttl: -5s\n");
    const err = await run(process.execPath, [CLI, "validate", "--config", file]).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain(`${file}:5:`);
    expect(err?.stderr).toContain("keyspaces.users.ttl");
  });

  it("--help: exit 0 with the usage", async () => {
    const { stdout } = await run(process.execPath, [CLI, "--help"]);
    expect(stdout).toMatch(/Usage:/);
    expect(stdout).toMatch(/validate/);
  });
});
