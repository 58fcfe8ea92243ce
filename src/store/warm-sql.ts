/**
 * What cache warming (src/warm) needs of PostgreSQL: the keys an operator's SELECT returns, run in a
 * read-only transaction so that it can change nothing, and the hottest keys of each keyspace, kept in
 * sidecache_hot_keys across restarts.
 */
import type { WarmSource } from "./adapter.js";
import type { Driver } from "./driver.js";
import { DDL_LOCK, guarded, str } from "./sql.js";

const HOT_KEYS = "sidecache_hot_keys";

export class SqlWarmSource implements WarmSource {
  private created: Promise<void> | null = null;

  constructor(private readonly driver: Driver) {}

  queryKeys(sql: string, limit: number): Promise<string[]> {
    return guarded(() =>
      this.driver.transaction(async (tx) => {
        await tx.query("set transaction read only");
        const r = await tx.query(`select * from (${sql}) as warm_keys limit $1`, [limit]);
        return r.rows
          .map((row) => Object.values(row)[0])
          .filter((k) => k !== null)
          .map((k) => String(k));
      }),
    );
  }

  saveHotKeys(keyspace: string, keys: { key: string; hits: number }[]): Promise<void> {
    return guarded(async () => {
      await this.ensureTable();
      await this.driver.transaction(async (tx) => {
        await tx.query(`delete from ${HOT_KEYS} where keyspace = $1`, [keyspace]);
        if (keys.length === 0) return;
        await tx.query(
          `insert into ${HOT_KEYS} (keyspace, key, hits, saved_at)
           select $1, k, h, now() from unnest($2::text[], $3::int8[]) as u(k, h)`,
          [keyspace, keys.map((k) => k.key), keys.map((k) => String(k.hits))],
        );
      });
    });
  }

  hotKeys(keyspace: string, limit: number): Promise<string[]> {
    return guarded(async () => {
      await this.ensureTable();
      const r = await this.driver.query(
        `select key from ${HOT_KEYS} where keyspace = $1 order by hits desc, key limit $2`,
        [keyspace, limit],
      );
      return r.rows.map((row) => str(row.key));
    });
  }

  private ensureTable(): Promise<void> {
    this.created ??= this.driver
      .transaction(async (tx) => {
        await tx.query(DDL_LOCK);
        await tx.query(
          `create table if not exists ${HOT_KEYS} (
             keyspace text not null, key text not null, hits bigint not null, saved_at timestamptz not null,
             primary key (keyspace, key))`,
        );
      })
      .catch((err: unknown) => {
        this.created = null;
        throw err;
      });
    return this.created;
  }
}
