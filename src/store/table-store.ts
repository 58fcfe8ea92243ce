/**
 * One table of the store: reads, versioned writes, the replay of write-behind batches, repair intents and
 * key sampling, over either Shape.
 *
 * - Every statement that writes runs under its keys' locks (UNDER_KEY_LOCKS in sql.ts): one statement, one
 *   round trip, its own implicit transaction; a key's writes are serialized and each sees the last.
 * - Concurrent writes share statements (group commit, group-commit.ts; the statement in write-batch.ts).
 * - Deleted keys leave a tombstone in sidecache_tombstones holding the version of the delete; the next
 *   version of a key is above its row and its tombstone, so it only grows.
 */
import { BackendUnavailableError, InvalidRequestError } from "../errors.js";
import { observeVersion } from "../version.js";
import type {
  AuditEntry,
  StoredRow,
  TableStore,
  VersionedOp,
  WriteOp,
  WriteOptions,
  WriteResult,
} from "./adapter.js";
import { auditInsertFlush, auditTag, flushTag } from "./audit-sql.js";
import type { Driver, Queryable, Row } from "./driver.js";
import { isRefusedByServer, isRetryable, mapStoreError } from "./errors.js";
import { GroupCommit, type GroupLimits, type Settled } from "./group-commit.js";
import { checkObject, type Shape } from "./shape.js";
import { LockedStatement } from "./locked-function.js";
import { arrays, clearRepair, guarded, num, REPAIRS, str, TOMBSTONES, UNNEST } from "./sql.js";
import {
  batchParams,
  batchWriteSql,
  OUTCOME_COLUMNS,
  outcomeOf,
  unitResult,
  type BatchOp,
  type OpOutcome,
} from "./write-batch.js";

const WRITE_ATTEMPTS = 4;
/** Below this many rows sampleKeys just sorts the whole table at random. */
const SMALL_TABLE = 5000;

/**
 * One statement of at most 128 writes at a time per table; writes that waited 4 times as long as a
 * statement usually takes (5 to 100 ms) start another, up to 4 at once.
 */
export const GROUP_LIMITS: GroupLimits = {
  maxOps: 128,
  inFlight: 1,
  minWaitMs: 5,
  maxWaitMs: 100,
  maxInFlight: 4,
};

/** One request's writes: all or nothing. */
interface WriteUnit {
  ops: WriteOp[];
  minVersion: number;
  /** the audit tag of each op (audit logs only) */
  tags?: string[];
}

/** Where a table's writes are audited: the keyspace's name and its audit table. */
export interface AuditTarget {
  keyspace: string;
  table: string;
}

export class SqlTableStore implements TableStore {
  private readonly group: GroupCommit<WriteUnit, WriteResult[]>;
  /** a write batch (write-batch.ts) */
  private readonly batch: LockedStatement;
  /** write-behind's versioned writes */
  private readonly versioned: LockedStatement;
  /** the version of a key once its writes in flight ended */
  private readonly settled: LockedStatement;

  constructor(
    private readonly driver: Driver,
    /** the table name as configured: the tombstones' `tbl` */
    private readonly name: string,
    private readonly shape: Shape,
    /** a mapped table's listed columns: the fields a value may have */
    private readonly columns?: string[],
    limits: GroupLimits = GROUP_LIMITS,
    /** every write committed here writes its audit row there, in the same statement */
    private readonly audit?: AuditTarget,
  ) {
    this.batch = new LockedStatement(batchWriteSql(shape, audit), OUTCOME_COLUMNS, 7);
    this.versioned = new LockedStatement(versionedWriteSql(shape, audit), "changed int8", audit ? 6 : 3);
    this.settled = new LockedStatement(
      `select greatest(
         (select ${shape.version} from ${shape.table} as d where ${shape.keyIs("$2[1]")}),
         (select t.version from ${TOMBSTONES} as t where t.tbl = $1 and t.key = $2[1]),
         0)::int8`,
      "version int8",
      1,
    );
    this.group = new GroupCommit(limits, (units) => this.runUnits(units));
  }

  /** Creates the functions its locked statements run through (in `tx`, under the DDL lock). */
  async prepare(tx: Queryable): Promise<void> {
    for (const st of [this.batch, this.versioned, this.settled]) await st.prepare(tx);
  }

  /** Once prepare()'s transaction committed: the statements run through their functions. */
  activate(): void {
    for (const st of [this.batch, this.versioned, this.settled]) st.activate();
  }

  private rowOf(r: Row): StoredRow {
    return { key: str(r.key), value: str(r.value), version: num(r.version) };
  }

  async get(key: string): Promise<StoredRow | null> {
    const s = this.shape;
    try {
      const r = await this.driver.query(
        `select ${s.keyText} as key, ${s.valueText} as value, ${s.version} as version
         from ${s.table} as d where ${s.keyIs("$1")}`,
        [key],
      );
      return r.rows[0] ? this.rowOf(r.rows[0]) : null;
    } catch (err) {
      if (this.badKey(err)) return null;
      throw mapStoreError(err);
    }
  }

  async getMany(keys: string[]): Promise<Map<string, StoredRow>> {
    const found = new Map<string, StoredRow>();
    if (keys.length === 0) return found;
    const s = this.shape;
    try {
      const r = await this.driver.query(
        `select ${s.keyText} as key, ${s.valueText} as value, ${s.version} as version
         from ${s.table} as d where ${s.keyIn("$1")}`,
        [[...new Set(keys)]],
      );
      for (const row of r.rows) found.set(str(row.key), this.rowOf(row));
      return found;
    } catch (err) {
      if (!this.badKey(err)) throw mapStoreError(err);
    }
    // A key the key column's type can not hold spoiled the batch: look the keys up one by one.
    for (const key of new Set(keys)) {
      const row = await this.get(key);
      if (row) found.set(key, row);
    }
    return found;
  }

  /** A mapped table's key that its key column's type can not hold ("abc" for an integer) exists nowhere. */
  private badKey(err: unknown): boolean {
    const state = (err as { code?: unknown } | null)?.code;
    return this.shape.canonicalKey !== undefined && typeof state === "string" && state.startsWith("22");
  }

  private checkValues(ops: { key: string; value: string | null }[]): void {
    const columns = this.columns;
    if (columns) for (const op of ops) if (op.value !== null) checkObject(op.key, op.value, columns);
  }

  async currentVersion(key: string): Promise<number> {
    try {
      return await this.versionOf(key);
    } catch (err) {
      if (this.badKey(err)) return 0;
      throw mapStoreError(err);
    }
  }

  async settledVersion(key: string): Promise<number> {
    // This daemon's own writes of the key first (one may still wait to be sent), then everyone's: the lock.
    await this.group.idle(key);
    try {
      const call = this.settled.call(this.name, [key], [[key]]);
      const r = await this.driver.query(call.text, call.values);
      return num(r.rows[0]?.version);
    } catch (err) {
      if (this.badKey(err)) return 0;
      throw mapStoreError(err);
    }
  }

  private async versionOf(key: string): Promise<number> {
    const s = this.shape;
    const r = await this.driver.query(
      `select greatest(
         (select ${s.version} from ${s.table} as d where ${s.keyIs("$1")}),
         (select t.version from ${TOMBSTONES} as t where t.tbl = $2 and t.key = $1),
         0) as version`,
      [key, this.name],
    );
    return num(r.rows[0]?.version);
  }

  async newerThan(ops: { key: string; version: number }[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (ops.length === 0) return out;
    const s = this.shape;
    return guarded(async () => {
      const r = await this.driver.query(
        `select u.k as key, greatest(
           (select ${s.version} from ${s.table} as d where ${s.keyIs("u.k")}),
           (select t.version from ${TOMBSTONES} as t where t.tbl = $1 and t.key = u.k)) as version
         from unnest($2::text[], $3::int8[]) as u(k, n)`,
        [this.name, ops.map((o) => o.key), ops.map((o) => String(o.version))],
      );
      const asked = new Map(ops.map((o) => [o.key, o.version]));
      for (const row of r.rows) {
        const current = num(row.version);
        if (current > (asked.get(str(row.key)) ?? Infinity)) out.set(str(row.key), current);
      }
      return out;
    });
  }

  async write(ops: WriteOp[], options: WriteOptions): Promise<WriteResult[]> {
    if (ops.length === 0) return [];
    this.checkValues(ops);
    const keys = [...new Set(ops.map((o) => o.key))];
    if (keys.length < ops.length) throw new InvalidRequestError("A write names the same key twice.");
    const tags = this.audit
      ? ops.map((o) => auditTag(options.origin, o.value === null ? "delete" : options.mset ? "mset" : "put"))
      : undefined;
    const results = await this.group.submit(
      { ops, minVersion: options.minVersion, tags },
      keys,
      ops.length,
      options.withdrawal,
    );
    for (const r of results) observeVersion(r.version);
    return results;
  }

  /** One statement for these units (keys distinct across them); one answer per unit. */
  private async runUnits(units: WriteUnit[]): Promise<Settled<WriteResult[]>[]> {
    for (let attempt = 1; ; attempt++) {
      let outcomes: OpOutcome[];
      try {
        outcomes = await this.statement(units);
      } catch (err) {
        if (isRetryable(err) && attempt < WRITE_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.random() * 20));
          continue;
        }
        // Refused by the server (a constraint, a bad value, a deferred check at the commit): nothing was
        // written; each unit alone finds out which one it was.
        if (units.length > 1 && isRefusedByServer(err)) {
          return Promise.all(units.map(async (u) => (await this.runUnits([u]))[0]!));
        }
        const error = isRetryable(err)
          ? new BackendUnavailableError("store", "PostgreSQL kept aborting the write as a conflict.", err)
          : mapStoreError(err);
        return units.map(() => ({ ok: false, error }));
      }
      let at = 0;
      return units.map((u) => {
        const mine = outcomes.slice(at, (at += u.ops.length));
        try {
          return { ok: true, value: unitResult(u.ops, mine) };
        } catch (error) {
          return { ok: false, error };
        }
      });
    }
  }

  private async statement(units: WriteUnit[]): Promise<OpOutcome[]> {
    const ops: BatchOp[] = units.flatMap((u, unit) =>
      u.ops.map((o, i) => ({ ...o, unit, minVersion: u.minVersion, tag: u.tags?.[i] })),
    );
    const call = this.batch.call(
      this.name,
      ops.map((o) => o.key),
      batchParams(ops),
    );
    const r = await this.driver.autocommit(call.text, call.values);
    if (r.rows.length !== ops.length)
      throw new Error(`the write returned ${r.rows.length} rows for ${ops.length} writes`);
    return r.rows.map(outcomeOf);
  }

  async applyVersioned(batch: VersionedOp[], audit: AuditEntry[] = []): Promise<number> {
    if (batch.length === 0) return 0;
    // One op per key (an upsert can not touch a row twice in one statement): the newest wins.
    const newest = new Map<string, VersionedOp>();
    for (const op of batch) if ((newest.get(op.key)?.version ?? -1) < op.version) newest.set(op.key, op);
    const ops = [...newest.values()];
    this.checkValues(ops);
    const params: (readonly (string | null)[])[] = [...arrays(ops)];
    if (this.audit) {
      params.push(
        audit.map((e) => e.key),
        audit.map((e) => String(e.version)),
        audit.map(flushTag),
      );
    }
    // The key locks make the tombstone check exact against a concurrent write() of the same key.
    const call = this.versioned.call(
      this.name,
      ops.map((o) => o.key),
      params,
    );
    return guarded(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await this.driver.autocommit(call.text, call.values);
          return num(r.rows[0]?.changed);
        } catch (err) {
          if (!isRetryable(err) || attempt >= WRITE_ATTEMPTS) throw err;
        }
      }
    });
  }

  recordRepair(key: string, version: number): Promise<void> {
    return guarded(async () => {
      await this.driver.query(
        `insert into ${REPAIRS} as r (tbl, key, version) values ($1, $2, $3)
         on conflict (tbl, key) do update set version = greatest(r.version, excluded.version)`,
        [this.name, key, String(version)],
      );
    });
  }

  clearRepair(key: string, version: number): Promise<boolean> {
    return guarded(() => clearRepair(this.driver, this.name, key, version));
  }

  async sampleKeys(n: number): Promise<string[]> {
    if (n <= 0) return [];
    const s = this.shape;
    return guarded(async () => {
      const small = await this.driver.query(
        `select count(*) as c from (select 1 from ${s.table} as d limit ${SMALL_TABLE + 1}) as x`,
      );
      if (num(small.rows[0]?.c) <= SMALL_TABLE) {
        const r = await this.driver.query(
          `select ${s.keyText} as key from ${s.table} as d order by random() limit $1`,
          [n],
        );
        return r.rows.map((row) => str(row.key));
      }
      const est = await this.driver.query(`select reltuples from pg_class where oid = to_regclass($1)`, [
        s.table,
      ]);
      const rows = Math.max(num(est.rows[0]?.reltuples), SMALL_TABLE + 1);
      // SYSTEM picks whole pages: ask for 4x what is needed, and more when a sample came back short.
      let percent = Math.min(100, ((n * 4) / rows) * 100);
      for (;;) {
        const r = await this.driver.query(
          `select ${s.keyText} as key from ${s.table} as d tablesample system ($1::real) order by random() limit $2`,
          [percent, n],
        );
        if (r.rows.length >= n || percent >= 100) return r.rows.map((row) => str(row.key));
        percent = Math.min(100, percent * 4);
      }
    });
  }

  async scanKeys(after: string | null, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const s = this.shape;
    return guarded(async () => {
      const r =
        after === null
          ? await this.driver.query(
              `select ${s.keyText} as key from ${s.table} as d order by ${s.orderByKey} limit $1`,
              [limit],
            )
          : await this.driver.query(
              `select ${s.keyText} as key from ${s.table} as d where ${s.keyAfter("$1")} order by ${s.orderByKey} limit $2`,
              [after, limit],
            );
      return r.rows.map((row) => str(row.key));
    });
  }
}

/** Write-behind's writes, each at the version it was acknowledged with: ops (u) -> eligible (e: above the
 * tombstone) -> upsert / delete where above the row -> tombstones (-> the audit rows of the ops that
 * landed). $1 the table name, $2.. keys, values, versions (then, with an audit log, flushAuditSql's). */
function versionedWriteSql(s: Shape, audit?: AuditTarget): string {
  return `
      with u as (select * from ${UNNEST("$2", "$3", "$4")}),
      e as (
        select u.* from u left join ${TOMBSTONES} as t on t.tbl = $1 and t.key = u.k
        where t.version is null or u.n > t.version
      ),
      puts as (${s.upsert("e as u", "u.v is not null", true)} returning 1),
      dels as (${s.deleteUsing("e as u", true)} and u.v is null returning 1),
      tombs as (
        insert into ${TOMBSTONES} as t (tbl, key, version, deleted_at)
        select $1, u.k, u.n, now() from e as u where u.v is null
        on conflict (tbl, key) do update set version = excluded.version, deleted_at = excluded.deleted_at
        where t.version < excluded.version
        returning 1
      )${
        audit
          ? `,
      ${flushAuditSql(s, audit)}`
          : ""
      }
      select ((select count(*) from puts) + (select count(*) from dels))::int8 as changed`;
}

/**
 * The audit rows of a flush ($5 keys, $6 versions, $7 tags): those of the keys whose op lands, the ones
 * eligible (above the tombstone) that no row of the same version or newer holds, exactly the ops the
 * upsert and the delete act on. A replayed op lands nowhere and adds none.
 */
function flushAuditSql(s: Shape, audit: AuditTarget): string {
  return `landed as (
        select e.k from e where not exists (
          select 1 from ${s.table} as d where ${s.keyIs("e.k")} and ${s.version} >= e.n)
      ),
      audit as (${auditInsertFlush(audit, { k: "$5", n: "$6", t: "$7" }, "landed")} returning 1)`;
}
