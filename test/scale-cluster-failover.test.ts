/**
 * A Redis Cluster failover to a replica that lags: the replica of one shard is cut off from its master and
 * misses the last writes, its master is killed, the replica is promoted holding older entries under the
 * same incarnation marker. sidecache serves none of them: the shard is a new incarnation (cold), its keys
 * are read from PostgreSQL once, and every read returns the acknowledged value. Writers run through the
 * failover: none of their acknowledged writes is lost, and what the failover cost them is printed.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyLayout } from "../src/cache/layout.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { startPrivateCluster, type PrivateCluster } from "./support/redis-cluster.js";

const tag = uniqueTag();
const layout = KeyLayout.cluster(tag);
let cluster: PrivateCluster;
let db: pg.Client;
let daemon: Daemon;

async function get(key: string) {
  const r = await call(daemon.url, "GET", `/v1/kv/aside/${key}`);
  return {
    status: r.status,
    cache: String(r.headers["x-cache"]),
    value: r.status === 200 ? r.json() : r.text,
  };
}

const put = (key: string, value: string) =>
  call(daemon.url, "PUT", `/v1/kv/aside/${key}`, JSON.stringify(value));

beforeAll(async () => {
  cluster = await startPrivateCluster({
    masters: 3,
    replicas: 1,
    nodeTimeoutMs: 1000,
    // a replica cut off from its master for a while may still be promoted
    args: ["--cluster-replica-validity-factor", "0"],
  });
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  daemon = await startDaemon(`
cache:
  cluster: [${cluster.urls.join(", ")}]
  prefix: ${tag}
store: { url: ${PG_URL} }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside, ttl: 1h }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts, ttl: 1h }
`);
}, 60_000);

afterAll(async () => {
  await daemon?.stop().catch(() => {});
  await db.query(`drop table if exists ${tag}_aside`).catch(() => {});
  await db.query(`drop table if exists ${tag}_wts`).catch(() => {});
  await db.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db.end();
  await cluster?.stop();
});

/** Sequential writers of both keyspaces over 30 keys each; stop() waits for them and tells what happened. */
function writers() {
  let running = true;
  const acks: { ks: string; at: number }[] = [];
  const errors: { ks: string; at: number }[] = [];
  const acked = new Map<string, number>();
  const one = async (ks: string, w: number) => {
    for (let i = 0; running; i++) {
      const key = `w${w}-${i % 30}`;
      const r = await call(daemon.url, "PUT", `/v1/kv/${ks}/${key}`, String(i)).catch(() => undefined);
      if (r?.status === 200) {
        acked.set(`${ks}/${key}`, (r.json() as { version: number }).version);
        acks.push({ ks, at: Date.now() });
      } else {
        errors.push({ ks, at: Date.now() });
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  };
  const all = [one("aside", 0), one("aside", 1), one("wts", 0), one("wts", 1)];
  return {
    async stop() {
      running = false;
      await Promise.all(all);
      return { acks, errors, acked };
    },
  };
}

describe("a Redis Cluster shard failed over to a replica that lags", () => {
  it("is cold, never stale", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `f${i}`);
    for (const k of keys) {
      expect((await put(k, "v1")).status).toBe(200);
      expect((await get(k)).value).toBe("v1");
    }
    const master = await cluster.ownerOf(layout.entry("aside", keys[0]!));
    const onShard: string[] = [];
    for (const k of keys) if ((await cluster.ownerOf(layout.entry("aside", k))) === master) onShard.push(k);
    const replica = await cluster.replicaOf(master);
    // the replica holds every v1 entry and the marker
    expect(await cluster.node(master).call("WAIT", "1", "5000")).toBe(1);

    // The replica loses its link and can not make it again (a password its master refuses): it misses
    // the v2 entries, as a replica cut off by the network would.
    await cluster.node(replica).config("SET", "masterauth", "not-the-password");
    await cluster.node(replica).call("CLIENT", "KILL", "TYPE", "master");
    const deadline0 = Date.now() + 5_000;
    while (!/master_link_status:down/.test(await cluster.node(replica).info("replication"))) {
      if (Date.now() > deadline0) throw new Error("the replica kept its link");
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const k of keys) {
      expect((await put(k, "v2")).status).toBe(200);
      const r = await get(k);
      expect(r.value).toBe("v2");
    }
    for (const k of onShard) expect((await get(k)).cache).toBe("HIT");
    // Writers of both keyspaces over every shard, from just before the master dies until after the failover.
    const load = writers();
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = Date.now();
    await cluster.nodes.find((n) => n.port === master)!.kill();
    const promoted = Date.now() + 30_000;
    while ((await cluster.ownerOf(layout.entry("aside", onShard[0]!)).catch(() => 0)) !== replica) {
      if (Date.now() > promoted) throw new Error("the replica was not promoted");
      await new Promise((r) => setTimeout(r, 100));
    }
    const promotedAfter = Date.now() - killedAt;
    await cluster.waitHealthy(30_000);
    // what the promoted replica holds is older than what was acknowledged
    const held = await Promise.all(onShard.map((k) => cluster.node(replica).get(layout.entry("aside", k))));
    expect(held.filter((t) => t?.endsWith('"v1"')).length, held.join("\n")).toBeGreaterThan(0);

    // The daemon reaches the promoted replica: a key of its shard, not written before, is cached anew.
    let canary = "";
    for (let i = 0; !canary; i++) {
      if ((await cluster.ownerOf(layout.entry("aside", `c${i}`))) === replica) canary = `c${i}`;
    }
    const deadline = Date.now() + 20_000;
    while ((await get(canary)).cache !== "HIT" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const first = new Map<string, string>();
    for (const k of keys) {
      const r = await get(k);
      expect(r.status, `${k}: ${String(r.value)}`).toBe(200);
      expect(r.value, k).toBe("v2");
      first.set(k, r.cache);
    }
    for (const k of onShard) expect(first.get(k), k).toBe("MISS");
    for (const k of keys) expect((await get(k)).value).toBe("v2");

    await new Promise((r) => setTimeout(r, 1_000));
    const done = await load.stop();
    console.log(`cluster failover: the replica served the shard's slots ${promotedAfter} ms after the kill`);
    for (const ks of ["aside", "wts"] as const) {
      const acks = done.acks.filter((a) => a.ks === ks).map((a) => a.at - killedAt);
      const errs = done.errors.filter((e) => e.ks === ks).map((e) => e.at - killedAt);
      let gap = 0;
      for (let i = 1; i < acks.length; i++) if (acks[i]! > 0) gap = Math.max(gap, acks[i]! - acks[i - 1]!);
      console.log(
        `cluster failover (${ks}): ${acks.length} writes acknowledged, ${errs.length} failed` +
          (errs.length > 0 ? ` from ${errs[0]} ms to ${errs[errs.length - 1]} ms after the kill` : "") +
          `; longest time without an acknowledged write ${gap} ms`,
      );
      // every acknowledged write is in PostgreSQL and read back through the daemon
      const rows = await db.query(`select key, version from ${tag}_${ks} where key like 'w%'`);
      const version = new Map(
        (rows.rows as { key: string; version: string }[]).map((r) => [r.key, Number(r.version)]),
      );
      for (const [key, acked] of done.acked) {
        if (!key.startsWith(`${ks}/`)) continue;
        const k = key.slice(ks.length + 1);
        expect(version.get(k), key).toBeGreaterThanOrEqual(acked);
        const r = await call(daemon.url, "GET", `/v1/kv/${ks}/${k}`);
        expect(r.status, key).toBe(200);
        expect(Number(String(r.headers.etag).replace(/\D/g, "")), key).toBe(version.get(k));
      }
    }
  }, 85_000);
});
