/**
 * What the strategies see of the cache. Implementations: redis.ts (ioredis) and memory.ts
 * (in-process, bounded). Both pass test/cache-adapter.contract.ts.
 */
import type { RequestContext } from "../backend/request-context.js";

/**
 * Every entry a write leaves (a value, an absent marker, a tombstone) stays in the cache at least this long,
 * fresh or not: a reader that finds nothing knows no write reached the cache in that time, and a slow fill
 * that read the row before a write can not outlive the write's entry. See docs/design.md, "single flight".
 */
export const WRITE_MARKER_MIN_MS = 60_000;

export type EntryKind = "value" | "absent" | "tombstone";

export interface CacheEntry {
  /** value: a stored value; absent: the store has no such key (negative cache); tombstone: invalidated, reads miss */
  kind: EntryKind;
  version: number;
  /** raw JSON text of the value, only for kind "value" */
  value?: string;
  /** ms since the epoch after which the entry is stale: still kept for the grace period, served only as a fallback */
  freshUntil: number;
  /** set on entries answered from the daemon's near cache (src/near) rather than from Redis */
  near?: boolean;
}

export interface GetOptions {
  /** skip the daemon's near cache (Cache-Control: no-cache) */
  skipNear?: boolean;
  /** the request the read serves: its deadline cuts the call's timeout */
  request?: RequestContext;
}

/** One entry of setManyIfNewer. */
export interface CacheWrite {
  key: string;
  entry: CacheEntry;
  ttlMs: number;
}

export interface SetOptions {
  /**
   * The generation() seen before the data of the entry was read: when the cache changed incarnation since,
   * a value or absent entry is not taken (it may predate writes whose entries the old cache lost).
   * Tombstones are always taken: they only hide.
   */
  generation?: number;
  /** a fill: a copy of what PostgreSQL holds, not a change (nothing to announce to other daemons) */
  fill?: boolean;
  /** the request the write serves: its deadline cuts the call's timeout */
  request?: RequestContext;
}

/** "down": the connection was lost or a call failed; "up": the connection is made (again). */
export type ConnectionState = "up" | "down";

export interface CacheAdapter {
  /** "redis" or "memory" */
  readonly kind: string;
  /** The entry of one key, or null when nothing is cached. */
  get(keyspace: string, key: string, options?: GetOptions): Promise<CacheEntry | null>;
  /** Entries of many keys, in the order asked, null where nothing is cached. */
  getMany(keyspace: string, keys: string[], options?: GetOptions): Promise<(CacheEntry | null)[]>;
  /**
   * The entry when the daemon's own memory holds one it may serve now (a near cache), answered without a
   * round trip; undefined otherwise (then get() decides). Adapters without such memory leave it out.
   */
  peek?(keyspace: string, key: string, options?: GetOptions): CacheEntry | undefined;
  /**
   * Stores the entry for ttlMs unless what is cached is newer: it is taken when entry.version > cached.version,
   * or when the cached entry is a tombstone and entry.version >= its version, or when both are values of the same
   * version (the same write: a refill after expiry renews it). Atomic. Returns whether it was taken.
   */
  setIfNewer(
    keyspace: string,
    key: string,
    entry: CacheEntry,
    ttlMs: number,
    options?: SetOptions,
  ): Promise<boolean>;
  /**
   * setIfNewer for many entries of one keyspace (writes, not fills) in as few round trips as the cache
   * allows (one per bucket): each entry is taken or refused on its own by the same rule, in the order
   * given (two entries of one key: as if set one after the other). Answers in that order.
   */
  setManyIfNewer(keyspace: string, items: readonly CacheWrite[]): Promise<boolean[]>;
  /**
   * A number that changes whenever the cache may have lost entries behind the daemon's back (a Redis that
   * restarted, failed over, was flushed or replaced). A cache that lives in the process never does: 0.
   */
  generation(): number;
  /** Removes the entry whatever its version (tests, tools). */
  delete(keyspace: string, key: string): Promise<void>;
  /**
   * Removes the entry only if it is still the one observed (same kind and version): a repair never
   * removes an entry a later write left. Atomic. Returns whether it was removed.
   */
  deleteIf(keyspace: string, key: string, observed: Pick<CacheEntry, "kind" | "version">): Promise<boolean>;
  /**
   * Removes every entry of the keyspace whatever its version (its table was truncated, or changes to it
   * may have been missed); returns how many were removed. Not atomic: an entry set meanwhile may stay.
   */
  deleteKeyspace(keyspace: string): Promise<number>;
  /** Up to n keys of the keyspace picked at random (the checker's sample); may return fewer. */
  sampleKeys(keyspace: string, n: number): Promise<string[]>;
  /** Throws when the cache can not be reached. */
  ping(): Promise<void>;
  /**
   * Optional (a cache shared by daemons): takes the key's fill lease for ms, so that one daemon loads the
   * key from PostgreSQL while the others wait for its fill. A token when taken, null when another holds it.
   */
  takeFillLease?(keyspace: string, key: string, ms: number): Promise<string | null>;
  /** The key's entry, and whether its fill lease is held, in one round trip. */
  watchFill?(keyspace: string, key: string): Promise<{ entry: CacheEntry | null; leased: boolean }>;
  /** Gives the lease back if it is still this token's. */
  releaseFillLease?(keyspace: string, key: string, token: string): Promise<void>;
  /**
   * Optional (a cache shared by daemons): where daemons over the same keyspaces agree on one repair
   * sweeper and see its progress (src/trust/cache-trust.ts).
   */
  readonly trustBoard?: TrustBoard;
  /**
   * Optional (a cache shared by daemons): reads which keyspaces some daemon near-caches coherently,
   * {keyspace, lease ms, ...} (src/near/registry.ts).
   */
  readonly readNearRegistry?: () => Promise<string[]>;
  /**
   * Optional: calls the listener when the connection to the cache drops or is made again; returns a
   * function that removes it. A cache living in the process never drops and need not implement it.
   */
  onConnectionChange?(listener: (state: ConnectionState) => void): () => void;
  /** Releases connections; no timer is left running. */
  close(): Promise<void>;
}

/** What one read of a trust board says. */
export interface TrustBoardState {
  /** the daemon holding the sweeper lease, null when nobody does */
  holder: string | null;
  /** the holder's last sweep failed because PostgreSQL did not answer */
  holderStoreFailing: boolean;
  /** the last ticket issued to a sweep */
  issued: number;
  /** the highest ticket whose sweep completed */
  swept: number;
}

/**
 * One sweeper per set of keyspaces, chosen by a lease, and its progress in tickets: a sweep takes a ticket
 * (a counter in the cache) before it reads the repair intents, and marks it swept once they are applied. A
 * daemon that read `issued` = n and later sees `swept` > n knows that a whole sweep began after its read.
 */
export interface TrustBoard {
  /** The board's state, in one round trip; with readerMs, also says that a daemon reads it, for so long. */
  read(board: string, readerMs?: number): Promise<TrustBoardState>;
  /**
   * Takes or renews the sweeper lease for ttlMs; null when another daemon holds it. Issues a ticket while
   * other daemons read the board (null while none does: nobody would look at it).
   */
  claim(
    board: string,
    me: string,
    ttlMs: number,
    storeFailing: boolean,
  ): Promise<{ ticket: number | null } | null>;
  /** The sweep of this ticket completed: every intent recorded before it was taken is applied. */
  swept(board: string, ticket: number): Promise<void>;
  /** Gives the lease back if this daemon holds it. */
  release(board: string, me: string): Promise<void>;
}
