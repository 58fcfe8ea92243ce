/**
 * The near cache under every strategy: every way a value changes drops the copies in every daemon before
 * the change is acknowledged (coherent mode). Three daemons over a private Redis, one of them 30 ms away
 * from it, so that an invalidation the writer did not wait for would reach it long after the client read:
 * writes and deletes of every strategy, write-behind's enqueue and flush, a dead letter and its replay.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateRedis, type PrivateRedis } from "./support/redis-server.js";
import { TcpDelay } from "./support/tcp-delay.js";

const tag = uniqueTag();
const STRATEGIES = {
  aside: "strategy: cache-aside",
  wts: "strategy: write-through, consistency: strict",
  wte: "strategy: write-through, consistency: eventual",
  around: "strategy: write-around",
  wb: "strategy: write-behind, write_behind: { flush_interval: 100ms }",
} as const;
const NEAR = "near_cache: { max_entries: 1000, ttl: 1m, lease: 1s }";
let redis: PrivateRedis;
let slow: TcpDelay;
let db: pg.Client;
const daemons: Daemon[] = [];
let urls: string[] = [];

function yaml(redisUrl: string): string {
  const keyspaces = Object.entries(STRATEGIES).map(
    ([ks, s]) => `  ${ks}: { ${s}, table: ${tag}_${ks}, ttl: 1h, ${NEAR} }`,
  );
  return `
cache: { url: ${redisUrl}, prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
${keyspaces.join("\n")}
  stock:
    strategy: write-behind
    table: ${tag}_stock
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 1s, max_attempts: 1 }
    ${NEAR}
`;
}

/** What readEverywhere returns when every read answered this value. */
const everywhere = (body: unknown) => urls.flatMap(() => [body, body]);

/** Reads the key at once through every daemon, twice (the second one possibly from memory). */
async function readEverywhere(ks: string, key: string): Promise<{ status: number; body: unknown }[]> {
  const out: { status: number; body: unknown }[] = [];
  for (const u of urls) {
    for (let i = 0; i < 2; i++) {
      const r = await call(u, "GET", `/v1/kv/${ks}/${key}`);
      out.push({ status: r.status, body: r.status === 200 ? r.json() : null });
    }
  }
  return out;
}

beforeAll(async () => {
  redis = await startPrivateRedis();
  slow = new TcpDelay({ host: "127.0.0.1", port: redis.port }, 30);
  await slow.listen();
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${tag}_stock (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  for (const url of [redis.url, redis.url, `redis://127.0.0.1:${slow.port}`]) {
    daemons.push(await startDaemon(yaml(url)));
  }
  urls = daemons.map((d) => d.url);
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.stop().catch(() => {});
  await slow?.close();
  await redis?.kill();
  for (const ks of [...Object.keys(STRATEGIES), "stock"])
    await db?.query(`drop table if exists ${tag}_${ks}`);
  await db?.end();
});

describe("coherent near cache, every strategy", () => {
  for (const ks of Object.keys(STRATEGIES)) {
    it(`${ks}: writes and deletes on one daemon are read at once on every daemon`, async () => {
      let fromMemory = 0;
      for (let i = 0; i < 30; i++) {
        const writer = urls[i % urls.length]!;
        const key = `k${i % 3}`;
        if (i % 5 === 4) {
          const del = await call(writer, "DELETE", `/v1/kv/${ks}/${key}`);
          expect([202, 204]).toContain(del.status);
          const seen = await readEverywhere(ks, key);
          expect({ round: i, seen: seen.map((s) => s.status) }).toEqual({
            round: i,
            seen: seen.map(() => 404),
          });
          continue;
        }
        const put = await call(writer, "PUT", `/v1/kv/${ks}/${key}`, { i });
        expect([200, 202]).toContain(put.status);
        for (const u of urls) {
          const first = await call(u, "GET", `/v1/kv/${ks}/${key}`);
          const again = await call(u, "GET", `/v1/kv/${ks}/${key}`);
          expect({ round: i, at: u, first: first.json(), again: again.json() }).toEqual({
            round: i,
            at: u,
            first: { i },
            again: { i },
          });
          if (again.headers["x-cache-tier"] === "L1") fromMemory++;
        }
      }
      // the copies were really used between the changes
      expect(fromMemory).toBeGreaterThan(30);
    }, 60_000);
  }

  it("write-behind: a dead letter and its replay change the value in every daemon at once", async () => {
    const [a] = urls;
    expect((await call(a!, "PUT", "/v1/kv/stock/s1", { id: "s1", qty: 1 })).status).toBe(202);
    expect((await call(a!, "POST", "/v1/keyspaces/stock/flush")).status).toBe(200);
    expect((await readEverywhere("stock", "s1")).map((s) => s.body)).toEqual(
      everywhere({ id: "s1", qty: 1 }),
    );

    // acknowledged, then refused by PostgreSQL for good: every daemon reads the acknowledged value until
    // the next flush (within a second) gives up on it, the first refusal being final, and what PostgreSQL
    // holds after
    expect((await call(a!, "PUT", "/v1/kv/stock/s1", { id: "s1", qty: -1 })).status).toBe(202);
    expect((await readEverywhere("stock", "s1")).map((s) => s.body)).toEqual(
      everywhere({ id: "s1", qty: -1 }),
    );
    // listed once every daemon dropped its copy of the refused value
    let letters: { id: string; key: string }[] = [];
    for (const deadline = Date.now() + 10_000; letters.length === 0;) {
      expect(Date.now()).toBeLessThan(deadline);
      letters = (
        (await call(a!, "GET", "/v1/keyspaces/stock/dead-letters")).json() as {
          dead_letters: { id: string; key: string }[];
        }
      ).dead_letters;
    }
    expect(letters.map((l) => l.key)).toEqual(["s1"]);
    expect((await readEverywhere("stock", "s1")).map((s) => s.body)).toEqual(
      everywhere({ id: "s1", qty: 1 }),
    );

    // the table allows it now: the replay is read at once everywhere
    await db.query(`alter table ${tag}_stock drop constraint ${tag}_stock_qty_check`);
    const replay = await call(a!, "POST", `/v1/keyspaces/stock/dead-letters/${letters[0]!.id}/replay`);
    expect(replay.status).toBe(202);
    expect((await readEverywhere("stock", "s1")).map((s) => s.body)).toEqual(
      everywhere({ id: "s1", qty: -1 }),
    );
    expect((await call(a!, "POST", "/v1/keyspaces/stock/flush")).status).toBe(200);
    const row = await db.query(`select qty from ${tag}_stock where id = 's1'`);
    expect(row.rows[0]?.qty).toBe(-1);
    expect((await readEverywhere("stock", "s1")).map((s) => s.body)).toEqual(
      everywhere({ id: "s1", qty: -1 }),
    );
  }, 60_000);
});
