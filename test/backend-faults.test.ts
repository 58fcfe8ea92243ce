/**
 * Real faults through the daemon: a private redis-server killed and started again, a private PostgreSQL
 * frozen (SIGSTOP). The guard keeps every promise: reads fall back, strict writes refuse, nothing waits
 * past the request deadline, the breaker opens, shows in /metrics and /readyz, and closes by itself.
 */
import { Writable } from "node:stream";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const tag = uniqueTag();
let redis: PrivateRedis;
let postgres: PrivatePostgres;
let daemon: Daemon;
let db: pg.Client;
let base: string;
const logLines: string[] = [];

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function breakerState(backend: string): Promise<number> {
  const m = await call(base, "GET", "/metrics");
  const match = new RegExp(`sidecache_breaker_state\\{backend="${backend}"\\} (\\d)`).exec(m.text);
  return Number(match?.[1]);
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startPrivateRedis(), startPrivatePostgres()]);
  const yaml = `
server: { port: 0, request_deadline: 800ms }
cache: { url: ${redis.url}, prefix: ${tag}, timeout: 200ms, trust_lease: 400ms, breaker: { failures: 3, cooldown: 300ms } }
store: { url: ${postgres.url}, timeout: 3s, breaker: { failures: 3, cooldown: 300ms } }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: users }
  strict: { strategy: write-through, consistency: strict, table: strict_items }
`;
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      logLines.push(...chunk.toString().split("\n").filter(Boolean));
      done();
    },
  });
  daemon = await Daemon.start(parseConfig(yaml, "faults.yaml"), { log: pino({ level: "info" }, stream) });
  base = daemon.url;
  db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await db?.end().catch(() => {});
  await redis?.kill();
  await postgres?.cleanup();
});

describe("Redis killed and started again", () => {
  it("reads fall back to PostgreSQL, strict writes refuse, the breaker opens and closes by itself", async () => {
    expect((await call(base, "PUT", "/v1/kv/users/a", { v: 1 })).status).toBe(200);
    expect((await call(base, "PUT", "/v1/kv/strict/s", { v: 1 })).status).toBe(200);
    await redis.kill();

    for (let i = 0; i < 5; i++) {
      const r = await call(base, "GET", "/v1/kv/users/a", undefined, { "x-request-id": `fault-${i}` });
      expect(r.status).toBe(200);
      expect(r.headers["x-cache"]).toBe("MISS");
      expect(r.headers["x-request-id"]).toBe(`fault-${i}`);
      expect(r.json()).toEqual({ v: 1 });
    }
    expect(await breakerState("cache")).toBe(2);
    // Once open, the cache is not even tried: the read costs no cache timeout.
    const t0 = Date.now();
    expect((await call(base, "GET", "/v1/kv/users/a")).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(150);

    expect((await call(base, "PUT", "/v1/kv/users/a", { v: 2 })).status).toBe(200);
    const strict = await call(base, "PUT", "/v1/kv/strict/s", { v: 2 });
    expect(strict.status).toBe(503);
    expect(strict.json()).toMatchObject({ error: { code: "backend_unavailable" } });
    expect((await db.query("select value from strict_items where key = 's'")).rows[0].value).toEqual({
      v: 1,
    });

    const ready = await call(base, "GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.json()).toMatchObject({
      status: "unavailable",
      checks: { cache: "down", store: "up" },
      breakers: { cache: "open", store: "closed" },
    });
    const metrics = (await call(base, "GET", "/metrics")).text;
    expect(metrics).toMatch(
      /sidecache_backend_errors_total\{backend="cache",code="backend_unavailable"\} [1-9]/,
    );
    expect(metrics).toMatch(/sidecache_backend_errors_total\{backend="cache",code="circuit_open"\} [1-9]/);
    const failures = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === "backend call failed");
    expect(failures.some((l) => String(l.reqId).startsWith("fault-"))).toBe(true);

    await redis.start();
    // Only /metrics is asked, which calls no backend: the background probe closes the breaker.
    await until("the cache breaker closes", async () => (await breakerState("cache")) === 0);
    expect((await call(base, "GET", "/readyz")).status).toBe(200);
    expect((await call(base, "PUT", "/v1/kv/strict/s", { v: 3 })).status).toBe(200);
    expect((await call(base, "GET", "/v1/kv/strict/s")).json()).toEqual({ v: 3 });
    // Reads bypass the cache for a key while a repair of the refused write is pending; then they hit.
    await until("the new value is served from the cache", async () => {
      const r = await call(base, "GET", "/v1/kv/strict/s");
      expect(r.json()).toEqual({ v: 3 });
      return r.headers["x-cache"] === "HIT";
    });
  });
});

describe("PostgreSQL frozen", () => {
  it("no request waits past the deadline: 504 timeout; cached values are still served, as STALE once the daemon can not vouch for them", async () => {
    expect((await call(base, "PUT", "/v1/kv/users/cached", { c: 1 })).status).toBe(200);
    expect((await call(base, "GET", "/v1/kv/users/cached")).status).toBe(200); // fills the cache
    await postgres.pause();
    try {
      for (const [method, path, body] of [
        ["GET", "/v1/kv/users/uncached", undefined],
        ["PUT", "/v1/kv/users/w", { w: 1 }],
        ["POST", "/v1/kv/users/_mget", { keys: ["x", "y"] }],
      ] as const) {
        const t0 = Date.now();
        const r = await call(base, method, path, body);
        const took = Date.now() - t0;
        expect(r.status, `${method} ${path}`).toBe(504);
        expect(r.json()).toMatchObject({ error: { code: "timeout" } });
        expect(took).toBeGreaterThanOrEqual(700);
        expect(took).toBeLessThan(1500);
      }
      // PostgreSQL has not answered a repair sweep for longer than the trust lease: the entry may hide a
      // repair owed by another daemon, so it is served for what it is.
      const stale = await call(base, "GET", "/v1/kv/users/cached");
      expect(stale.status).toBe(200);
      expect(stale.headers["x-cache"]).toBe("STALE");
      expect(stale.json()).toEqual({ c: 1 });
    } finally {
      await postgres.resume();
    }
    await until(
      "writes succeed again",
      async () => (await call(base, "PUT", "/v1/kv/users/after", { ok: true })).status === 200,
    );
    expect((await call(base, "GET", "/v1/kv/users/after")).json()).toEqual({ ok: true });
  });
});
