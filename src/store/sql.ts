/**
 * The small pieces the store's statements are built from, shared by the adapter (sql-store.ts) and its
 * tables (table-store.ts): the names of the shared tables, quoting, reading numbers and text out of rows,
 * the error mapping every call goes through, the unnest of a batch's parameter arrays, the function that
 * runs a statement under its keys' locks and the clearing of a repair intent.
 * Identifiers come only from the configuration and are always quoted; keys and values travel only as
 * bound parameters (arrays of them for batches).
 */
import type { Queryable } from "./driver.js";
import { mapStoreError } from "./errors.js";

export const TOMBSTONES = "sidecache_tombstones";
export const REPAIRS = "sidecache_cache_repairs";

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

export function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}

export function str(v: unknown): string {
  return typeof v === "string" ? v : String(v);
}

export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapStoreError(err);
  }
}

/** Keys and values of a batch as the parameter arrays `unnest($a::text[], $b::text[], $c::int8[])` takes. */
export function arrays(
  items: { key: string; value: string | null; version: number }[],
): [string[], (string | null)[], string[]] {
  return [items.map((i) => i.key), items.map((i) => i.value), items.map((i) => String(i.version))];
}

export const UNNEST = (a: string, b: string, c: string) =>
  `unnest(${a}::text[], ${b}::text[], ${c}::int8[]) as u(k, v, n)`;

/** The function that runs one statement under the key locks (keyLocksFunction). */
export const UNDER_KEY_LOCKS = "sidecache_under_key_locks";
/** How many text[] parameters a statement run by UNDER_KEY_LOCKS may take, after the table name ($1). */
export const LOCKED_PARAMS = 7;

/**
 * The function every write goes through: it locks each key of the statement for the rest of its
 * transaction, in one fixed order (a transaction-scoped advisory lock on (hashtext(table), hashtext(key))),
 * then runs the statement `q` with $1 = the table name and $2.. = its text[] parameters (cast in q).
 *
 * - One call is one statement from the client: its own implicit transaction, one round trip.
 * - The locks serialize the writes of a key (also of a key with no row yet, where `for update` has nothing
 *   to lock), and two statements over overlapping keys can not deadlock each other.
 * - `q` runs with a snapshot taken after the locks were granted (a VOLATILE function takes one per query
 *   it runs), so it sees every write that held a lock before it. A lock taken inside a plain statement
 *   (a CTE calling pg_advisory_xact_lock) would not: the statement's snapshot predates the wait.
 */
/** Taken first by every transaction that creates sidecache's tables and functions, one daemon at a time. */
export const DDL_LOCK = `select pg_advisory_xact_lock(hashtext('sidecache:ddl'))`;

/**
 * The PL/pgSQL statement that locks the keys `keys` (a text[] expression) of the table `table` (text), in
 * one fixed order. Every function that writes under key locks takes them with it, so two of them never
 * wait for each other's locks in opposite orders.
 */
export function lockKeysSql(table: string, keys: string): string {
  return `perform count(pg_advisory_xact_lock(l.t, l.k)) from (
        select distinct hashtext(${table}) as t, hashtext(k) as k from unnest(${keys}) as k order by 1, 2
      ) as l;`;
}

/** Whether a function of this name is on the search path. */
export async function functionExists(db: Queryable, name: string): Promise<boolean> {
  const r = await db.query(`select 1 from pg_proc where proname = $1 and pg_function_is_visible(oid)`, [
    name,
  ]);
  return r.rows.length > 0;
}

export function keyLocksFunction(): string {
  const params = Array.from({ length: LOCKED_PARAMS }, (_, i) => `p${i + 1} text[] default null`);
  const using = Array.from({ length: LOCKED_PARAMS }, (_, i) => `p${i + 1}`);
  return `create or replace function ${UNDER_KEY_LOCKS}(tbl text, keys text[], q text, ${params.join(", ")})
    returns setof record language plpgsql volatile as $fn$
    begin
      ${lockKeysSql("tbl", "keys")}
      return query execute q using tbl, ${using.join(", ")};
    end $fn$`;
}

/**
 * The call of `q` under the locks of `keys`: `columns` declares what q returns ("version int8, ...");
 * params are q's $2.. (text[] arrays; q casts them).
 */
export function underKeyLocks(
  table: string,
  keys: string[],
  q: string,
  columns: string,
  params: (readonly (string | null)[])[],
): { text: string; values: unknown[] } {
  if (params.length > LOCKED_PARAMS) throw new Error(`at most ${LOCKED_PARAMS} parameters under key locks`);
  const placeholders = params.map((_, i) => `$${i + 4}`);
  return {
    text: `select * from ${UNDER_KEY_LOCKS}($1, $2, $3${placeholders.map((p) => `, ${p}`).join("")}) as r(${columns})`,
    values: [table, [...new Set(keys)], q, ...params],
  };
}

/** Drops the repair intent of a key if it is still at `version` (a newer failure keeps its own). */
export async function clearRepair(
  db: Queryable,
  table: string,
  key: string,
  version: number,
): Promise<boolean> {
  const r = await db.query(`delete from ${REPAIRS} where tbl = $1 and key = $2 and version = $3`, [
    table,
    key,
    String(version),
  ]);
  return r.rowCount > 0;
}
