/**
 * The SQL of the store, shared by both drivers (pg and PGlite).
 *
 * - Every key a write touches is first locked with a transaction-scoped advisory lock on
 *   (hashtext(table), hashtext(key)), taken in one statement in a fixed order, so writes of one key are
 *   serialized (also a key that does not exist yet, where `for update` has no row to lock) and two writes
 *   of overlapping keys can not deadlock each other.
 * - Deleted keys leave a tombstone in sidecache_tombstones holding the version of the delete; the next
 *   version of a key is above its row and its tombstone, so it only grows.
 * - sidecache_cache_repairs holds the cache updates that failed after a commit (docs/design.md, cache
 *   repairs) until the cache entry is known to be repaired.
 * - Identifiers come only from the configuration and are always quoted; keys and values travel only as
 *   bound parameters (arrays of them for batches).
 */
import { BackendUnavailableError, StoreRejectedError, VersionMismatchError } from "../errors.js";
import type { Logger } from "../log.js";
import { observeVersion } from "../version.js";
import type {
  RepairIntent,
  StoreAdapter,
  StoredRow,
  TableMapping,
  TableStore,
  VersionedOp,
  WriteOp,
  WriteOptions,
  WriteResult,
} from "./adapter.js";
import type { Driver, Queryable, Row } from "./driver.js";
import { isRetryable, mapStoreError } from "./errors.js";

export const TOMBSTONES = "sidecache_tombstones";
export const REPAIRS = "sidecache_cache_repairs";
const WRITE_ATTEMPTS = 4;
/** Below this many rows sampleKeys just sorts the whole table at random. */
const SMALL_TABLE = 5000;
/** jsonb_build_object takes at most 100 arguments: build big objects in chunks joined with ||. */
const PAIRS_PER_CALL = 40;

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}

function str(v: unknown): string {
  return typeof v === "string" ? v : String(v);
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapStoreError(err);
  }
}

/** An error thrown by the caller's beforeCommit, carried through the transaction unchanged. */
class CallerError {
  constructor(readonly error: unknown) {}
}

/**
 * The SQL fragments in which a managed table and a mapped one differ. `u` is always the alias of the
 * unnested parameter arrays, with columns k (key text), v (value text) and n (version bigint).
 */
interface Shape {
  table: string;
  /** the key as text */
  keyText: string;
  /** the stored value as JSON text */
  valueText: string;
  /** the version, 0 when a mapped row has none */
  version: string;
  /** condition: the row's key equals the text parameter p */
  keyIs(p: string): string;
  /** condition: the row's key is one of the text[] parameter p */
  keyIn(p: string): string;
  /** condition for keyset pagination: the row's key is after the text parameter p */
  keyAfter(p: string): string;
  orderByKey: string;
  /** insert ... select ... on conflict ... of the rows of `source` (a from-item exposing u) that pass `filter` */
  upsert(source: string, filter: string, onlyNewer: boolean): string;
  /** delete the rows whose key is u.k among `source` */
  deleteUsing(source: string, onlyNewer: boolean): string;
  /** mapped tables only: the key cast to the key column's type and back to text */
  canonicalKey?: (p: string) => string;
}

function managedShape(table: string): Shape {
  const t = quoteIdent(table);
  return {
    table: t,
    keyText: `d."key"`,
    valueText: `d."value"::text`,
    version: `d."version"`,
    keyIs: (p) => `d."key" = ${p}`,
    keyIn: (p) => `d."key" = any(${p}::text[])`,
    keyAfter: (p) => `d."key" collate "C" > ${p}`,
    orderByKey: `d."key" collate "C"`,
    upsert: (source, filter, onlyNewer) =>
      `insert into ${t} as d ("key", "value", "version", "updated_at")
       select u.k, u.v::jsonb, u.n, now() from ${source} where ${filter}
       on conflict ("key") do update
         set "value" = excluded."value", "version" = excluded."version", "updated_at" = excluded."updated_at"
       ${onlyNewer ? `where d."version" < excluded."version"` : ""}`,
    deleteUsing: (source, onlyNewer) =>
      `delete from ${t} as d using ${source} where d."key" = u.k ${onlyNewer ? `and d."version" < u.n` : ""}`,
  };
}

interface MappedColumns {
  keyColumn: string;
  keyType: string;
  columns: string[];
  versionColumn: string;
}

function mappedShape(table: string, m: MappedColumns): Shape {
  const t = quoteIdent(table);
  const kc = `d.${quoteIdent(m.keyColumn)}`;
  const vc = quoteIdent(m.versionColumn);
  const cast = (p: string) => `cast(${p}::text as ${m.keyType})`;
  const pairs = m.columns.map((c) => `${quoteLiteral(c)}, d.${quoteIdent(c)}`);
  const chunks: string[] = [];
  for (let i = 0; i < pairs.length; i += PAIRS_PER_CALL) {
    chunks.push(`jsonb_build_object(${pairs.slice(i, i + PAIRS_PER_CALL).join(", ")})`);
  }
  // The key column is filled from the key and the version column by the store, never from the value.
  const valueColumns = m.columns.filter((c) => c !== m.keyColumn && c !== m.versionColumn);
  const insertColumns = [quoteIdent(m.keyColumn), ...valueColumns.map(quoteIdent), vc];
  const setList = [...valueColumns.map(quoteIdent), vc].map((c) => `${c} = excluded.${c}`).join(", ");
  return {
    table: t,
    keyText: `${kc}::text`,
    valueText: `(${chunks.length > 0 ? chunks.join(" || ") : "'{}'::jsonb"})::text`,
    version: `coalesce(d.${vc}, 0)`,
    // The typed comparison uses the key column's index; the text one makes "01" not find the row of 1.
    keyIs: (p) => `${kc} = ${cast(p)} and ${kc}::text = ${p}`,
    keyIn: (p) => `${kc} = any(cast(${p}::text[] as ${m.keyType}[])) and ${kc}::text = any(${p}::text[])`,
    keyAfter: (p) => `${kc} > ${cast(p)}`,
    orderByKey: kc,
    upsert: (source, filter, onlyNewer) =>
      `insert into ${t} as d (${insertColumns.join(", ")})
       select ${[cast("u.k"), ...valueColumns.map((c) => `r.${quoteIdent(c)}`), "u.n"].join(", ")}
       from ${source} cross join lateral jsonb_populate_record(null::${t}, u.v::jsonb) as r where ${filter}
       on conflict (${quoteIdent(m.keyColumn)}) do update set ${setList}
       ${onlyNewer ? `where coalesce(d.${vc}, 0) < excluded.${vc}` : ""}`,
    deleteUsing: (source, onlyNewer) =>
      `delete from ${t} as d using ${source} where ${kc} = ${cast("u.k")}
       ${onlyNewer ? `and coalesce(d.${vc}, 0) < u.n` : ""}`,
    canonicalKey: (p) => `${cast(p)}::text`,
  };
}

/** Keys and values of a batch as the parameter arrays `unnest($a::text[], $b::text[], $c::int8[])` takes. */
function arrays(
  items: { key: string; value: string | null; version: number }[],
): [string[], (string | null)[], string[]] {
  return [items.map((i) => i.key), items.map((i) => i.value), items.map((i) => String(i.version))];
}

const UNNEST = (a: string, b: string, c: string) =>
  `unnest(${a}::text[], ${b}::text[], ${c}::int8[]) as u(k, v, n)`;

/** Locks every key of the batch for the rest of the transaction, in one fixed order. */
async function lockKeys(tx: Queryable, table: string, keys: string[]): Promise<void> {
  await tx.query(
    `select count(pg_advisory_xact_lock(l.t, l.k)) from (
       select distinct hashtext($1) as t, hashtext(k) as k from unnest($2::text[]) as k order by 1, 2
     ) as l`,
    [table, keys],
  );
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
    const s = this.shape;
    try {
      const r = await this.driver.query(
        `select greatest(
           (select ${s.version} from ${s.table} as d where ${s.keyIs("$1")}),
           (select t.version from ${TOMBSTONES} as t where t.tbl = $2 and t.key = $1),
           0) as version`,
        [key, this.name],
      );
      return num(r.rows[0]?.version);
    } catch (err) {
      if (this.badKey(err)) return 0;
      throw mapStoreError(err);
    }
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
    const rows = await tx.query(
      `select ${s.keyText} as key, ${s.version} as version from ${s.table} as d where ${s.keyIn("$1")} for update of d`,
      [keys],
    );
    const tombs = await tx.query(
      `select t.key, t.version from ${TOMBSTONES} as t where t.tbl = $1 and t.key = any($2::text[])`,
      [this.name, keys],
    );
    const state = new Map<string, { row: number | null; tomb: number; value: string | null }>();
    for (const k of keys) state.set(k, { row: null, tomb: 0, value: null });
    for (const r of rows.rows) state.get(str(r.key))!.row = num(r.version);
    for (const r of tombs.rows) state.get(str(r.key))!.tomb = num(r.version);

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

async function clearRepair(db: Queryable, table: string, key: string, version: number): Promise<boolean> {
  const r = await db.query(`delete from ${REPAIRS} where tbl = $1 and key = $2 and version = $3`, [
    table,
    key,
    String(version),
  ]);
  return r.rowCount > 0;
}

/** A mapped table takes a JSON object whose fields are among its listed columns. */
function checkObject(key: string, value: string, columns: string[]): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new StoreRejectedError(`The value of ${JSON.stringify(key)} is not valid JSON.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new StoreRejectedError(
      `The value of ${JSON.stringify(key)} must be a JSON object with the fields ${columns.join(", ")}.`,
    );
  }
  const unknown = Object.keys(parsed).filter((f) => !columns.includes(f));
  if (unknown.length > 0) {
    throw new StoreRejectedError(
      `The value of ${JSON.stringify(key)} has fields that are not columns of the table: ${unknown.join(", ")} ` +
        `(allowed: ${columns.join(", ")}).`,
    );
  }
}

export class SqlStoreAdapter implements StoreAdapter {
  readonly kind: string;
  private tombstones: Promise<void> | null = null;

  constructor(
    /** the connection(s) underneath, for callers that need raw SQL (tests, tooling) */
    readonly driver: Driver,
    private readonly log?: Logger,
  ) {
    this.kind = driver.kind;
  }

  /** Runs DDL one daemon at a time: `create table if not exists` alone can race on the catalog. */
  private async ddl(sql: string): Promise<void> {
    await this.driver.transaction(async (tx) => {
      await tx.query(`select pg_advisory_xact_lock(hashtext('sidecache:ddl'))`);
      await tx.query(sql);
    });
  }

  /** The tables every keyspace shares: tombstones and repair intents. */
  private ensureTombstones(): Promise<void> {
    this.tombstones ??= (async () => {
      await this.ddl(
        `create table if not exists ${TOMBSTONES} (
           tbl text not null, key text not null, version bigint not null, deleted_at timestamptz not null,
           primary key (tbl, key))`,
      );
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
        return new SqlTableStore(this.driver, table, managedShape(table));
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
      return new SqlTableStore(
        this.driver,
        table,
        mappedShape(table, { ...mapped, keyType }),
        mapped.columns,
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
