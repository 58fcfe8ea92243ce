/**
 * Synchronous writes of every strategy that writes PostgreSQL at once, counted where PostgreSQL receives
 * them (a pass-through proxy that reads the wire):
 * - one client writing one key after the other: one statement per write;
 * - 50 clients at once: the writes share statements (group commit), under 0.3 statements per write;
 * - 50 concurrent writers through two daemons: every read after an acknowledged write returns it or a
 *   newer one (read your writes), and at the end PostgreSQL and the cache agree.
 */
import { Agent } from "node:http";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgProxy } from "../bench/lib/pgproxy.js";
import { decodeEntry } from "../src/cache/codec.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { keepAliveSender } from "./support/http.js";

const tag = uniqueTag();
const KEYSPACES = {
  aside: "{ strategy: cache-aside",
  around: "{ strategy: write-around",
  strict: "{ strategy: write-through, consistency: strict",
  eventual: "{ strategy: write-through, consistency: eventual",
} as const;
type Ks = keyof typeof KEYSPACES;

let proxy: PgProxy;
let daemons: Daemon[] = [];
let db: pg.Client;
let redis: Redis;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const send = keepAliveSender(agent);

beforeAll(async () => {
  const u = new URL(PG_URL);
  proxy = new PgProxy({ host: u.hostname, port: Number(u.port || 5432) }, 0);
  proxy.watch("writes", /sidecache_(under_key_locks|locked_)/);
  await proxy.listen();
  const url = `postgres://${u.username}@127.0.0.1:${proxy.port}${u.pathname}`;
  const keyspaces = Object.entries(KEYSPACES)
    .map(([name, spec]) => `  ${name}: ${spec}, table: ${tag}_${name}, ttl: 1m }`)
    .join("\n");
  const yaml = `
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: "${url}", pool: 10 }
checker: { enabled: false }
keyspaces:
${keyspaces}
`;
  daemons = [await startDaemon(yaml), await startDaemon(yaml)];
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  agent.destroy();
  for (const d of daemons) await d.stop();
  for (const ks of Object.keys(KEYSPACES)) await db?.query(`drop table if exists ${tag}_${ks}`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
  await proxy?.close();
});

/** Runs `work` and returns the write statements and all statements PostgreSQL received meanwhile. */
async function counted(work: () => Promise<void>): Promise<{ writes: number; all: number }> {
  const before = proxy.snapshot();
  await work();
  const after = proxy.snapshot();
  return {
    writes: after.watched.writes! - before.watched.writes!,
    all: after.statements - before.statements,
  };
}

describe("statements per write, counted at PostgreSQL", () => {
  for (const ks of Object.keys(KEYSPACES) as Ks[]) {
    it(`${ks}: one per write from one connection, under 0.3 from 50`, async () => {
      const base = daemons[0]!.url;
      const one = await counted(async () => {
        for (let i = 0; i < 100; i++) {
          const r = await send(base, "PUT", `/v1/kv/${ks}/one-${i % 10}`, { i });
          expect(r.status).toBe(200);
        }
      });
      expect(one.writes).toBe(100);
      // the rest is the daemons' background work (their trust sweeps)
      expect(one.all / 100).toBeLessThanOrEqual(1.2);

      const many = await counted(async () => {
        await Promise.all(
          Array.from({ length: 50 }, async (_, c) => {
            for (let i = 0; i < 8; i++) {
              const r = await send(base, "PUT", `/v1/kv/${ks}/many-${(c * 8 + i) % 200}`, { c, i });
              expect(r.status).toBe(200);
            }
          }),
        );
      });
      expect(many.all / 400).toBeLessThan(0.3);
    });
  }
});

describe("read your writes under 50 concurrent writers", () => {
  for (const ks of Object.keys(KEYSPACES) as Ks[]) {
    it(`${ks}: every read after an acknowledged write returns it or a newer one`, async () => {
      const keys = Array.from({ length: 10 }, (_, i) => `ryw-${i}`);
      const newest = new Map(keys.map((k) => [k, 0]));
      const violations: string[] = [];
      await Promise.all(
        Array.from({ length: 50 }, async (_, w) => {
          for (let i = 0; i < 6; i++) {
            const key = keys[(w + i) % keys.length]!;
            const put = await send(daemons[(w + i) % 2]!.url, "PUT", `/v1/kv/${ks}/${key}`, { w, i });
            if (put.status !== 200) {
              violations.push(`PUT ${key} answered ${put.status}: ${put.text}`);
              continue;
            }
            const version = (JSON.parse(put.text) as { version: number }).version;
            if (version > newest.get(key)!) newest.set(key, version);
            const floor = newest.get(key)!;
            // read it back from both daemons: never older than the newest acknowledged so far
            for (const d of daemons) {
              const get = await send(d.url, "GET", `/v1/kv/${ks}/${key}`);
              if (get.status !== 200) violations.push(`GET ${key} answered ${get.status}`);
              else if (get.etag < floor)
                violations.push(`GET ${key} returned ${get.etag} after ${floor} was acknowledged`);
            }
          }
        }),
      );
      expect(violations).toEqual([]);
      for (const key of keys) {
        const row = (await db.query(`select value::text, version from ${tag}_${ks} where key = $1`, [key]))
          .rows[0] as { value: string; version: string };
        expect(Number(row.version)).toBe(newest.get(key));
        const text = await redis.get(`${tag}:kv:{${ks}}:${key}`);
        const entry = text === null ? null : decodeEntry(text);
        if (entry) expect(entry.version, key).toBeLessThanOrEqual(Number(row.version));
        if (entry?.kind === "value") {
          expect(entry.version, key).toBe(Number(row.version));
          expect(JSON.parse(entry.value!)).toEqual(JSON.parse(row.value));
        }
      }
    });
  }
});
