/**
 * The near cache over RESP: three daemons sharing Redis and PostgreSQL, coherent near caches; a SET through
 * one daemon's RESP port, then a GET at once through every daemon's RESP port (and over HTTP) returns the new
 * value, while repeated GETs are served from the daemons' memory. SET ... XX reads past the near cache.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { cleanupShared, plain, RawResp } from "./support/resp.js";

const tag = uniqueTag();
const tables = ["users", "wt"].map((k) => `${tag}_${k}`);
const daemons: Daemon[] = [];
const clients: RawResp[] = [];

beforeAll(async () => {
  const yaml = `
server: { resp: { port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users, near_cache: { max_entries: 1000, ttl: 30s, lease: 2s } }
  wt: { strategy: write-through, table: ${tag}_wt, near_cache: { max_entries: 1000, ttl: 30s, lease: 2s } }
`;
  for (let i = 0; i < 3; i++) daemons.push(await startDaemon(yaml));
  for (const d of daemons) clients.push(await RawResp.connect(d.respPort!));
});

afterAll(async () => {
  for (const c of clients) c.end();
  for (const d of daemons) await d.stop();
  await cleanupShared(tag, tables);
});

async function nearHits(d: Daemon): Promise<number> {
  const text = (await call(d.url, "GET", "/metrics")).text;
  let sum = 0;
  for (const m of text.matchAll(/^sidecache_near_cache_hits_total\{[^}]*\} (\d+)/gm)) sum += Number(m[1]);
  return sum;
}

describe("the near cache over RESP", () => {
  for (const ks of ["users", "wt"]) {
    it(`${ks}: a SET on one daemon is read at once on every daemon, with repeated reads from memory`, async () => {
      const before = await Promise.all(daemons.map(nearHits));
      for (let i = 0; i < 30; i++) {
        const key = `${ks}:k${i % 4}`;
        const value = `v${i}-${"é".repeat(i % 3)}`;
        expect(plain(await clients[i % 3]!.one("SET", key, value))).toBe("OK");
        for (const [j, c] of clients.entries()) {
          expect({ round: i, daemon: j, value: plain(await c.one("GET", key)) }).toEqual({
            round: i,
            daemon: j,
            value,
          });
          expect(plain(await c.one("GET", key))).toBe(value);
        }
        const http = await call(daemons[(i + 1) % 3]!.url, "GET", `/v1/kv/${ks}/k${i % 4}`);
        expect(http.json()).toBe(value);
      }
      const after = await Promise.all(daemons.map(nearHits));
      after.forEach((n, j) => expect(n, `near hits on daemon ${j}`).toBeGreaterThan(before[j]!));
    });
  }

  it("SET ... XX and DEL on one daemon see a write made through another at once", async () => {
    expect(plain(await clients[0]!.one("SET", "users:x", "first"))).toBe("OK");
    expect(plain(await clients[1]!.one("GET", "users:x"))).toBe("first");
    expect(plain(await clients[1]!.one("GET", "users:x"))).toBe("first"); // in daemon 1's memory
    expect(plain(await clients[2]!.one("SET", "users:x", "second"))).toBe("OK");
    expect(plain(await clients[1]!.one("SET", "users:x", "third", "XX", "GET"))).toBe("second");
    expect(plain(await clients[0]!.one("DEL", "users:x"))).toBe(1);
    for (const c of clients) expect(plain(await c.one("GET", "users:x"))).toBe(null);
  });
});
