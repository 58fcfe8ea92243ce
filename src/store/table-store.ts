/**
 * One table of the store: reads, versioned writes, the replay of write-behind batches, repair intents and
 * key sampling, over either Shape.
 *
 * - Every key a write touches is first locked (lockKeys), so a key's writes are serialized.
 * - Deleted keys leave a tombstone in sidecache_tombstones holding the version of the delete; the next
 *   version of a key is above its row and its tombstone, so it only grows.
 */
import { BackendUnavailableError, StoreRejectedError, VersionMismatchError } from "../errors.js";
import { observeVersion } from "../version.js";
import type { StoredRow, TableStore, VersionedOp, WriteOp, WriteOptions, WriteResult } from "./adapter.js";
import type { Driver, Queryable, Row } from "./driver.js";
import { isRetryable, mapStoreError } from "./errors.js";
import { checkObject, type Shape } from "./shape.js";
import { arrays, clearRepair, guarded, lockKeys, num, REPAIRS, str, TOMBSTONES, UNNEST } from "./sql.js";

const WRITE_ATTEMPTS = 4;
/** Below this many rows sampleKeys just sorts the whole table at random. */
const SMALL_TABLE = 5000;

/** An error thrown by the caller's beforeCommit, carried through the transaction unchanged. */
class CallerError {
  constructor(readonly error: unknown) {}
}

export class SqlTableStore implements TableStore {
  constructor(
    private readonly driver: Driver,
    /** the table name as configured: the tombstones' `tbl` */
    private readonly name: string,
    private readonly shape: Shape,
    /** a mapped table's listed columns: the fields a value may have */
    private readonly columns?: string[],
  ) {}

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
      return await this.versionOf(this.driver, key);
    } catch (err) {
      if (this.badKey(err)) return 0;
      throw mapStoreError(err);
    }
  }

  async settledVersion(key: string): Promise<number> {
    try {
      return await this.driver.transaction(async (tx) => {
        await lockKeys(tx, this.name, [key]);
        return this.versionOf(tx, key);
      });
    } catch (err) {
      if (this.badKey(err)) return 0;
      throw mapStoreError(err);
    }
  }

  private async versionOf(q: Queryable, key: string): Promise<number> {
    const s = this.shape;
    const r = await q.query(
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
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await this.driver.transaction((tx) => this.writeIn(tx, ops, options));
        for (const r of results) observeVersion(r.version);
        return results;
      } catch (err) {
        if (err instanceof CallerError) throw err.error;
        if (isRetryable(err) && attempt < WRITE_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.random() * 20));
          continue;
        }
        if (isRetryable(err)) {
          throw new BackendUnavailableError(
            "store",
            "PostgreSQL kept aborting the write as a conflict.",
            err,
          );
        }
        throw mapStoreError(err);
      }
    }
  }

  private async writeIn(tx: Queryable, ops: WriteOp[], options: WriteOptions): Promise<WriteResult[]> {
    const s = this.shape;
    const keys = [...new Set(ops.map((o) => o.key))].sort();
    await lockKeys(tx, this.name, keys);

    if (s.canonicalKey) {
      const r = await tx.query(
        `select u.k, ${s.canonicalKey("u.k")} as canon from unnest($1::text[]) as u(k)`,
        [keys],
      );
      for (const row of r.rows) {
        if (row.canon !== row.k) {
          throw new StoreRejectedError(
            `The key ${JSON.stringify(row.k)} is not in the form the key column stores (${JSON.stringify(row.canon)}).`,
          );
        }
      }
    }
    // The rows (locked) and their tombstones in one round trip.
    const current = await tx.query(
      `with r as (select ${s.keyText} as key, ${s.version} as version from ${s.table} as d ` +
        `where ${s.keyIn("$1")} for update of d) ` +
        `select u.k as key, r.key is not null as has_row, r.version as row_version, t.version as tomb_version ` +
        `from unnest($1::text[]) as u(k) left join r on r.key = u.k ` +
        `left join ${TOMBSTONES} as t on t.tbl = $2 and t.key = u.k`,
      [keys, this.name],
    );
    const state = new Map<string, { row: number | null; tomb: number; value: string | null }>();
    for (const k of keys) state.set(k, { row: null, tomb: 0, value: null });
    for (const r of current.rows) {
      const st = state.get(str(r.key))!;
      // a mapped row whose version column is null counts as version 0
      if (r.has_row) st.row = num(r.row_version);
      if (r.tomb_version !== null) st.tomb = num(r.tomb_version);
    }

    // Apply the ops in their order to the state first: preconditions see the effect of earlier ops.
    const results: WriteResult[] = [];
    for (const op of ops) {
      const st = state.get(op.key)!;
      if (op.ifMatch !== undefined && st.row !== op.ifMatch) {
        throw new VersionMismatchError(
          st.row === null
            ? `The key ${JSON.stringify(op.key)} does not exist, so it is not at version ${op.ifMatch}.`
            : `The key ${JSON.stringify(op.key)} is at version ${st.row}, not ${op.ifMatch}.`,
        );
      }
      if (op.ifNoneMatch && st.row !== null) {
        throw new VersionMismatchError(
          `The key ${JSON.stringify(op.key)} already exists (version ${st.row}).`,
        );
      }
      const version = Math.max(options.minVersion, (st.row ?? 0) + 1, st.tomb + 1);
      if (op.value === null) {
        results.push({ key: op.key, version, deleted: true, existed: st.row !== null });
        st.row = null;
        st.tomb = version;
      } else {
        results.push({ key: op.key, version, deleted: false, existed: st.row !== null });
        st.row = version;
      }
      st.value = op.value;
    }

    const puts: { key: string; value: string | null; version: number }[] = [];
    const deletes: { key: string; value: string | null; version: number }[] = [];
    for (const [key, st] of state) {
      if (st.row !== null) puts.push({ key, value: st.value, version: st.row });
      else deletes.push({ key, value: null, version: st.tomb });
    }
    if (puts.length > 0) {
      await tx.query(s.upsert(UNNEST("$1", "$2", "$3"), "true", false), arrays(puts));
    }
    if (deletes.length > 0) {
      await tx.query(s.deleteUsing(UNNEST("$1", "$2", "$3"), false), arrays(deletes));
      await tx.query(
        `insert into ${TOMBSTONES} as t (tbl, key, version, deleted_at)
         select $1, u.k, u.n, now() from unnest($2::text[], $3::int8[]) as u(k, n)
         on conflict (tbl, key) do update
           set version = greatest(t.version, excluded.version), deleted_at = excluded.deleted_at`,
        [this.name, deletes.map((d) => d.key), deletes.map((d) => String(d.version))],
      );
    }
    if (options.beforeCommit) {
      try {
        await options.beforeCommit(results);
      } catch (err) {
        throw new CallerError(err);
      }
    }
    return results;
  }

  async applyVersioned(batch: VersionedOp[]): Promise<number> {
    if (batch.length === 0) return 0;
    // One op per key (an upsert can not touch a row twice in one statement): the newest wins.
    const newest = new Map<string, VersionedOp>();
    for (const op of batch) if ((newest.get(op.key)?.version ?? -1) < op.version) newest.set(op.key, op);
    const ops = [...newest.values()];
    this.checkValues(ops);
    const s = this.shape;
    // ops (u) -> eligible (e: above the tombstone) -> upsert / delete where above the row -> tombstones.
    const sql = `
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
      )
      select (select count(*) from puts) + (select count(*) from dels) as changed`;
    const keys = [...new Set(ops.map((o) => o.key))].sort();
    return guarded(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          // The lock makes the tombstone check exact against a concurrent write() of the same key.
          return await this.driver.transaction(async (tx) => {
            await lockKeys(tx, this.name, keys);
            const r = await tx.query(sql, [this.name, ...arrays(ops)]);
            return num(r.rows[0]?.changed);
          });
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
