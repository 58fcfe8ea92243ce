/** PostgreSQL and Redis as the bench sees them: statistics, seeding, cleanup, versions. */
import { Redis } from "ioredis";
import pg from "pg";

export const PG_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
export const PG_TARGET = (() => {
  const u = new URL(PG_URL);
  return { host: u.hostname, port: Number(u.port || 5432) };
})();

export interface TableStats {
  seqScan: number;
  idxScan: number;
  ins: number;
  upd: number;
  del: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Backends {
  private constructor(
    readonly pg: pg.Client,
    readonly redis: Redis,
  ) {}

  static async connect(): Promise<Backends> {
    const client = new pg.Client({ connectionString: PG_URL, application_name: "sidecache-bench" });
    await client.connect();
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    return new Backends(client, redis);
  }

  async versions(): Promise<{ redis: string; postgres: string }> {
    const info = await this.redis.info("server");
    const rv = /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
    const pv =
      (await this.pg.query<{ v: string }>("select current_setting('server_version') v")).rows[0]?.v ?? "?";
    return { redis: `Redis ${rv}`, postgres: `PostgreSQL ${pv.split(" ")[0]}` };
  }

  async tableStats(table: string): Promise<TableStats> {
    const r = await this.pg.query<Record<string, string>>(
      `select coalesce(seq_scan,0) s, coalesce(idx_scan,0) i, n_tup_ins ins, n_tup_upd upd, n_tup_del del
       from pg_stat_user_tables where relname = $1`,
      [table],
    );
    const row = r.rows[0];
    if (!row) return { seqScan: 0, idxScan: 0, ins: 0, upd: 0, del: 0 };
    return {
      seqScan: Number(row.s),
      idxScan: Number(row.i),
      ins: Number(row.ins),
      upd: Number(row.upd),
      del: Number(row.del),
    };
  }

  /** Database-wide committed transactions (every client of database `test`, not only ours). */
  async xactCommit(): Promise<number> {
    const r = await this.pg.query<{ c: string }>(
      "select xact_commit c from pg_stat_database where datname = current_database()",
    );
    return Number(r.rows[0]?.c ?? 0);
  }

  /**
   * Table statistics once they stop moving. PostgreSQL backends publish their counters at most once a
   * second while busy and up to 10 s after going idle, or when they exit; callers stop their clients
   * first, then wait here (at most maxMs).
   */
  async settledTableStats(table: string, maxMs = 15_000): Promise<TableStats> {
    const deadline = Date.now() + maxMs;
    let last = await this.tableStats(table);
    let same = 0;
    while (Date.now() < deadline) {
      await sleep(500);
      const now = await this.tableStats(table);
      if (JSON.stringify(now) === JSON.stringify(last)) {
        if (++same >= 3) return now;
      } else {
        same = 0;
      }
      last = now;
    }
    return last;
  }

  /**
   * Rows `${prefix}0 .. ${prefix}${count-1}` with the same value and version 1, in a managed table. A plain
   * insert: `on conflict` would probe the primary key and show up as index scans in pg_stat_user_tables.
   */
  async seed(table: string, prefix: string, count: number, value: string): Promise<void> {
    await this.pg.query(
      `insert into "${table}" ("key", "value", "version", "updated_at")
       select $1 || g, $2::jsonb, 1, now() from generate_series(0, $3::int - 1) g`,
      [prefix, value, count],
    );
  }

  async dropTables(tables: string[]): Promise<void> {
    for (const t of tables) {
      await this.pg.query(`drop table if exists "${t}"`).catch(() => {});
      await this.pg.query(`delete from sidecache_tombstones where tbl = $1`, [t]).catch(() => {});
    }
  }

  async deleteRedisPrefix(prefix: string): Promise<number> {
    let cursor = "0";
    let n = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      if (keys.length > 0) n += await this.redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
    return n;
  }

  async close(): Promise<void> {
    await this.pg.end().catch(() => {});
    this.redis.disconnect();
  }
}
