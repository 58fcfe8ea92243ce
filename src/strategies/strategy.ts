/**
 * One interface for every caching strategy; src/strategies/index.ts picks the implementation from the
 * keyspace's config. Strategies see a CacheAdapter and a TableStore, never ioredis or pg.
 */
import type { RequestContext } from "../backend/request-context.js";
import type { CacheAdapter } from "../cache/adapter.js";
import type { KeyspaceConfig, RedisTarget } from "../config/types.js";
import type { TableStore, WriteOrigin } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";
import type { Logger } from "../log.js";

export type CacheStatus = "HIT" | "MISS" | "STALE";
/** where a read was answered from: the daemon's near cache, Redis, or PostgreSQL */
export type CacheTier = "L1" | "L2" | "DB";

export interface ReadOptions {
  /** Cache-Control: no-cache: skip the daemon's near cache */
  skipNear?: boolean;
  /** the request the read serves: its deadline cuts the timeouts of the calls it makes */
  request?: RequestContext;
}

export interface ReadResult {
  found: boolean;
  /** raw JSON text when found */
  value?: string;
  /** the version read; 0 when not found */
  version: number;
  cache: CacheStatus;
  tier: CacheTier;
}

export interface Conditions {
  ifMatch?: number;
  ifNoneMatch?: boolean;
}

export interface WriteAck {
  /** 200 once PostgreSQL holds it, 202 once the write-behind queue does */
  status: 200 | 202;
  version: number;
}

export interface ManyWriteAck {
  status: 200 | 202;
  versions: Record<string, number>;
}

export interface DeleteAck {
  status: 204 | 202;
  /** write-behind: the version the delete was queued with (answered in the 202's body) */
  version?: number;
}

export interface Strategy {
  readonly name: string;
  get(key: string, options?: ReadOptions): Promise<ReadResult>;
  /** The answer get() would give, when the daemon's memory has it at once; undefined: call get(). */
  peek?(key: string, options?: ReadOptions): ReadResult | undefined;
  getMany(keys: string[], options?: ReadOptions): Promise<Map<string, ReadResult>>;
  /** value is raw JSON text, already validated; origin: who asks, for the keyspace's audit log */
  put(key: string, value: string, conditions: Conditions, origin?: WriteOrigin): Promise<WriteAck>;
  delete(key: string, conditions: Conditions, origin?: WriteOrigin): Promise<DeleteAck>;
  /** all or nothing */
  putMany(items: Map<string, string>, origin?: WriteOrigin): Promise<ManyWriteAck>;
  /** write-behind: resolves once PostgreSQL holds every write acknowledged before the call; others: 0 */
  flush(): Promise<number>;
  /** queue depth and dead letters for GET /v1/keyspaces; others: undefined */
  queueStatus?(): Promise<QueueStatus>;
  /**
   * write-behind: for each of these keys that has a write still queued for PostgreSQL (its queue entry
   * exists), the newest queued version; keys with nothing queued are left out. The consistency checker
   * skips such keys, and takes a cached version above PostgreSQL's with nothing queued as a lost write.
   */
  pendingVersions?(keys: string[]): Promise<Map<string, number>>;
  /** begin background work (flushers, refreshers) */
  start(): Promise<void>;
  /** stop background work; write-behind drains within the deadline */
  stop(deadlineMs: number): Promise<void>;
}

/** The dead letters of a write-behind keyspace: writes PostgreSQL refused for good. */
export interface DeadLetterAdmin {
  listDeadLetters(count?: number, after?: string): Promise<unknown[]>;
  /** queues the write again with a fresh version; null when no such letter. origin: who replays it */
  replayDeadLetter(id: string, origin?: WriteOrigin): Promise<number | null>;
  dropDeadLetter(id: string): Promise<boolean>;
}

export function hasDeadLetters(s: Strategy): s is Strategy & DeadLetterAdmin {
  return typeof (s as Partial<DeadLetterAdmin>).listDeadLetters === "function";
}

export interface QueueStatus {
  depth: number;
  oldestSeconds: number;
  deadLetters: number;
}

/** What a strategy sees of the daemon's trust in its cache (src/strategies/cache-trust.ts). */
export interface CacheTrustView {
  /** whether entries may be served now: read on every lookup */
  readonly trusted: boolean;
  /** not trusted because PostgreSQL did not answer the last sweep: entries may be served as STALE */
  readonly storeDown: boolean;
  /** resolves once every daemon that trusted its cache when this was called has swept again or stopped trusting */
  outlast(): Promise<void>;
}

export interface StrategyContext {
  /** drops the key's near copies in every daemon (writes that reach Redis by their own scripts) */
  nearInvalidate?: (key: string, version: number) => Promise<void>;
  keyspace: KeyspaceConfig;
  cache: CacheAdapter;
  store: TableStore;
  telemetry: Telemetry;
  log: Logger;
  /** set when the cache is Redis: where write-behind opens its connections (src/cache/connect.ts) */
  redis?: RedisTarget;
  /** the same, for one server given by URL (tests and tools) */
  redisUrl?: string;
  cachePrefix: string;
  /** whether cache entries may be served now (the daemon's CacheTrust); absent: always */
  cacheTrust?: CacheTrustView;
}
