/**
 * Regression: an entry past its TTL is kept for stale_grace, and a refill of the same (unchanged) row used to
 * be refused as "not newer", so every read of a hot key missed until the grace ran out.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
let daemon: Daemon;
let db: pg.Client;

beforeAll(async () => {
  daemon = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  ca: { strategy: cache-aside, table: ${tag}_ca, ttl: 300ms, ttl_jitter: 0, stale_grace: 1m }
  rt: { strategy: read-through, table: ${tag}_rt, ttl: 600ms, refresh_ahead: 400ms, ttl_jitter: 0, stale_grace: 1m }
`);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  for (const t of ["ca", "rt"]) {
    await db.query(
      `insert into ${tag}_${t} (key, value, version, updated_at) values ('k', '{"n":1}', 5, now())`,
    );
  }
});

afterAll(async () => {
  await daemon?.stop();
  await db?.query(`drop table if exists ${tag}_ca, ${tag}_rt`);
  await db?.end();
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("cache-aside: after the TTL, one MISS refills the unchanged row and the reads after it HIT", async () => {
  expect((await call(daemon.url, "GET", "/v1/kv/ca/k")).headers["x-cache"]).toBe("MISS");
  expect((await call(daemon.url, "GET", "/v1/kv/ca/k")).headers["x-cache"]).toBe("HIT");
  await sleep(400);
  const after = [];
  for (let i = 0; i < 5; i++) after.push((await call(daemon.url, "GET", "/v1/kv/ca/k")).headers["x-cache"]);
  expect(after).toEqual(["MISS", "HIT", "HIT", "HIT", "HIT"]);
});

it("read-through: a key read steadily past several TTLs keeps hitting (refresh ahead renews it)", async () => {
  await call(daemon.url, "GET", "/v1/kv/rt/k");
  const seen: string[] = [];
  const end = Date.now() + 2_000;
  while (Date.now() < end) {
    seen.push(String((await call(daemon.url, "GET", "/v1/kv/rt/k")).headers["x-cache"]));
    await sleep(50);
  }
  expect(seen.length).toBeGreaterThan(20);
  expect(seen.filter((s) => s !== "HIT")).toEqual([]);
});
