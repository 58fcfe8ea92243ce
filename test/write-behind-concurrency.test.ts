/**
 * write-behind under concurrent writers and readers on the same keys, across two daemon processes, one of
 * them SIGKILLed mid-flush and replaced: every read returns at least the last write acknowledged before it
 * began, and at the end PostgreSQL and the cache hold the last acknowledged write of every key.
 */
import { existsSync } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEntry } from "../src/cache/codec.js";
import { PG_URL, REDIS_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const table = `wbc_${tag}`;
const yaml = `
server: { port: 0 }
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  ev:
    strategy: write-behind
    table: ${table}
    write_behind: { flush_interval: 100ms, batch_size: 100, max_queue: 100000 }
`;

const WRITERS = 8;
const KEYS_PER_WRITER = 3;
const OPS_PER_WRITER = 120;

interface KeyState {
  lastPut: number; // version of the last acknowledged put
  lastIsDelete: boolean;
  deleteInFlight: boolean;
  last?: { deleted: boolean; value?: { w: number; s: number }; version?: number };
}

let daemons: ChildDaemon[] = [];
let db: pg.Client;
let redis: Redis;

beforeAll(async () => {
  if (!existsSync("dist/cmd/sidecache.js")) throw new Error("run `npm run build` first (npm test does)");
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  for (const d of daemons) await d.kill("SIGKILL");
  await db?.query(`drop table if exists ${table}`);
  await db?.query(`delete from sidecache_tombstones where tbl = $1`, [table]).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

describe("write-behind: concurrent writers and readers, two daemons, one killed", () => {
  it("never reads older than an acknowledged write and ends with PostgreSQL and the cache equal to the last one", async () => {
    const a = await spawnDaemon(yaml);
    const b = await spawnDaemon(yaml);
    daemons = [a, b];
    let live = [a, b];
    const state = new Map<string, KeyState>();
    const violations: string[] = [];
    let writesDone = 0;
    let reads = 0;

    const pick = () => live[Math.floor(Math.random() * live.length)]!;
    const key = (w: number, i: number) => `k${w}-${i}`;
    for (let w = 0; w < WRITERS; w++)
      for (let i = 0; i < KEYS_PER_WRITER; i++)
        state.set(key(w, i), { lastPut: 0, lastIsDelete: false, deleteInFlight: false });

    // Retries an op on a live daemon until one acknowledges it (a killed daemon's answer never came).
    async function acked(method: string, path: string, body?: unknown) {
      for (;;) {
        try {
          const r = await call(pick().url, method, path, body);
          if (r.status === 202) return r;
          throw new Error(`unexpected ${r.status} ${r.text}`);
        } catch (err) {
          if (!/ECONNREFUSED|ECONNRESET|socket hang up/.test(String(err))) throw err;
        }
      }
    }

    async function writer(w: number) {
      for (let s = 0; s < OPS_PER_WRITER; s++) {
        const k = key(w, s % KEYS_PER_WRITER);
        const st = state.get(k)!;
        if (s % 10 === 9) {
          st.deleteInFlight = true;
          const r = await acked("DELETE", `/v1/kv/ev/${k}`);
          // the 202 of a write-behind delete carries the version it was queued with
          const version = (r.json() as { version: number }).version;
          if (!(version > st.lastPut)) violations.push(`${k}: delete version ${version} <= ${st.lastPut}`);
          st.deleteInFlight = false;
          st.lastIsDelete = true;
          st.last = { deleted: true };
        } else {
          const r = await acked("PUT", `/v1/kv/ev/${k}`, { w, s });
          const version = (r.json() as { version: number }).version;
          st.lastPut = Math.max(st.lastPut, version);
          st.lastIsDelete = false;
          st.last = { deleted: false, value: { w, s }, version };
        }
        writesDone++;
      }
    }

    let writing = true;
    async function reader() {
      while (writing) {
        const k = key(Math.floor(Math.random() * WRITERS), Math.floor(Math.random() * KEYS_PER_WRITER));
        const st = state.get(k)!;
        const before = { lastPut: st.lastPut, lastIsDelete: st.lastIsDelete };
        let r;
        try {
          r = await call(pick().url, "GET", `/v1/kv/ev/${k}`);
        } catch {
          continue; // the daemon was killed under this read
        }
        reads++;
        if (r.status === 200) {
          const v = Number(String(r.headers.etag).replaceAll('"', ""));
          if (v < before.lastPut) violations.push(`${k}: read version ${v} < acknowledged ${before.lastPut}`);
        } else if (r.status === 404) {
          if (before.lastPut > 0 && !before.lastIsDelete && !st.deleteInFlight && !st.lastIsDelete) {
            violations.push(`${k}: 404 after acknowledged put ${before.lastPut}`);
          }
        } else {
          violations.push(`${k}: read answered ${r.status} ${r.text}`);
        }
      }
    }

    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    const readers = Array.from({ length: 4 }, () => reader());

    // Kill daemon A mid-run, then start a replacement.
    while (writesDone < (WRITERS * OPS_PER_WRITER) / 2) await new Promise((r) => setTimeout(r, 10));
    live = [b];
    await a.kill("SIGKILL");
    const c = await spawnDaemon(yaml);
    daemons.push(c);
    live = [b, c];

    await Promise.all(writers);
    writing = false;
    await Promise.all(readers);
    expect(reads).toBeGreaterThan(100);
    expect(violations).toEqual([]);

    // Entries A held are claimed once idle; flush returns when everything acknowledged is in PostgreSQL.
    const f = await call(b.url, "POST", "/v1/keyspaces/ev/flush");
    expect(f.status).toBe(200);
    await call(c.url, "POST", "/v1/keyspaces/ev/flush");

    for (const [k, st] of state) {
      const row = (await db.query(`select value, version from ${table} where key = $1`, [k])).rows[0];
      const raw = await redis.get(`${tag}:kv:{ev}:${k}`);
      const cached = raw === null ? null : decodeEntry(raw);
      if (st.last?.deleted) {
        expect(row, k).toBeUndefined();
        if (cached) expect(cached.kind, k).not.toBe("value");
      } else {
        expect(row?.value, k).toEqual(st.last!.value);
        expect(Number(row?.version), k).toBe(st.last!.version);
        if (cached && cached.kind === "value") expect(cached.version, k).toBe(st.last!.version);
      }
    }
    const status = (await call(b.url, "GET", "/v1/keyspaces")).json() as {
      keyspaces: { ev: { queue_depth: number } };
    };
    expect(status.keyspaces.ev.queue_depth).toBe(0);
  });
});
