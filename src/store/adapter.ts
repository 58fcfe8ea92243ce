/**
 * What the strategies see of PostgreSQL. One StoreAdapter per database; one TableStore per keyspace,
 * bound to its table (managed, or mapped with its own columns). Implementations share the SQL in
 * sql-store.ts and table-store.ts and differ in the driver: pg (a pool) or PGlite (embedded). Both pass
 * test/store-adapter.contract.ts.
 */
import type { RequestContext } from "../backend/request-context.js";
import type { Withdrawal } from "./withdrawal.js";

export interface StoredRow {
  key: string;
  /** raw JSON text of the value */
  value: string;
  version: number;
}

export interface WriteOp {
  key: string;
  /** raw JSON text; null deletes the key */
  value: string | null;
  /** If-Match: the write happens only when the current version is this one (412 otherwise, also when absent) */
  ifMatch?: number;
  /** If-None-Match: *: the write happens only when the key is absent */
  ifNoneMatch?: boolean;
  /**
   * The version to write at, announced before the write (write-through strict puts a tombstone of it in
   * the cache first): when the key is already at it or above, nothing is written (VersionTakenError).
   */
  atVersion?: number;
}

export interface WriteResult {
  key: string;
  /** the version the key now has (for a delete: the version of the delete, kept as a tombstone) */
  version: number;
  deleted: boolean;
  /** for a delete: whether a row existed */
  existed: boolean;
}

export interface VersionedOp {
  key: string;
  value: string | null;
  version: number;
}

/** The front end a write came in by. */
export type Via = "http" | "resp";

/** Who made a write: recorded in the keyspace's audit log, when it keeps one. */
export interface WriteOrigin {
  /** the name of the caller's token; null when auth is off */
  client: string | null;
  via: Via | null;
  /** the request the write serves: its deadline cuts the timeouts of the calls it makes (never recorded) */
  request?: RequestContext;
}

export type AuditOp = "put" | "delete" | "mset";

/**
 * One audit row to write with a write-behind flush, for a write coalesced into one of its ops: recorded
 * only when the op of its key lands (and at most once per key and version, so a replayed flush adds none).
 */
export interface AuditEntry extends WriteOrigin {
  key: string;
  version: number;
  op: AuditOp;
  ifMatch?: number;
  ifNoneMatch?: boolean;
  /** ms since the epoch the write was acknowledged (queued) */
  acknowledgedAt?: number;
}

export interface WriteOptions {
  /** the lowest version to give (the daemon's clock); the store goes above the row and its tombstone too */
  minVersion: number;
  /** who asks, for the audit log (absent: recorded as nobody in particular) */
  origin?: WriteOrigin;
  /** the writes are one _mset (MSET): recorded as such in the audit log */
  mset?: boolean;
  /** the caller stopped waiting: a write not yet sent to PostgreSQL is dropped (nothing written) */
  withdrawal?: Withdrawal;
}

export interface TableStore {
  /** One row, or null. `request`: the read it serves (its deadline cuts the call's timeout). */
  get(key: string, request?: RequestContext): Promise<StoredRow | null>;
  /** Rows of the keys that exist. */
  getMany(keys: string[], request?: RequestContext): Promise<Map<string, StoredRow>>;
  /**
   * Puts and deletes in one transaction, all or nothing, each with a version above every version the key
   * ever had (row or tombstone); one op per key. Throws VersionMismatchError when a precondition fails
   * (nothing written), VersionTakenError when an announced version is taken, StoreRejectedError when
   * PostgreSQL refuses the data, BackendUnavailableError when it can not be reached (marked as an unknown
   * outcome when it may have committed). Concurrent writes of a table may share one statement.
   */
  write(ops: WriteOp[], options: WriteOptions): Promise<WriteResult[]>;
  /**
   * Applies already-versioned writes (write-behind flushes) in one statement; each op lands only when its
   * version is above the row's and the tombstone's, so a replayed or late batch never moves a key backwards.
   * Ops must hold at most one op per key. Returns how many changed a row. With an audit log, the audit
   * rows of the ops that landed are written by the same statement.
   */
  applyVersioned(ops: VersionedOp[], audit?: AuditEntry[]): Promise<number>;
  /**
   * Of these (key, version) pairs, those whose key PostgreSQL holds at a higher version (row or tombstone),
   * with that version: writes that applyVersioned did not apply because something newer was there.
   */
  newerThan(ops: { key: string; version: number }[]): Promise<Map<string, number>>;
  /**
   * As currentVersion, once no write of the key is under way: it waits for the key's lock, so a write
   * abandoned at a timeout has committed or rolled back before the version is read.
   */
  settledVersion(key: string): Promise<number>;
  /** The highest version the key ever had (row or tombstone), 0 if none. */
  currentVersion(key: string): Promise<number>;
  /** Up to n keys picked at random without a full scan on large tables. */
  sampleKeys(n: number): Promise<string[]>;
  /** Keys in order after `after` (null: from the start), at most limit: for full sweeps. */
  scanKeys(after: string | null, limit: number): Promise<string[]>;
  /**
   * Records, durably, that the cache entry of the key may hold a value older than `version` (a cache
   * update after a commit failed). Keeps the greatest version when one is already recorded.
   */
  recordRepair(key: string, version: number): Promise<void>;
  /** Forgets the repair intent of the key if it is still at this version; whether it was removed. */
  clearRepair(key: string, version: number): Promise<boolean>;
}

/** A cache update that failed after a commit and is not known to be repaired (sidecache_cache_repairs). */
export interface RepairIntent {
  /** the table name as configured */
  table: string;
  key: string;
  /** entries of the key older than this version must not be served */
  version: number;
  /** how long ago it was first recorded */
  ageSeconds: number;
}

export interface TableMapping {
  table: string;
  mapped?: { keyColumn: string; columns: string[]; versionColumn: string };
  /**
   * The keyspace keeps an audit log in this table (created when missing): every write the TableStore
   * commits writes its audit row in the same statement.
   */
  audit?: { keyspace: string; table: string };
}

/** One row of an audit log. */
export interface AuditRecord {
  key: string;
  version: number;
  op: AuditOp;
  ifMatch: number | null;
  ifNoneMatch: boolean;
  client: string | null;
  via: Via | null;
  /** PostgreSQL's clock when the write was applied, microseconds since the epoch */
  atMicros: number;
  /** write-behind: when the write was acknowledged (queued), microseconds since the epoch */
  acknowledgedAtMicros: number | null;
}

/** A position in an audit log's order (newest first): the last record of a page. */
export interface AuditPosition {
  atMicros: number;
  key: string;
  version: number;
}

export interface AuditQuery {
  table: string;
  keyspace: string;
  key?: string;
  /** microseconds since the epoch, inclusive */
  sinceMicros?: number;
  /** microseconds since the epoch, exclusive */
  untilMicros?: number;
  /** records after this one in the order */
  after?: AuditPosition;
  limit: number;
}

/** Reading and pruning audit logs (src/store/audit-sql.ts). */
export interface AuditLog {
  /** records newest first (by time, then key and version, descending) */
  read(q: AuditQuery): Promise<AuditRecord[]>;
  /** deletes at most `batch` records of the keyspace older than the cut-off; how many */
  prune(table: string, keyspace: string, olderThanMs: number, batch: number): Promise<number>;
}

/** What cache warming needs of the store (src/store/warm-sql.ts). */
export interface WarmSource {
  /** the first column of an operator's SELECT, run read-only, at most limit rows */
  queryKeys(sql: string, limit: number): Promise<string[]>;
  /** replaces the keyspace's remembered hot keys */
  saveHotKeys(keyspace: string, keys: { key: string; hits: number }[]): Promise<void>;
  /** the keyspace's remembered hot keys, hottest first */
  hotKeys(keyspace: string, limit: number): Promise<string[]>;
}

export interface StoreAdapter {
  /** "postgres" or "pglite" */
  readonly kind: string;
  /** The store of one table: a managed one is created when missing; a mapped one is checked to exist. */
  table(mapping: TableMapping): Promise<TableStore>;
  /** Repair intents of these tables in (table, key) order after `after`, at most limit: one indexed query. */
  pendingRepairs(
    tables: string[],
    after: { table: string; key: string } | null,
    limit: number,
  ): Promise<RepairIntent[]>;
  /** Forgets the intent if it is still at its version; whether it was removed. */
  clearRepair(intent: { table: string; key: string; version: number }): Promise<boolean>;
  /** Throws when the database can not be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** cache warming's queries; absent in stores that can not run them */
  readonly warmSource?: WarmSource;
  /** the audit logs of keyspaces that keep one */
  readonly auditLog?: AuditLog;
}
