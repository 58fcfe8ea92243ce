/**
 * The store adapter over PostgreSQL, shared by both drivers (pg and PGlite): it creates the shared tables
 * and managed tables, checks mapped ones, and hands out a SqlTableStore per table.
 *
 * - sidecache_tombstones holds the version of each deleted key (table-store.ts).
 * - sidecache_under_key_locks runs each writing statement under its keys' locks (sql.ts); each table's
 *   writing statements get functions of their own, sidecache_locked_<hash>, that keep their plans
 *   (locked-function.ts).
 * - sidecache_cache_repairs holds the cache updates that failed after a commit (docs/design.md, cache
 *   repairs) until the cache entry is known to be repaired.
 */
import { StoreRejectedError } from "../errors.js";
import type { Logger } from "../log.js";
import type { RepairIntent, StoreAdapter, TableMapping, TableStore } from "./adapter.js";
import type { Driver, Queryable } from "./driver.js";
import { managedShape, mappedShape } from "./shape.js";
import {
  clearRepair,
  DDL_LOCK,
  functionExists,
  guarded,
  keyLocksFunction,
  UNDER_KEY_LOCKS,
  num,
  quoteIdent,
  REPAIRS,
  str,
  TOMBSTONES,
} from "./sql.js";
import { AUDIT_COLUMNS, auditDdl, SqlAuditLog } from "./audit-sql.js";
import { SqlTableStore, type AuditTarget } from "./table-store.js";
import { SqlWarmSource } from "./warm-sql.js";

export { quoteIdent } from "./sql.js";

export class SqlStoreAdapter implements StoreAdapter {
  readonly kind: string;
  readonly warmSource: SqlWarmSource;
  readonly auditLog: SqlAuditLog;
  private tombstones: Promise<void> | null = null;
  /** audit tables known to exist, by name */
  private readonly auditTables = new Map<string, Promise<void>>();

  constructor(
    /** the connection(s) underneath, for callers that need raw SQL (tests, tooling) */
    readonly driver: Driver,
    private readonly log?: Logger,
  ) {
    this.kind = driver.kind;
    this.warmSource = new SqlWarmSource(driver);
    this.auditLog = new SqlAuditLog(driver);
  }

  /** Creates an audit table and its indexes when missing, once per table and adapter. */
  private ensureAudit(table: string): Promise<void> {
    let ready = this.auditTables.get(table);
    if (!ready) {
      ready = (async () => {
        for (const sql of auditDdl(table)) await this.ddl(sql);
        const cols = await this.columnsOf(table);
        const missing = AUDIT_COLUMNS.filter((c) => !cols?.has(c));
        if (missing.length > 0) {
          throw new StoreRejectedError(
            `The audit table ${JSON.stringify(table)} exists but is not a sidecache audit table: it lacks the ` +
              `column(s) ${missing.join(", ")}. Name another table in the keyspace's audit.table.`,
            "42703",
          );
        }
      })();
      ready.catch(() => this.auditTables.delete(table));
      this.auditTables.set(table, ready);
    }
    return ready;
  }

  /** Runs `fn` one daemon at a time: `create table if not exists` alone can race on the catalog. */
  private async underDdlLock(fn: (tx: Queryable) => Promise<unknown>): Promise<void> {
    await this.driver.transaction(async (tx) => {
      await tx.query(DDL_LOCK);
      await fn(tx);
    });
  }

  private ddl(sql: string): Promise<void> {
    return this.underDdlLock((tx) => tx.query(sql));
  }

  /**
   * The table's statements get functions of their own (locked-function.ts); a role that may not create
   * them keeps the shared function, which works the same, only slower.
   */
  private async prepared(store: SqlTableStore): Promise<SqlTableStore> {
    try {
      await this.underDdlLock((tx) => store.prepare(tx));
      store.activate();
    } catch (err) {
      this.log?.warn(
        { err: (err as Error).message },
        "the write statements' functions could not be created: writes run through the shared key-lock function",
      );
    }
    return store;
  }

  /** What every keyspace shares: tombstones, the key-lock function and repair intents. */
  private ensureTombstones(): Promise<void> {
    this.tombstones ??= (async () => {
      await this.ddl(
        `create table if not exists ${TOMBSTONES} (
           tbl text not null, key text not null, version bigint not null, deleted_at timestamptz not null,
           primary key (tbl, key))`,
      );
      // Created when missing only: a daemon connecting as another role (CDC's, say) may not own it.
      await this.underDdlLock(async (tx) => {
        if (!(await functionExists(tx, UNDER_KEY_LOCKS))) await tx.query(keyLocksFunction());
      });
      await this.ddl(
        `create table if not exists ${REPAIRS} (
           tbl text not null, key text not null, version bigint not null,
           created_at timestamptz not null default now(), primary key (tbl, key))`,
      );
    })().catch((err: unknown) => {
      this.tombstones = null;
      throw err;
    });
    return this.tombstones;
  }

  private async columnsOf(table: string): Promise<Map<string, string> | null> {
    const r = await this.driver.query(
      `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type
       from pg_attribute a where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped`,
      [quoteIdent(table)],
    );
    const exists = await this.driver.query(`select to_regclass($1) is not null as e`, [quoteIdent(table)]);
    if (!exists.rows[0]?.e) return null;
    return new Map(r.rows.map((row) => [str(row.name), str(row.type)]));
  }

  async table(mapping: TableMapping): Promise<TableStore> {
    return guarded(async () => {
      await this.ensureTombstones();
      const { table, mapped } = mapping;
      const audit: AuditTarget | undefined = mapping.audit;
      if (audit) await this.ensureAudit(audit.table);
      if (!mapped) {
        await this.ddl(
          `create table if not exists ${quoteIdent(table)} (
             "key" text collate "C" primary key, "value" jsonb not null, "version" bigint not null,
             "updated_at" timestamptz not null default now())`,
        );
        const cols = await this.columnsOf(table);
        const missing = ["key", "value", "version", "updated_at"].filter((c) => !cols?.has(c));
        if (missing.length > 0) {
          throw new StoreRejectedError(
            `The table ${JSON.stringify(table)} exists but is not a sidecache managed table: it lacks the column(s) ` +
              `${missing.join(", ")}. Give the keyspace another table, or map this one with key_column and columns.`,
            "42703",
          );
        }
        this.log?.debug({ table }, "managed table ready");
        return this.prepared(
          new SqlTableStore(this.driver, table, managedShape(table), undefined, undefined, audit),
        );
      }
      const cols = await this.columnsOf(table);
      if (!cols) {
        throw new StoreRejectedError(
          `The mapped table ${JSON.stringify(table)} does not exist; a table with key_column is not created by sidecache.`,
          "42P01",
        );
      }
      const wanted = [...new Set([mapped.keyColumn, ...mapped.columns, mapped.versionColumn])];
      const missing = wanted.filter((c) => !cols.has(c));
      if (missing.length > 0) {
        throw new StoreRejectedError(
          `The mapped table ${JSON.stringify(table)} has no column(s) ${missing.join(", ")} ` +
            `(it has ${[...cols.keys()].join(", ")}).`,
          "42703",
        );
      }
      const versionType = cols.get(mapped.versionColumn)!;
      if (!["bigint", "numeric"].includes(versionType) && !versionType.startsWith("numeric(")) {
        throw new StoreRejectedError(
          `The version column ${JSON.stringify(mapped.versionColumn)} of ${JSON.stringify(table)} is ${versionType}; ` +
            `it must be bigint (versions are microsecond clocks).`,
          "42804",
        );
      }
      const unique = await this.driver.query(
        `select 1 from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
         where i.indrelid = to_regclass($1) and i.indisunique and i.indnkeyatts = 1 and i.indpred is null
           and a.attname = $2`,
        [quoteIdent(table), mapped.keyColumn],
      );
      if (unique.rows.length === 0) {
        throw new StoreRejectedError(
          `The key column ${JSON.stringify(mapped.keyColumn)} of ${JSON.stringify(table)} needs a primary key or ` +
            `unique index of its own.`,
          "42P10",
        );
      }
      const keyType = cols.get(mapped.keyColumn)!;
      return this.prepared(
        new SqlTableStore(
          this.driver,
          table,
          mappedShape(table, { ...mapped, keyType }),
          mapped.columns,
          undefined,
          audit,
        ),
      );
    });
  }

  async pendingRepairs(
    tables: string[],
    after: { table: string; key: string } | null,
    limit: number,
  ): Promise<RepairIntent[]> {
    if (tables.length === 0 || limit <= 0) return [];
    return guarded(async () => {
      await this.ensureTombstones();
      const cols = `tbl, key, version, extract(epoch from now() - created_at)::float8 as age`;
      const r =
        after === null
          ? await this.driver.query(
              `select ${cols} from ${REPAIRS} where tbl = any($1::text[]) order by tbl, key limit $2`,
              [tables, limit],
            )
          : await this.driver.query(
              `select ${cols} from ${REPAIRS} where tbl = any($1::text[]) and (tbl, key) > ($2, $3)
               order by tbl, key limit $4`,
              [tables, after.table, after.key, limit],
            );
      return r.rows.map((row) => ({
        table: str(row.tbl),
        key: str(row.key),
        version: num(row.version),
        ageSeconds: Math.max(0, num(row.age)),
      }));
    });
  }

  clearRepair(intent: { table: string; key: string; version: number }): Promise<boolean> {
    return guarded(() => clearRepair(this.driver, intent.table, intent.key, intent.version));
  }

  async ping(): Promise<void> {
    await guarded(() => this.driver.query("select 1"));
  }

  async close(): Promise<void> {
    await this.driver.close();
  }
}
