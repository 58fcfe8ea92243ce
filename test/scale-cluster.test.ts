/**
 * sidecache on a private 3-master Redis Cluster: every strategy round-trips with each keyspace's entries
 * spread over all three masters; write-behind survives a SIGKILLed daemon; the checker finds and repairs a
 * stale entry planted on each shard; a shard restarted from its RDB snapshot serves cold, never stale.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyLayout } from "../src/cache/layout.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, spawnDaemon, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateCluster, type PrivateCluster } from "./support/redis-cluster.js";

const tag = uniqueTag();
const layout = KeyLayout.cluster(tag);
let cluster: PrivateCluster;
let db: pg.Client;
const daemons: Daemon[] = [];

function yaml(): string {
  return `
cache:
  cluster: [${cluster.urls.join(", ")}]
  prefix: ${tag}
server: { port: 0 }
store: { url: ${PG_URL} }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside, ttl: 1h }
  rt: { strategy: read-through, table: ${tag}_rt, ttl: 1h }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts, ttl: 1h }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte, ttl: 1h }
  around: { strategy: write-around, table: ${tag}_around, ttl: 1h }
  wb: { strategy: write-behind, table: ${tag}_wb, ttl: 1h, write_behind: { flush_interval: 200ms } }
  dl:
    strategy: write-behind
    table: ${tag}_dl
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 100ms, max_attempts: 2 }
  near:
    strategy: cache-aside
    table: ${tag}_near
    ttl: 1h
    near_cache: { max_entries: 1000, ttl: 30s }
`;
}

/** How many entries of the keyspace each master holds. */
async function entriesPerMaster(ks: string): Promise<number[]> {
  const out: number[] = [];
  for (const port of await cluster.masterPorts()) {
    let n = 0;
    let cursor = "0";
    do {
      const [next, keys] = await cluster
        .node(port)
        .scan(cursor, "MATCH", layout.entryPattern(ks), "COUNT", 1000);
      n += keys.length;
      cursor = next;
    } while (cursor !== "0");
    out.push(n);
  }
  return out;
}

async function get(base: string, ks: string, key: string) {
  const r = await call(base, "GET", `/v1/kv/${ks}/${key}`);
  return {
    status: r.status,
    cache: String(r.headers["x-cache"]),
    value: r.status === 200 ? r.json() : `${r.status} ${r.text}`,
  };
}

beforeAll(async () => {
  cluster = await startPrivateCluster({ masters: 3, persistence: "rdb" });
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${tag}_dl (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  daemons.push(await startDaemon(yaml()), await startDaemon(yaml()));
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.stop().catch(() => {});
  for (const t of ["aside", "rt", "wts", "wte", "around", "wb", "near", "dl"]) {
    await db.query(`drop table if exists ${tag}_${t}`).catch(() => {});
  }
  await db.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db.end();
  await cluster?.stop();
});

describe("on a 3-master Redis Cluster", () => {
  it("every strategy round-trips, and each keyspace's entries land on all three masters", async () => {
    const [a, b] = daemons.map((d) => d.url);
    const N = 60;
    await db.query(
      `insert into ${tag}_rt (key, value, version, updated_at)
       select 'k' || i, to_jsonb(i), 1, now() from generate_series(0, ${N - 1}) i`,
    );
    for (const ks of ["aside", "wts", "wte", "around", "wb", "near"]) {
      for (let i = 0; i < N; i++) {
        const r = await call(a!, "PUT", `/v1/kv/${ks}/k${i}`, { ks, i });
        expect(r.status, `${ks} k${i}: ${r.text}`).toBe(ks === "wb" ? 202 : 200);
      }
    }
    expect((await call(a!, "PUT", "/v1/kv/rt/k0", 1)).status).toBe(405);
    for (const ks of ["aside", "rt", "wts", "wte", "around", "wb", "near"]) {
      for (let i = 0; i < N; i++) {
        const want = ks === "rt" ? i : { ks, i };
        // read on the other daemon: read your writes across daemons; then again, a hit
        const first = await get(b!, ks, `k${i}`);
        expect(first.value, `${ks} k${i}`).toEqual(want);
        const again = await get(b!, ks, `k${i}`);
        expect(again.value).toEqual(want);
        expect(again.cache, `${ks} k${i}`).toBe("HIT");
      }
      const per = await entriesPerMaster(ks);
      expect(per, ks).toHaveLength(3);
      for (const n of per) expect(n, `${ks}: ${per.join(", ")}`).toBeGreaterThan(0);
    }
    // a write through one daemon is read at once through the other's near cache
    await call(a!, "PUT", "/v1/kv/near/k1", JSON.stringify("changed"));
    expect((await get(b!, "near", "k1")).value).toBe("changed");
    // write-behind reached PostgreSQL from every partition
    expect((await call(a!, "POST", "/v1/keyspaces/wb/flush")).status).toBe(200);
    const rows = await db.query(`select count(*)::int as n from ${tag}_wb`);
    expect(rows.rows[0].n).toBe(N);
    // the buckets' slots really are on every master
    const owners = new Set(await Promise.all(layout.tags("aside").map((t) => cluster.ownerOf(`{${t}}`))));
    expect(owners.size).toBe(3);
  });

  it("write-behind _mset over several partitions is all or nothing, a half-done one completed", async () => {
    const base = daemons[0]!.url;
    const items: Record<string, number> = {};
    for (let i = 0; i < 20; i++) items[`m${i}`] = i;
    expect(new Set(Object.keys(items).map((k) => layout.bucketOf(k))).size).toBeGreaterThan(3);
    const r = await call(base, "POST", "/v1/kv/wb/_mset", { items });
    expect(r.status, r.text).toBe(202);
    const versions = (r.json() as { versions: Record<string, number> }).versions;
    expect(Object.keys(versions).sort()).toEqual(Object.keys(items).sort());
    for (const [k, v] of Object.entries(items)) expect((await get(daemons[1]!.url, "wb", k)).value).toBe(v);

    // A daemon that died after recording such a write in the journal, before queueing it: another one
    // queues it whole.
    const left: Record<string, string> = {};
    for (let i = 0; i < 12; i++) left[`j${i}`] = JSON.stringify(`half-${i}`);
    const keys = Object.keys(left);
    const home = layout.queueBase(layout.tagOf("wb", keys[0]!));
    const record = { at: Date.now() - 60_000, items: Object.entries(left) };
    await cluster
      .node(await cluster.ownerOf(home))
      .hset(`${home}journal`, "deadbeef", JSON.stringify(record));
    const deadline = Date.now() + 15_000;
    let found = 0;
    while (found < keys.length && Date.now() < deadline) {
      found = 0;
      for (const k of keys) if ((await get(base, "wb", k)).status === 200) found++;
      if (found < keys.length) await new Promise((res) => setTimeout(res, 200));
    }
    expect(found).toBe(keys.length);
    expect((await call(base, "POST", "/v1/keyspaces/wb/flush")).status).toBe(200);
    const rows = await db.query(`select key, value from ${tag}_wb where key like 'j%' or key like 'm%'`);
    expect(rows.rows).toHaveLength(32);
    for (const k of keys) expect((await get(base, "wb", k)).value).toBe(JSON.parse(left[k]!));
    expect(await cluster.node(await cluster.ownerOf(home)).hlen(`${home}journal`)).toBe(0);
  }, 30_000);

  it("write-behind dead letters of several partitions are listed, paged, dropped and replayed by their ids", async () => {
    const base = daemons[0]!.url;
    const keys = Array.from({ length: 8 }, (_, i) => `d${i}`);
    expect(new Set(keys.map((k) => layout.bucketOf(k))).size).toBeGreaterThan(2);
    for (const k of keys)
      expect((await call(base, "PUT", `/v1/kv/dl/${k}`, { id: k, qty: -1 })).status).toBe(202);
    type Letter = { id: string; key: string };
    const list = async (q = ""): Promise<Letter[]> =>
      ((await call(base, "GET", `/v1/keyspaces/dl/dead-letters${q}`)).json() as { dead_letters: Letter[] })
        .dead_letters;
    const deadline = Date.now() + 15_000;
    while ((await list()).length < keys.length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const letters = await list();
    expect(letters.map((l) => l.key).sort()).toEqual([...keys].sort());
    for (const l of letters) expect(l.id).toMatch(/^\d+:\d+-\d+$/);
    // paged: after the third, the rest
    expect((await list(`?after=${letters[2]!.id}`)).map((l) => l.id)).toEqual(
      letters.slice(3).map((l) => l.id),
    );
    expect((await call(base, "DELETE", `/v1/keyspaces/dl/dead-letters/${letters[0]!.id}`)).status).toBe(204);
    expect((await call(base, "DELETE", `/v1/keyspaces/dl/dead-letters/${letters[0]!.id}`)).status).toBe(404);
    // replayed once PostgreSQL takes it
    await db.query(`alter table ${tag}_dl drop constraint ${tag}_dl_qty_check`);
    const replay = await call(base, "POST", `/v1/keyspaces/dl/dead-letters/${letters[1]!.id}/replay`);
    expect(replay.status, replay.text).toBe(202);
    expect((await call(base, "POST", "/v1/keyspaces/dl/flush")).status).toBe(200);
    const row = await db.query(`select qty from ${tag}_dl where id = $1`, [letters[1]!.key]);
    expect(row.rows[0]?.qty).toBe(-1);
    expect((await list()).map((l) => l.id)).toEqual(letters.slice(2).map((l) => l.id));
  }, 30_000);

  it("the checker finds and repairs a stale entry planted on each shard", async () => {
    const base = daemons[0]!.url;
    const masters = await cluster.masterPorts();
    const planted = new Map<number, string>();
    for (let i = 0; planted.size < masters.length && i < 1000; i++) {
      const key = `s${i}`;
      const port = await cluster.ownerOf(layout.entry("aside", key));
      if (!planted.has(port)) planted.set(port, key);
    }
    expect(planted.size).toBe(3);
    for (const [port, key] of planted) {
      const put = await call(base, "PUT", `/v1/kv/aside/${key}`, JSON.stringify("new"));
      expect(put.status, put.text).toBe(200);
      const version = (put.json() as { version: number }).version;
      // an older value, of no incarnation (valid in every one), fresh for an hour
      await cluster
        .node(port)
        .set(layout.entry("aside", key), `v${version - 1}::${Date.now() + 3_600_000}:"old"`, "PX", 3_600_000);
      expect((await get(base, "aside", key)).value).toBe("old");
    }
    const report = (await call(base, "POST", "/v1/keyspaces/aside/check", { full: true })).json() as {
      by_kind: Record<string, number>;
      repaired: number;
    };
    expect(report.by_kind.stale).toBe(3);
    expect(report.repaired).toBe(3);
    for (const key of planted.values()) expect((await get(base, "aside", key)).value).toBe("new");
  });

  it("write-behind: a SIGKILLed daemon's acknowledged writes reach PostgreSQL through its successor", async () => {
    const first = await spawnDaemon(yaml());
    const N = 300;
    try {
      for (let i = 0; i < N; i++) {
        const r = await call(first.url, "PUT", `/v1/kv/wb/x${i}`, { i });
        expect(r.status).toBe(202);
      }
    } finally {
      await first.kill("SIGKILL");
    }
    const second = await spawnDaemon(yaml());
    try {
      expect((await call(second.url, "POST", "/v1/keyspaces/wb/flush")).status).toBe(200);
      const rows = await db.query(`select key, value from ${tag}_wb where key like 'x%'`);
      expect(rows.rows).toHaveLength(N);
      for (const row of rows.rows as { key: string; value: { i: number } }[]) {
        expect(row.value.i).toBe(Number(row.key.slice(1)));
      }
      for (let i = 0; i < N; i += 37) expect((await get(second.url, "wb", `x${i}`)).value).toEqual({ i });
    } finally {
      await second.kill("SIGTERM");
    }
  }, 60_000);

  it("a shard restarted from its RDB snapshot serves cold, never stale", async () => {
    const base = daemons[0]!.url;
    const keys = Array.from({ length: 30 }, (_, i) => `r${i}`);
    for (const k of keys) {
      await call(base, "PUT", `/v1/kv/aside/${k}`, JSON.stringify("v1"));
      expect((await get(base, "aside", k)).value).toBe("v1");
    }
    const victim = await cluster.ownerOf(layout.entry("aside", keys[0]!));
    await cluster.node(victim).save();
    for (const k of keys) {
      await call(base, "PUT", `/v1/kv/aside/${k}`, JSON.stringify("v2"));
      expect((await get(base, "aside", k)).value).toBe("v2");
      expect((await get(base, "aside", k)).cache).toBe("HIT");
    }
    const onVictim: string[] = [];
    for (const k of keys) if ((await cluster.ownerOf(layout.entry("aside", k))) === victim) onVictim.push(k);
    expect(onVictim.length).toBeGreaterThan(0);
    const node = cluster.nodes.find((n) => n.port === victim)!;
    await node.kill();
    await node.start();
    await cluster.waitHealthy();
    // the snapshot holds v1 entries: the node's new run id makes them another incarnation
    expect(await cluster.node(victim).dbsize()).toBeGreaterThan(0);
    // The daemon reaches the restarted node again: a canary key on it, not in the snapshot, is cached anew.
    let canary = "";
    for (let i = 0; !canary; i++) {
      if ((await cluster.ownerOf(layout.entry("aside", `c${i}`))) === victim) canary = `c${i}`;
    }
    const deadline = Date.now() + 15_000;
    while ((await get(base, "aside", canary)).cache !== "HIT" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const seen = new Map<string, string>();
    while (seen.size < keys.length && Date.now() < deadline) {
      for (const k of keys) {
        if (seen.has(k)) continue;
        const r = await get(base, "aside", k);
        if (r.status === 503) continue;
        expect(r.value, k).toBe("v2");
        seen.set(k, r.cache);
      }
    }
    expect(seen.size).toBe(keys.length);
    // cold where the node restarted: its keys' first reads went to PostgreSQL
    for (const k of onVictim) expect(seen.get(k), k).toBe("MISS");
    for (const k of keys) expect((await get(base, "aside", k)).value).toBe("v2");
  }, 60_000);
});
