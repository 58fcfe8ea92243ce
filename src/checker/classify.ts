/**
 * The verdict on one key from what each side holds. Pure: the checker reads, this decides.
 *
 * Only a fresh value or absent entry is a claim the cache makes to readers; a tombstone, an expired entry
 * (served only as a fallback while PostgreSQL fails) or no entry sends reads to PostgreSQL, so it can not lie.
 */
import type { CacheEntry } from "../cache/adapter.js";
import type { StoredRow } from "../store/adapter.js";
import type { Kind } from "./types.js";

export type Verdict = Kind | "skip";

export interface Sides {
  entry: CacheEntry | null;
  row: StoredRow | null;
  /** the version of a write still queued for PostgreSQL (write-behind), if any */
  pending: number | undefined;
}

export interface ClassifyOptions {
  now: number;
  /**
   * a mapped table's value columns (not the key or version column, which the store fills): objects are
   * compared on these, a missing field reading as null, as PostgreSQL stores it
   */
  columns?: string[];
}

/** Whether the cache makes a claim about the key that readers would see. */
export function claims(entry: CacheEntry | null, now: number): entry is CacheEntry {
  return entry !== null && entry.kind !== "tombstone" && entry.freshUntil > now;
}

export function classify(s: Sides, o: ClassifyOptions): Verdict {
  // A queued write is what reads see until it lands: PostgreSQL is expected to be behind.
  if (s.pending !== undefined) return "skip";
  const { entry, row } = s;
  if (!claims(entry, o.now)) return "consistent";
  if (entry.kind === "absent") {
    if (!row) return "consistent";
    if (row.version > entry.version) return "stale";
    if (entry.version > row.version) return "missing_write";
    return "mismatch";
  }
  // A cached value whose row is gone. (In a write-behind keyspace the checker asks PostgreSQL whether
  // the key ever had the cached version: if not, it is a lost write, not an orphan.)
  if (!row) return "orphan";
  if (row.version > entry.version) return "stale";
  if (entry.version > row.version) return "missing_write";
  return sameValue(entry.value ?? "null", row.value, o.columns) ? "consistent" : "mismatch";
}

/** Whether anything a verdict rests on changed between two reads of a key. */
export function moved(a: Sides, b: Sides, now: number): boolean {
  if (a.pending !== b.pending) return true;
  if ((a.row?.version ?? null) !== (b.row?.version ?? null)) return true;
  const ea = claims(a.entry, now) ? a.entry : null;
  const eb = claims(b.entry, now) ? b.entry : null;
  if (ea === null || eb === null) return ea !== eb;
  return ea.kind !== eb.kind || ea.version !== eb.version || ea.value !== eb.value;
}

/** JSON values compared semantically: PostgreSQL's jsonb keeps neither key order nor spacing. */
export function sameValue(cached: string, stored: string, columns?: string[]): boolean {
  let a: unknown;
  let b: unknown;
  try {
    a = JSON.parse(cached);
    b = JSON.parse(stored);
  } catch {
    return cached === stored;
  }
  if (columns && isObject(a) && isObject(b)) {
    return columns.every((c) => canonical(a[c] ?? null) === canonical(b[c] ?? null));
  }
  return canonical(a) === canonical(b);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObject(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
