/**
 * Redis goes away under a running daemon (a private redis-server): killed and restarted empty, and frozen
 * (SIGSTOP) then resumed with its old data. Reads fall back to PostgreSQL, cache-aside, write-around and
 * write-through eventual keep writing, write-through strict refuses, /readyz names the cache, recovery
 * needs nobody, and no read after a write is acknowledged returns an older value.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import type { CacheEntry } from "../src/cache/adapter.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const tag = uniqueTag();
const KEYSPACES = ["aside", "around", "wts", "wte"] as const;
let server: PrivateRedis;
let daemon: Daemon;
let db: pg.Client;
let base: string;
/** the last version acknowledged per keyspace/key, and its value */
const acked = new Map<string, { version: number; n: number }>();

async function put(ks: string, key: string, n: number) {
  const r = await call(base, "PUT", `/v1/kv/${ks}/${key}`, { n });
  if (r.status === 200) acked.set(`${ks}/${key}`, { version: (r.json() as { version: number }).version, n });
  return r;
}

async function row(ks: string, key: string): Promise<{ n: number; version: number } | undefined> {
  const r = await db.query(`select value, version from ${tag}_${ks} where key = $1`, [key]);
  const first = r.rows[0] as { value: { n: number }; version: string } | undefined;
  return first && { n: first.value.n, version: Number(first.version) };
}

async function cached(client: Redis, ks: string, key: string): Promise<CacheEntry | null> {
  const text = await client.get(`${tag}:kv:{${ks}}:${key}`);
  return text === null ? null : decodeEntry(text);
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every read returns the last acknowledged value of its key, or one acknowledged after the read began. */
async function readBack(ks: string, key: string): Promise<string> {
  const before = acked.get(`${ks}/${key}`)!;
  const r = await call(base, "GET", `/v1/kv/${ks}/${key}`);
  expect(r.status, `${ks}/${key}`).toBe(200);
  expect((r.json() as { n: number }).n, `${ks}/${key}`).toBeGreaterThanOrEqual(before.n);
  expect(Number(String(r.headers.etag).replace(/"/g, "")), `${ks}/${key}`).toBeGreaterThanOrEqual(
    before.version,
  );
  return String(r.headers["x-cache"]);
}

beforeAll(async () => {
  server = await startPrivateRedis();
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  daemon = await startDaemon(`
cache: { url: ${server.url}, prefix: ${tag}, timeout: 300ms, breaker: { failures: 3, cooldown: 300ms } }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  around: { strategy: write-around, table: ${tag}_around }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte }
`);
  base = daemon.url;
});

afterAll(async () => {
  await daemon?.stop();
  for (const ks of KEYSPACES) await db?.query(`drop table if exists ${tag}_${ks}`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  await server?.kill();
});

/** Writes n to every keyspace's key and reads it twice, so each entry is cached. */
async function warm(key: string, n: number): Promise<void> {
  for (const ks of KEYSPACES) {
    expect((await put(ks, key, n)).status).toBe(200);
    await call(base, "GET", `/v1/kv/${ks}/${key}`);
    expect(await readBack(ks, key)).toBe("HIT");
  }
}

/** The strict write goes first, so its cache update is the one that meets the outage (the breaker is closed). */
async function writesDuringOutage(key: string, n: number): Promise<void> {
  const before = await row("wts", key);
  const r = await call(base, "PUT", `/v1/kv/wts/${key}`, { n });
  expect(r.status).toBe(503);
  expect(r.json()).toMatchObject({ error: { code: "backend_unavailable" } });
  expect(await row("wts", key)).toEqual(before);
  for (const ks of ["aside", "around", "wte"]) {
    const w = await put(ks, key, n);
    expect(w.status, ks).toBe(200);
    expect((await row(ks, key))!.n).toBe(n);
  }
}

describe("Redis killed and restarted", () => {
  it("falls back to PostgreSQL, keeps the writes that do not need the cache, and recovers by itself", async () => {
    await warm("k", 1);
    await server.kill();

    for (const ks of KEYSPACES) expect(await readBack(ks, "k")).toBe("MISS");
    await writesDuringOutage("k", 2);
    for (const ks of KEYSPACES) expect(await readBack(ks, "k")).toBe("MISS");
    const ready = await call(base, "GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.json()).toMatchObject({ status: "unavailable", checks: { cache: "down", store: "up" } });

    await server.start();
    await until(
      "the cache to be ready again",
      async () => (await call(base, "GET", "/readyz")).status === 200,
    );
    await until("reads to hit the cache again", async () => {
      for (const ks of KEYSPACES) await readBack(ks, "k");
      const states = await Promise.all(KEYSPACES.map((ks) => readBack(ks, "k")));
      return states.every((s) => s === "HIT");
    });
    expect((await put("wts", "k", 3)).status).toBe(200);
    expect(await readBack("wts", "k")).toBe("HIT");
  });
});

describe("Redis frozen, then resumed with its old data", () => {
  it("never hides a write acknowledged while it hung behind the entry it had", async () => {
    await warm("f", 10);
    const direct = new Redis(server.url);
    const pid = Number(/process_id:(\d+)/.exec(await direct.info("server"))![1]);
    try {
      process.kill(pid, "SIGSTOP");
      await writesDuringOutage("f", 11);
      for (const ks of KEYSPACES) expect(await readBack(ks, "f")).toBe("MISS");
      const ready = await call(base, "GET", "/readyz");
      expect(ready.status).toBe(503);
      expect(ready.json()).toMatchObject({ checks: { cache: "down", store: "up" } });
    } finally {
      process.kill(pid, "SIGCONT");
    }

    // Read all the while the cache comes back with what it held before.
    const deadline = Date.now() + 4_000;
    let hits = 0;
    while (Date.now() < deadline) {
      for (const ks of KEYSPACES) if ((await readBack(ks, "f")) === "HIT") hits++;
      // The strict write was refused: its value must never be served.
      expect((await call(base, "GET", "/v1/kv/wts/f")).json()).toEqual({ n: 10 });
    }
    expect(hits).toBeGreaterThan(0);

    // In the end the cache holds the version PostgreSQL has, or nothing a read would serve.
    for (const ks of KEYSPACES) {
      const entry = await cached(direct, ks, "f");
      const stored = (await row(ks, "f"))!;
      if (entry?.kind === "value") expect(entry.version, ks).toBe(stored.version);
      else if (entry) expect(entry.version, ks).toBeGreaterThanOrEqual(stored.version);
    }
    expect((await row("wts", "f"))!.n).toBe(10);
    direct.disconnect();
  });
});
