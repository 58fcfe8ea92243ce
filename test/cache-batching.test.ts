/**
 * The cache side of concurrent requests, counted where Redis receives it (a private redis-server's command
 * statistics, which no other test touches): the cache writes of concurrent writes go out together (one
 * script call for many entries) and each entry still ends as the write that made it; the cache reads of
 * concurrent hits go out together (one MGET) and each request gets its own key's value.
 */
import { Agent } from "node:http";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { keepAliveSender } from "./support/http.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";

const tag = uniqueTag();
const KEYSPACES = {
  strict: "{ strategy: write-through, consistency: strict",
  eventual: "{ strategy: write-through, consistency: eventual",
  aside: "{ strategy: cache-aside",
} as const;
type Ks = keyof typeof KEYSPACES;

let server: PrivateRedis;
let daemon: Daemon;
let redis: Redis;
let db: pg.Client;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const send = keepAliveSender(agent);

beforeAll(async () => {
  server = await startPrivateRedis();
  const keyspaces = Object.entries(KEYSPACES)
    .map(([name, spec]) => `  ${name}: ${spec}, table: ${tag}_${name}, ttl: 1m }`)
    .join("\n");
  daemon = await startDaemon(`
cache: { url: ${server.url}, prefix: ${tag} }
store: { url: "${PG_URL}", pool: 10 }
checker: { enabled: false }
keyspaces:
${keyspaces}
`);
  redis = new Redis(server.url);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  agent.destroy();
  await daemon?.stop();
  for (const ks of Object.keys(KEYSPACES)) await db?.query(`drop table if exists ${tag}_${ks}`);
  await db?.end();
  redis?.disconnect();
  await server?.stop();
});

/** Calls of these commands Redis ran, from its command statistics. */
async function calls(...commands: string[]): Promise<number> {
  const info = await redis.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm))
    if (commands.includes(m[1]!)) n += Number(m[2]);
  return n;
}

const scriptCalls = () => calls("evalsha", "eval");

describe("the cache side of concurrent writes, counted at Redis", () => {
  for (const ks of Object.keys(KEYSPACES) as Ks[]) {
    it(`${ks}: 400 writes from 50 connections share script calls; each key ends at its last write`, async () => {
      const before = await scriptCalls();
      const last = new Map<string, number>();
      await Promise.all(
        Array.from({ length: 50 }, async (_, c) => {
          for (let i = 0; i < 8; i++) {
            const key = `k${c}`;
            const r = await send(daemon.url, "PUT", `/v1/kv/${ks}/${key}`, { c, i });
            expect(r.status).toBe(200);
            last.set(key, r.etag);
          }
        }),
      );
      const calls = (await scriptCalls()) - before;
      // One call per entry would be 800 (strict: a tombstone before, the value after) or 400.
      const entries = ks === "strict" ? 800 : 400;
      expect(calls).toBeGreaterThan(0);
      expect(calls / entries).toBeLessThan(0.5);

      // What each key holds in Redis: the entry its last acknowledged write left.
      for (const [key, version] of last) {
        const text = await redis.get(`${tag}:kv:{${ks}}:${key}`);
        expect(text).not.toBeNull();
        const entry = decodeEntry(text!)!;
        expect(entry.version).toBe(version);
        expect(entry.kind).toBe(ks === "aside" ? "tombstone" : "value");
        if (ks !== "aside") expect(JSON.parse(entry.value!)).toEqual({ c: Number(key.slice(1)), i: 7 });
      }
    });
  }
});

describe("the cache side of concurrent hits, counted at Redis", () => {
  it("200 concurrent hits of 200 keys share MGETs; each answers its own key's value and version", async () => {
    const versions = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const r = await send(daemon.url, "PUT", `/v1/kv/eventual/hit-${i}`, { i });
      expect(r.status).toBe(200);
      versions.set(`hit-${i}`, r.etag);
    }
    const before = await calls("get", "mget");
    const answers = await Promise.all(
      [...versions.keys()].map((key) => send(daemon.url, "GET", `/v1/kv/eventual/${key}`)),
    );
    const reads = (await calls("get", "mget")) - before;
    answers.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text)).toEqual({ i });
      expect(r.etag).toBe(versions.get(`hit-${i}`));
    });
    expect(reads).toBeGreaterThan(0);
    expect(reads / 200).toBeLessThan(0.5);
  });
});
