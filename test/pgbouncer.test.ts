/**
 * PostgreSQL through PgBouncer in transaction mode (`store.pooler: transaction`): a private pgbouncer with
 * three server connections in front of the shared PostgreSQL, and a daemon whose every statement goes
 * through it: each strategy's reads and writes, conditional writes, batches, a write-behind flush and the
 * consistency checker. A daemon that does not say it is behind a pooler is refused with what to set;
 * what a pooler in transaction mode can not carry (an in-process cache's session lock, CDC) is refused
 * when the configuration is read.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPgBouncer, type PrivatePgBouncer } from "./support/pgbouncer.js";

const tag = uniqueTag();
const STRATEGIES = {
  aside: "{ strategy: cache-aside }",
  wts: "{ strategy: write-through, consistency: strict }",
  wte: "{ strategy: write-through, consistency: eventual }",
  around: "{ strategy: write-around }",
  behind: "{ strategy: write-behind, write_behind: { flush_interval: 200ms } }",
  rt: "{ strategy: read-through }",
} as const;
const table = (ks: string) => `${tag}_${ks}`;
let bouncer: PrivatePgBouncer;
let daemon: Daemon;
let db: pg.Client;

function yaml(storeUrl: string, pooler = "pooler: transaction, "): string {
  const keyspaces = Object.entries(STRATEGIES)
    .map(([ks, s]) => `  ${ks}: ${s.slice(0, -1)}, table: ${table(ks)}, ttl: 1h }`)
    .join("\n");
  return `
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: "${storeUrl}", ${pooler}pool: 8 }
checker: { schedule: "0 0 1 1 *" }
keyspaces:
${keyspaces}
`;
}

async function adminStats(): Promise<{ xacts: number; servers: number }> {
  const admin = new pg.Client({ connectionString: bouncer.adminUrl });
  await admin.connect();
  try {
    const stats = await admin.query("SHOW STATS");
    const row = stats.rows.find((r: { database: string }) => r.database === "test");
    const servers = await admin.query("SHOW SERVERS");
    return { xacts: Number(row?.total_xact_count ?? 0), servers: servers.rowCount ?? 0 };
  } finally {
    await admin.end();
  }
}

beforeAll(async () => {
  bouncer = await startPgBouncer({ target: PG_URL, poolMode: "transaction", poolSize: 3 });
  daemon = await startDaemon(yaml(bouncer.url));
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  for (const ks of Object.keys(STRATEGIES)) await db?.query(`drop table if exists ${table(ks)}`);
  await db?.query(`delete from sidecache_tombstones where tbl like $1`, [`${tag}\\_%`]).catch(() => {});
  await db?.end();
  await bouncer?.stop();
});

const etagOf = (r: { headers: Record<string, unknown> }) => String(r.headers.etag);

describe("a daemon behind PgBouncer in transaction mode", () => {
  for (const ks of ["aside", "wts", "wte", "around", "behind"]) {
    it(`${ks}: writes, conditional writes, reads and deletes`, async () => {
      const sync = ks !== "behind";
      const created = await call(daemon.url, "PUT", `/v1/kv/${ks}/a`, { n: 1 }, { "if-none-match": "*" });
      expect(created.status, created.text).toBe(sync ? 200 : 202);
      const again = await call(daemon.url, "PUT", `/v1/kv/${ks}/a`, { n: 9 }, { "if-none-match": "*" });
      expect(again.status).toBe(412);
      const first = await call(daemon.url, "GET", `/v1/kv/${ks}/a`);
      expect(first.json()).toEqual({ n: 1 });
      const matched = await call(
        daemon.url,
        "PUT",
        `/v1/kv/${ks}/a`,
        { n: 2 },
        { "if-match": etagOf(first) },
      );
      expect(matched.status, matched.text).toBe(sync ? 200 : 202);
      const stale = await call(daemon.url, "PUT", `/v1/kv/${ks}/a`, { n: 3 }, { "if-match": etagOf(first) });
      expect(stale.status).toBe(412);
      expect((stale.json() as { error: { code: string } }).error.code).toBe("version_mismatch");
      await call(daemon.url, "GET", `/v1/kv/${ks}/a`);
      const hit = await call(daemon.url, "GET", `/v1/kv/${ks}/a`);
      expect(hit.json()).toEqual({ n: 2 });
      expect(hit.headers["x-cache"]).toBe("HIT");

      const many = await call(daemon.url, "POST", `/v1/kv/${ks}/_mset`, {
        items: { b: { n: 4 }, c: { n: 5 } },
      });
      expect(many.status, many.text).toBe(sync ? 200 : 202);
      const got = await call(daemon.url, "POST", `/v1/kv/${ks}/_mget`, { keys: ["a", "b", "c", "none"] });
      expect(got.status).toBe(200);
      expect(JSON.stringify(got.json())).toContain('"n":5');

      const gone = await call(daemon.url, "DELETE", `/v1/kv/${ks}/c`);
      expect(gone.status).toBe(sync ? 204 : 202);
      expect((await call(daemon.url, "GET", `/v1/kv/${ks}/c`)).status).toBe(404);

      if (!sync) {
        const flushed = await call(daemon.url, "POST", `/v1/keyspaces/${ks}/flush`);
        expect(flushed.status, flushed.text).toBe(200);
      }
      const rows = await db.query(`select key, value from ${table(ks)} order by key`);
      expect(rows.rows).toEqual([
        { key: "a", value: { n: 2 } },
        { key: "b", value: { n: 4 } },
      ]);
    });
  }

  it("read-through: loads rows written outside sidecache", async () => {
    await db.query(
      `insert into ${table("rt")} (key, value, version, updated_at) values ('x', '{"r": 1}', 5, now())`,
    );
    const r = await call(daemon.url, "GET", "/v1/kv/rt/x");
    expect(r.json()).toEqual({ r: 1 });
    expect((await call(daemon.url, "GET", "/v1/kv/rt/x")).headers["x-cache"]).toBe("HIT");
  });

  it("the consistency checker samples, finds and repairs", async () => {
    // a stale entry: PostgreSQL moved on behind the cache's back
    await db.query(`update ${table("aside")} set value = '{"n": 20}', version = version + 1 where key = 'a'`);
    const report = await call(daemon.url, "POST", "/v1/keyspaces/aside/check", { full: true });
    expect(report.status, report.text).toBe(200);
    expect(report.json()).toMatchObject({ keyspace: "aside", inconsistent: 1, repaired: 1 });
    expect((await call(daemon.url, "GET", "/v1/kv/aside/a")).json()).toEqual({ n: 20 });
  });

  it("every statement went through PgBouncer's three server connections", async () => {
    const { xacts, servers } = await adminStats();
    expect(xacts).toBeGreaterThan(50);
    expect(servers).toBeLessThanOrEqual(3);
  });
});

describe("what a pooler in transaction mode can not carry", () => {
  it("a daemon that does not say it is behind one is told what to set", async () => {
    await expect(startDaemon(yaml(bouncer.url, ""))).rejects.toThrow(/store\.pooler: transaction/);
  });

  it("an in-process cache and change data capture are refused when the configuration is read", () => {
    expect(() =>
      parseConfig(
        `cache: { url: "memory:" }\nstore: { url: "${bouncer.url}", pooler: transaction }\nkeyspaces:\n`,
        "t.yaml",
      ),
    ).toThrow(/store\.pooler.*session lock/);
    expect(() =>
      parseConfig(
        `cache: { url: ${REDIS_URL} }\nstore: { url: "${bouncer.url}", pooler: transaction, cdc: {} }\nkeyspaces:\n`,
        "t.yaml",
      ),
    ).toThrow(/store\.cdc.*direct connection/);
    expect(() =>
      parseConfig(`store: { url: "pglite:memory", pooler: transaction }\nkeyspaces:\n`, "t.yaml"),
    ).toThrow(/store\.pooler.*PGlite is embedded/);
  });
});
