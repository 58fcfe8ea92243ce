/** The validated configuration, in the units the code uses (milliseconds, bytes). See docs/config in README. */
export const STRATEGIES = [
  "cache-aside",
  "read-through",
  "write-through",
  "write-around",
  "write-behind",
] as const;
export type StrategyName = (typeof STRATEGIES)[number];
export type Consistency = "strict" | "eventual";
export type RepairPolicy = "invalidate" | "rewrite" | "report";
export type Permission = "read" | "write" | "admin";

export interface ServerConfig {
  host: string;
  port: number;
  /** largest accepted value (request body), bytes */
  maxValue: number;
  /** most keys or items in one _mget / _mset */
  maxBatch: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  /** graceful shutdown: how long to wait for requests in flight and write-behind drains */
  shutdownTimeoutMs: number;
  /** no request waits longer than this for its answer: past it, 504 timeout */
  requestDeadlineMs: number;
  /** HTTPS on the listener: PEM files of the certificate (chain) and its private key */
  tls?: { certFile: string; keyFile: string };
  /** the Redis protocol listener (RESP2 and RESP3), off unless given; TLS as the HTTP listener's */
  resp?: { host: string; port: number };
}

/** The circuit breaker of one backend: open after `failures` failed calls in a row, probe after `cooldownMs`. */
export interface BreakerConfig {
  failures: number;
  cooldownMs: number;
}

/** Where a shared cache lives: one server, a Redis Cluster, or a master found through Redis Sentinel. */
export type RedisTarget =
  | { kind: "url"; url: string }
  | { kind: "cluster"; nodes: string[] }
  | { kind: "sentinel"; name: string; nodes: { host: string; port: number }[] };

export interface CacheConfig {
  /**
   * redis://..., rediss://... or memory:. With `cluster` or `sentinel` it names them for messages and
   * logs (`redis-cluster://h:p,...`, `redis-sentinel://name@h:p,...`): connections are opened from
   * `redis` (src/cache/connect.ts), never from this text.
   */
  url: string;
  /** set for every Redis cache (url, cluster or sentinel); absent for memory: */
  redis?: RedisTarget;
  prefix: string;
  /** memory: only — most entries kept */
  maxEntries: number;
  /** per-call timeout for cache operations */
  timeoutMs: number;
  /** absent: the defaults (5 failures, 2s) */
  breaker?: BreakerConfig;
  /**
   * How long a successful repair sweep lets the daemon serve cache entries; a write whose cache update
   * failed waits at most this long before its answer (docs/design.md, "cache trust")
   */
  trustLeaseMs?: number;
}

export interface StoreConfig {
  /** postgres://... or pglite:PATH (pglite:memory for an in-memory database) */
  url: string;
  poolSize: number;
  timeoutMs: number;
  /** absent: the defaults (5 failures, 2s) */
  breaker?: BreakerConfig;
  /**
   * how PostgreSQL is reached (absent: "none"): "none" (directly, or through a pooler in session mode) or "transaction" (a
   * pooler such as PgBouncer in transaction mode: no session state is kept, no startup parameter but
   * application_name is sent)
   */
  pooler?: "none" | "transaction";
  /** change data capture: set to have changes made outside sidecache invalidate the cache (docs/cdc.md) */
  cdc?: CdcConfig;
}

export interface CdcConfig {
  /** the logical replication slot, created when missing */
  slot: string;
  /** the publication over every keyspace's table, created when missing */
  publication: string;
}

export interface AuthToken {
  name: string;
  token: string;
  /** keyspace name or "*" → permission; admin ⊃ write ⊃ read */
  allow: Record<string, Permission>;
}

export interface AuthConfig {
  tokens: AuthToken[];
  /** whether /metrics, /healthz and /readyz need a token */
  protectOps: boolean;
}

export interface WebhookConfig {
  url: string;
  format: "alertmanager" | "json";
}

export interface CheckerConfig {
  schedule: string;
  sample: number;
  repair: RepairPolicy;
  alertRatio: number;
  enabled: boolean;
}

export interface WriteBehindConfig {
  flushIntervalMs: number;
  batchSize: number;
  maxQueue: number;
  /** tries before a write PostgreSQL refuses for good is dead-lettered */
  maxAttempts: number;
}

/** Cache warming: which keys, how fast (src/warm). */
export interface WarmConfig {
  /** query: the keys a SELECT returns; hot: the keys read most before the last shutdown */
  from: "query" | "hot";
  /** from: query — one SELECT whose first column is the key, run read-only */
  query?: string;
  /** warm when the daemon starts */
  onStart: boolean;
  /** most keys warmed (and hot keys remembered) */
  limit: number;
  /** most keys read from PostgreSQL per second */
  rate: number;
  /** keys per read */
  batch: number;
}

export interface KeyspaceConfig {
  name: string;
  strategy: StrategyName;
  consistency: Consistency;
  table: string;
  /** set for a mapped (existing) table; undefined for a managed one */
  mapped?: { keyColumn: string; columns: string[]; versionColumn: string };
  ttlMs: number;
  negativeTtlMs: number;
  /** how long past its TTL an entry may still be served (X-Cache: STALE) when PostgreSQL fails */
  staleGraceMs: number;
  /** read-through: refresh in the background when less than this remains of the TTL */
  refreshAheadMs: number;
  /** TTL jitter as a fraction (0.1 = up to +-10%) so entries filled together do not expire together */
  ttlJitter: number;
  writeBehind: WriteBehindConfig;
  checker: CheckerConfig;
  /**
   * the longest one daemon waits for another's load of a key (a fill lease in Redis) before it loads the
   * key itself: what a daemon that died while loading costs the others
   */
  fillLeaseMs: number;
  /** an in-daemon cache in front of Redis; absent: none */
  near?: NearCacheConfig;
  /** absent: no warming configured */
  warm?: WarmConfig;
  /** absent: the keyspace keeps no audit log */
  audit?: AuditConfig;
}

/** A keyspace's audit log: one row per committed write, in PostgreSQL (docs/operations.md, audit log). */
export interface AuditConfig {
  /** the table the rows go to, created when missing; keyspaces may share one */
  table: string;
  /** rows older than this are deleted in the background; absent: kept until an operator prunes them */
  retentionMs?: number;
}

export interface NearCacheConfig {
  maxEntries: number;
  maxBytes: number;
  /** an entry is never served from the near cache older than this */
  ttlMs: number;
  /** coherent: writes wait for every daemon's copy to go (or its lease); bounded: asynchronous */
  mode: "coherent" | "bounded";
  /** bounded: how stale another daemon's copy may be after a write, at most */
  maxStalenessMs: number;
  /** coherent: the longest a write waits for a daemon that stopped answering */
  leaseMs: number;
}

export interface Config {
  /** path of the file it came from */
  file: string;
  server: ServerConfig;
  cache: CacheConfig;
  store: StoreConfig;
  auth?: AuthConfig;
  alerts: { webhooks: WebhookConfig[] };
  checker: CheckerConfig;
  log: {
    level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
    /** one info line per request; otherwise only failures (5xx, 401, 403) are logged at info, the rest at debug */
    access: boolean;
  };
  keyspaces: Map<string, KeyspaceConfig>;
}
