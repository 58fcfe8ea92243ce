/**
 * The small pieces the store's statements are built from, shared by the adapter (sql-store.ts) and its
 * tables (table-store.ts): the names of the shared tables, quoting, reading numbers and text out of rows,
 * the error mapping every call goes through, the unnest of a batch's parameter arrays, the key locks and
 * the clearing of a repair intent.
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

/**
 * Locks every key of the batch for the rest of the transaction, in one fixed order: a transaction-scoped
 * advisory lock on (hashtext(table), hashtext(key)), so writes of one key are serialized (also a key that
 * does not exist yet, where `for update` has no row to lock) and two writes of overlapping keys can not
 * deadlock each other.
 */
export async function lockKeys(tx: Queryable, table: string, keys: string[]): Promise<void> {
  await tx.query(
    `select count(pg_advisory_xact_lock(l.t, l.k)) from (
       select distinct hashtext($1) as t, hashtext(k) as k from unnest($2::text[]) as k order by 1, 2
     ) as l`,
    [table, keys],
  );
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
