/** A write-behind keyspace on the shared Redis and PostgreSQL, with its own prefix and table, for tests. */
import { Redis } from "ioredis";
import pg from "pg";
import { createCache } from "../../src/cache/index.js";
import type { CacheAdapter } from "../../src/cache/adapter.js";
import { parseConfig } from "../../src/config/load.js";
import type { Config, KeyspaceConfig } from "../../src/config/types.js";
import { silentLogger } from "../../src/log.js";
import type { StoreAdapter, TableStore } from "../../src/store/adapter.js";
import { createStore } from "../../src/store/index.js";
import { WriteBehindStrategy } from "../../src/strategies/write-behind.js";
import type { TelemetryEvent } from "../../src/telemetry.js";
import { PG_URL, REDIS_URL, uniqueTag } from "./daemon.js";

export interface WbHarness {
  tag: string;
  prefix: string;
  table: string;
  config: Config;
  keyspace: KeyspaceConfig;
  cache: CacheAdapter;
  store: StoreAdapter;
  tableStore: TableStore;
  redis: Redis;
  pg: pg.Pool;
  events: TelemetryEvent[];
  /** a new strategy instance (a "daemon") on the same keyspace; started unless told not to */
  strategy(options?: { start?: boolean }): Promise<WriteBehindStrategy>;
  /** the PostgreSQL row of a key (managed table), or undefined */
  row(key: string): Promise<{ value: unknown; version: number } | undefined>;
  cleanup(): Promise<void>;
}

export interface HarnessOptions {
  writeBehind?: string;
  /** SQL creating a mapped table named by the placeholder TABLE, and the keyspace lines that map it */
  mapped?: { create: string; yaml: string[] };
  storeUrl?: string;
  redisUrl?: string;
}

export async function wbHarness(options: HarnessOptions = {}): Promise<WbHarness> {
  const tag = uniqueTag();
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const prefix = `sc_wb_${tag}`;
  const table = `wb_${tag}`;
  const client = new pg.Pool({ connectionString: options.storeUrl ?? PG_URL, max: 2 });
  // a test may stop the server under it: the pool reconnects on the next query
  client.on("error", () => {});
  if (options.mapped) await client.query(options.mapped.create.replaceAll("TABLE", table));
  const yaml = `
cache: { url: "${redisUrl}", prefix: ${prefix} }
store: { url: "${options.storeUrl ?? PG_URL}" }
keyspaces:
  ev:
    strategy: write-behind
    table: ${table}
    ${options.mapped?.yaml.join("\n    ") ?? ""}
    write_behind: ${options.writeBehind ?? "{ flush_interval: 100ms, batch_size: 500, max_queue: 100000, max_attempts: 3 }"}
`;
  const config = parseConfig(yaml, "test.yaml");
  const keyspace = config.keyspaces.get("ev")!;
  const cache = createCache(config.cache, silentLogger);
  const store = await createStore(config.store, silentLogger);
  const tableStore = await store.table({ table, mapped: keyspace.mapped });
  const redis = new Redis(redisUrl);
  redis.on("error", () => {});
  const events: TelemetryEvent[] = [];
  const started: WriteBehindStrategy[] = [];

  return {
    tag,
    prefix,
    table,
    config,
    keyspace,
    cache,
    store,
    tableStore,
    redis,
    pg: client,
    events,
    async strategy({ start = true } = {}) {
      const s = new WriteBehindStrategy({
        keyspace,
        cache,
        store: tableStore,
        telemetry: { emit: (e) => events.push(e) },
        log: silentLogger,
        redisUrl,
        cachePrefix: prefix,
      });
      started.push(s);
      if (start) await s.start();
      return s;
    },
    async row(key) {
      const r = await client.query(`select value, version from ${table} where key = $1`, [key]);
      const row = r.rows[0] as { value: unknown; version: string } | undefined;
      return row && { value: row.value, version: Number(row.version) };
    },
    async cleanup() {
      await Promise.allSettled(started.map((s) => s.stop(0)));
      await cache.close();
      await store.close();
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== "0");
      redis.disconnect();
      await client.query(`drop table if exists ${table}`);
      await client.query(`delete from sidecache_tombstones where tbl = $1`, [table]).catch(() => {});
      await client.end();
    },
  };
}

/** Polls until check() is true or the deadline passes (then throws with the label). */
export async function until(
  label: string,
  check: () => Promise<boolean> | boolean,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function flushEvents(events: TelemetryEvent[]): Extract<TelemetryEvent, { type: "wb_flush" }>[] {
  return events.filter((e): e is Extract<TelemetryEvent, { type: "wb_flush" }> => e.type === "wb_flush");
}
