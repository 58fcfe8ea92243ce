/**
 * write-behind survives SIGKILL: thousands of writes acknowledged over HTTP, the daemon killed mid-stream,
 * a new daemon started on the same Redis and PostgreSQL; after its flush PostgreSQL holds, for every key,
 * the last acknowledged write (or one that came later).
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { call } from "./support/http.js";
import { PG_URL, REDIS_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";

const KEYS = 400;
const WORKERS = 24;
const KILL_AFTER = 3000;

describe("write-behind and SIGKILL", () => {
  const tag = uniqueTag();
  const prefix = `sc_wbk_${tag}`;
  const table = `wbk_${tag}`;
  const yaml = `
server: { port: 0 }
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
keyspaces:
  ev:
    strategy: write-behind
    table: ${table}
    write_behind: { flush_interval: 300ms, batch_size: 200, max_queue: 1000000 }
`;
  const daemons: ChildDaemon[] = [];
  const db = new pg.Pool({ connectionString: PG_URL, max: 2 });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.kill("SIGKILL")));
    const redis = new Redis(REDIS_URL);
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
    redis.disconnect();
    await db.query(`drop table if exists ${table}`);
    await db.query(`delete from sidecache_tombstones where tbl = $1`, [table]).catch(() => {});
    await db.end();
  });

  it("loses no acknowledged write", async () => {
    const first = await spawnDaemon(yaml);
    daemons.push(first);

    // key → the highest version acknowledged for it, and the value written at that version
    const acked = new Map<string, { version: number; value: number }>();
    let count = 0;
    let killed = false;
    let seq = 0;
    const worker = async () => {
      while (!killed) {
        const i = seq++;
        const key = `k${i % KEYS}`;
        try {
          const r = await call(first.url, "PUT", `/v1/kv/ev/${key}`, { i });
          if (r.status !== 202) throw new Error(`PUT answered ${r.status}: ${r.text}`);
          const { version } = r.json() as { version: number };
          const prev = acked.get(key);
          if (!prev || version > prev.version) acked.set(key, { version, value: i });
          count++;
        } catch (err) {
          if (killed) return; // in flight when the daemon died: not acknowledged
          throw err;
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, worker);
    while (count < KILL_AFTER) await new Promise((r) => setTimeout(r, 10));
    killed = true;
    await first.kill("SIGKILL");
    await Promise.all(workers);
    expect(count).toBeGreaterThanOrEqual(KILL_AFTER);
    // The kill left writes queued, some of them claimed by the dead daemon's flusher.
    const redis = new Redis(REDIS_URL);
    const stream = `${prefix}:wb:{ev}:stream`;
    const queued = await redis.xlen(stream);
    redis.disconnect();
    expect(queued).toBeGreaterThan(0);

    const second = await spawnDaemon(yaml);
    daemons.push(second);
    // The dead daemon's heartbeat is gone within two flush intervals: its writes are taken over then, not
    // once idle for longer, and flush waits for them rather than answering 504.
    const t0 = Date.now();
    const flushed = await call(second.url, "POST", "/v1/keyspaces/ev/flush");
    const flushMs = Date.now() - t0;
    expect(flushed.status).toBe(200);
    console.log(`write-behind takeover: flush after the restart returned in ${flushMs} ms`);
    expect(flushMs).toBeLessThan(8_000);

    const rows = await db.query(`select key, value, version from ${table}`);
    const stored = new Map(
      (rows.rows as { key: string; value: { i: number }; version: string }[]).map((r) => [
        r.key,
        { version: Number(r.version), value: r.value.i },
      ]),
    );
    let lost = 0;
    for (const [key, a] of acked) {
      const s = stored.get(key);
      // A write in flight at the kill may have been queued after the last acknowledged one.
      if (!s || s.version < a.version || (s.version === a.version && s.value !== a.value)) lost++;
    }
    expect(lost).toBe(0);
    expect(acked.size).toBe(KEYS);

    const status = await call(second.url, "GET", "/v1/keyspaces");
    expect(JSON.stringify(status.json())).toContain('"queue_depth":0');
    // Reads through the new daemon agree with PostgreSQL.
    const sample = await call(second.url, "GET", `/v1/kv/ev/k7`);
    expect(sample.status).toBe(200);
    expect((sample.json() as { i: number }).i).toBe(stored.get("k7")!.value);
    await second.kill("SIGTERM");
  });
});
