/**
 * Turns the pgoutput messages of one transaction into what the cache must forget: per keyspace, a
 * tombstone version per key, or the whole keyspace.
 *
 * - INSERT and UPDATE: a tombstone at the row's new version. When the old row arrives too (REPLICA
 *   IDENTITY FULL) and the change did not move the version, one above the old version instead.
 * - DELETE, and the old key of an UPDATE that changed the key: a tombstone above the deleted row's
 *   version. That version comes from sidecache_tombstones, written in the same transaction (by the store
 *   for its own deletes, by the managed tables' trigger for everyone else's), or from the old row
 *   (REPLICA IDENTITY FULL). Without either it is not known: the tombstone then takes the highest version
 *   there is, so no fill of the key is taken until it expires.
 * - TRUNCATE, a key that can not be read (a TOASTed key column the change did not touch) and a
 *   transaction touching very many keys of a keyspace: the whole keyspace.
 * A TOASTed value that arrives unchanged is never needed: the stream only invalidates, it never fills.
 */
import type { KeyspaceConfig } from "../config/types.js";
import { TOMBSTONES } from "../store/sql.js";
import { UNCHANGED, type Lsn, type PgoutputMessage, type RelationColumn, type TupleValue } from "./wire.js";

/** The highest version a cache entry can have: a tombstone there refuses every fill until it expires. */
export const TOP_VERSION = 2 ** 53;
/** Past this many keys of one keyspace in one transaction, the keyspace is dropped instead. */
export const MAX_KEYS_PER_KEYSPACE = 50_000;

export type DropReason = "truncate" | "unkeyed" | "too_many_keys" | "slot_lost" | "slot_created";

export interface Transaction {
  commitLsn: Lsn;
  /** where the next transaction begins: the position to confirm once this one is applied */
  endLsn: Lsn;
  /** commit time, ms since the epoch (PostgreSQL's clock) */
  commitMs: number;
  /** keyspace → key → the tombstone's version */
  keys: Map<string, Map<string, number>>;
  /** keyspaces to drop whole, with why */
  dropped: Map<string, DropReason>;
}

/** How a keyspace reads its table's rows. */
interface View {
  keyspace: string;
  keyColumn: string;
  versionColumn: string;
}

interface Relation {
  name: string;
  /** column name → position in a tuple */
  index: Map<string, number>;
}

interface Deleted {
  table: string;
  key: string;
  /** the deleted row's version, when the old row was sent */
  oldVersion?: number;
}

export interface CollectorEvents {
  /** a delete whose version is not known; said once per table */
  unversionedDelete?: (table: string) => void;
  unkeyed?: (table: string, keyspace: string) => void;
}

export class ChangeCollector {
  private readonly relations = new Map<number, Relation>();
  private views = new Map<string, View[]>();
  private current?: {
    begin: { commitMs: number };
    keys: Map<string, Map<string, number>>;
    dropped: Map<string, DropReason>;
    deleted: Deleted[];
    /** table \0 key → version, from sidecache_tombstones */
    tombstones: Map<string, number>;
  };

  constructor(
    keyspaces: KeyspaceConfig[],
    private readonly events: CollectorEvents = {},
  ) {
    this.setKeyspaces(keyspaces);
  }

  /** The keyspaces to invalidate, by table (after a reload). */
  setKeyspaces(keyspaces: KeyspaceConfig[]): void {
    const views = new Map<string, View[]>();
    for (const ks of keyspaces) {
      const list = views.get(ks.table) ?? [];
      list.push({
        keyspace: ks.name,
        keyColumn: ks.mapped?.keyColumn ?? "key",
        versionColumn: ks.mapped?.versionColumn ?? "version",
      });
      views.set(ks.table, list);
    }
    this.views = views;
  }

  get inTransaction(): boolean {
    return this.current !== undefined;
  }

  /** Feeds one message; returns the transaction it completes, if any. */
  feed(m: PgoutputMessage): Transaction | undefined {
    switch (m.type) {
      case "relation":
        this.relations.set(m.relid, { name: m.name, index: positions(m.columns) });
        return undefined;
      case "begin":
        this.current = {
          begin: { commitMs: m.commitMs },
          keys: new Map(),
          dropped: new Map(),
          deleted: [],
          tombstones: new Map(),
        };
        return undefined;
      case "insert":
        this.row(m.relid, m.row, undefined, undefined);
        return undefined;
      case "update":
        this.row(m.relid, m.row, m.key ?? m.old, m.old);
        return undefined;
      case "delete":
        this.delete(m.relid, (m.old ?? m.key)!, m.old !== undefined);
        return undefined;
      case "truncate":
        for (const relid of m.relids) {
          const rel = this.relations.get(relid);
          for (const v of (rel && this.views.get(rel.name)) ?? []) this.drop(v.keyspace, "truncate");
        }
        return undefined;
      case "commit":
        return this.commit(m.commitLsn, m.endLsn, m.commitMs);
      default:
        return undefined;
    }
  }

  private row(
    relid: number,
    row: TupleValue[],
    oldKeyTuple: TupleValue[] | undefined,
    oldRow: TupleValue[] | undefined,
  ): void {
    const rel = this.relations.get(relid);
    if (!rel || !this.current) return;
    if (rel.name === TOMBSTONES) {
      const tbl = text(rel, row, "tbl");
      const key = text(rel, row, "key");
      const version = num(value(rel, row, "version"));
      if (tbl === undefined || key === undefined || version === undefined) return;
      const id = `${tbl}\u0000${key}`;
      this.current.tombstones.set(id, Math.max(this.current.tombstones.get(id) ?? 0, version));
      return;
    }
    for (const v of this.views.get(rel.name) ?? []) {
      const oldKey = oldKeyTuple ? text(rel, oldKeyTuple, v.keyColumn) : undefined;
      const newValue = value(rel, row, v.keyColumn);
      // A TOASTed key the change did not touch is the old key, when the old one was sent.
      const key = newValue === UNCHANGED ? oldKey : newValue === null ? undefined : newValue;
      if (key === undefined) {
        this.events.unkeyed?.(rel.name, v.keyspace);
        this.drop(v.keyspace, "unkeyed");
        continue;
      }
      let version = num(value(rel, row, v.versionColumn)) ?? TOP_VERSION;
      const oldVersion = oldRow ? num(value(rel, oldRow, v.versionColumn)) : undefined;
      // The writer did not move the version: the tombstone goes above the old one, so the entry of that
      // version is replaced (and fills of the row as it is now are refused until the tombstone expires).
      if (oldVersion !== undefined && version <= oldVersion) version = oldVersion + 1;
      this.add(v.keyspace, key, version);
      if (oldKey !== undefined && oldKey !== key) {
        this.current.deleted.push({ table: rel.name, key: oldKey, oldVersion });
      }
    }
  }

  private delete(relid: number, tuple: TupleValue[], full: boolean): void {
    const rel = this.relations.get(relid);
    if (!rel || !this.current || rel.name === TOMBSTONES) return;
    for (const v of this.views.get(rel.name) ?? []) {
      const key = text(rel, tuple, v.keyColumn);
      if (key === undefined) {
        this.events.unkeyed?.(rel.name, v.keyspace);
        this.drop(v.keyspace, "unkeyed");
        continue;
      }
      const oldVersion = full ? num(value(rel, tuple, v.versionColumn)) : undefined;
      this.current.deleted.push({ table: rel.name, key, oldVersion });
    }
  }

  private commit(commitLsn: Lsn, endLsn: Lsn, commitMs: number): Transaction | undefined {
    const t = this.current;
    this.current = undefined;
    if (!t) return undefined;
    const warned = new Set<string>();
    for (const d of t.deleted) {
      const recorded = t.tombstones.get(`${d.table}\u0000${d.key}`);
      let version = recorded ?? (d.oldVersion !== undefined ? d.oldVersion + 1 : undefined);
      if (version === undefined) {
        version = TOP_VERSION;
        if (!warned.has(d.table)) this.events.unversionedDelete?.(d.table);
        warned.add(d.table);
      }
      for (const v of this.views.get(d.table) ?? []) this.add(v.keyspace, d.key, version, t);
    }
    // A tombstone row says every version up to it is gone, whoever wrote it.
    for (const [id, version] of t.tombstones) {
      const [table, key] = id.split("\u0000") as [string, string];
      for (const v of this.views.get(table) ?? []) this.add(v.keyspace, key, version, t);
    }
    for (const ks of t.dropped.keys()) t.keys.delete(ks);
    return { commitLsn, endLsn, commitMs: commitMs || t.begin.commitMs, keys: t.keys, dropped: t.dropped };
  }

  private add(keyspace: string, key: string, version: number, t = this.current!): void {
    if (t.dropped.has(keyspace)) return;
    let keys = t.keys.get(keyspace);
    if (!keys) t.keys.set(keyspace, (keys = new Map()));
    keys.set(key, Math.max(keys.get(key) ?? 0, Math.min(version, TOP_VERSION)));
    if (keys.size > MAX_KEYS_PER_KEYSPACE) this.drop(keyspace, "too_many_keys", t);
  }

  private drop(keyspace: string, reason: DropReason, t = this.current): void {
    if (!t) return;
    if (!t.dropped.has(keyspace)) t.dropped.set(keyspace, reason);
    t.keys.delete(keyspace);
  }
}

function positions(columns: RelationColumn[]): Map<string, number> {
  return new Map(columns.map((c, i) => [c.name, i]));
}

function value(rel: Relation, tuple: TupleValue[], column: string): TupleValue | undefined {
  const i = rel.index.get(column);
  return i === undefined ? undefined : tuple[i];
}

function text(rel: Relation, tuple: TupleValue[], column: string): string | undefined {
  const v = value(rel, tuple, column);
  return typeof v === "string" ? v : undefined;
}

/** A version column's text as a number; null (no version) reads as 0, as the store reads it. */
function num(v: TupleValue | undefined): number | undefined {
  if (v === null) return 0;
  if (typeof v !== "string") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}
