/**
 * Concurrent writers and readers on the same keys, through two daemons sharing Redis and PostgreSQL, for
 * each strategy that writes PostgreSQL synchronously: every read returns a version at least as new as the
 * newest one acknowledged before it began (read your writes, across instances), and at the end the cache
 * and PostgreSQL agree on every key.
 */
import { Agent } from "node:http";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { keepAliveSender } from "./support/http.js";

const tag = uniqueTag();
const KEYSPACES = ["aside", "wts", "wte", "around"] as const;
const WRITERS = 20;
const WRITES = 50;
const READERS = 10;
const KEYS = ["k0", "k1", "k2", "k3", "k4"];
let daemons: Daemon[] = [];
let db: pg.Client;
let redis: Redis;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const send = keepAliveSender(agent);

beforeAll(async () => {
  const yaml = `
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL}, pool: 20 }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside, ttl: 1m }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts, ttl: 1m }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte, ttl: 1m }
  around: { strategy: write-around, table: ${tag}_around, ttl: 1m }
`;
  daemons = [await startDaemon(yaml), await startDaemon(yaml)];
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  agent.destroy();
  for (const d of daemons) await d.stop();
  for (const ks of KEYSPACES) await db?.query(`drop table if exists ${tag}_${ks}`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

describe("concurrent writers and readers", () => {
  for (const ks of KEYSPACES) {
    it(`${ks}: reads never go behind an acknowledged write; cache and PostgreSQL agree at the end`, async () => {
      /** newest version acknowledged per key, and the value written at each acknowledged version */
      const newest = new Map<string, number>(KEYS.map((k) => [k, 0]));
      const written = new Map<string, string>(); // key@version -> value
      const violations: string[] = [];
      let writersDone = false;
      let reads = 0;

      const writer = async (w: number) => {
        for (let i = 0; i < WRITES; i++) {
          const key = KEYS[(w + i) % KEYS.length]!;
          const value = `w${w}i${i}`;
          const r = await send(daemons[(w + i) % 2]!.url, "PUT", `/v1/kv/${ks}/${key}`, value);
          if (r.status !== 200) {
            violations.push(`PUT ${key} answered ${r.status}: ${r.text}`);
            continue;
          }
          const version = (JSON.parse(r.text) as { version: number }).version;
          written.set(`${key}@${version}`, JSON.stringify(value));
          if (version > newest.get(key)!) newest.set(key, version);
        }
      };
      const reader = async (n: number) => {
        let i = 0;
        while (!writersDone) {
          const key = KEYS[(n + i) % KEYS.length]!;
          const floor = newest.get(key)!;
          const r = await send(daemons[(n + i++) % 2]!.url, "GET", `/v1/kv/${ks}/${key}`);
          reads++;
          if (r.status === 404 && floor === 0) continue;
          if (r.status !== 200) violations.push(`GET ${key} answered ${r.status}: ${r.text}`);
          else if (r.etag < floor)
            violations.push(`GET ${key} returned ${r.etag} after ${floor} was acknowledged`);
          else if (written.has(`${key}@${r.etag}`) && r.text !== written.get(`${key}@${r.etag}`))
            violations.push(
              `GET ${key} at ${r.etag} returned ${r.text}, not ${written.get(`${key}@${r.etag}`)}`,
            );
        }
      };

      const readers = Array.from({ length: READERS }, (_, n) => reader(n));
      await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
      writersDone = true;
      await Promise.all(readers);
      expect(violations).toEqual([]);
      expect(reads).toBeGreaterThan(100);
      expect(written.size).toBe(WRITERS * WRITES);

      // Every write was acknowledged with its cache update done: compare every key on both sides.
      for (const key of KEYS) {
        const row = (await db.query(`select value::text, version from ${tag}_${ks} where key = $1`, [key]))
          .rows[0] as { value: string; version: string };
        expect(Number(row.version)).toBe(newest.get(key));
        const text = await redis.get(`${tag}:kv:{${ks}}:${key}`);
        const entry = text === null ? null : decodeEntry(text);
        if (entry?.kind === "value") {
          expect(entry.version, key).toBe(Number(row.version));
          expect(JSON.parse(entry.value!), key).toEqual(JSON.parse(row.value));
        } else if (entry) {
          // a tombstone of the last write: reads miss and load the row
          expect(entry.kind, key).toBe("tombstone");
          expect(entry.version, key).toBe(Number(row.version));
        }
        for (const d of daemons) {
          const r = await send(d.url, "GET", `/v1/kv/${ks}/${key}`);
          expect(r.etag).toBe(Number(row.version));
          expect(JSON.parse(r.text)).toEqual(JSON.parse(row.value));
        }
      }
    });
  }
});
