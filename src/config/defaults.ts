/** Defaults for every optional field, in the units of Config (milliseconds, bytes). */
import type { CheckerConfig, WriteBehindConfig } from "./types.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

export const SERVER_DEFAULTS = {
  host: "127.0.0.1",
  port: 7070,
  maxValue: 1024 * 1024,
  maxBatch: 1000,
  headersTimeoutMs: 10 * SECOND,
  requestTimeoutMs: 30 * SECOND,
  keepAliveTimeoutMs: 5 * SECOND,
  maxConnections: 10_000,
  shutdownTimeoutMs: 30 * SECOND,
  requestDeadlineMs: 10 * SECOND,
};

export const BREAKER_DEFAULTS = { failures: 5, cooldownMs: 2 * SECOND };

export const CACHE_DEFAULTS = {
  url: "memory:",
  prefix: "sidecache",
  maxEntries: 100_000,
  timeoutMs: SECOND,
  trustLeaseMs: 1_500,
};

export const STORE_DEFAULTS = {
  url: "pglite:./data/pg",
  poolSize: 10,
  timeoutMs: 5 * SECOND,
  pooler: "none" as const,
};

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const LOG_DEFAULTS = { level: "info" as const, access: false };

export const CHECKER_DEFAULTS: CheckerConfig = {
  schedule: "*/1 * * * *",
  sample: 100,
  repair: "invalidate",
  alertRatio: 0.01,
  enabled: true,
};

export const KEYSPACE_DEFAULTS = {
  strategy: "cache-aside" as const,
  consistency: "strict" as const,
  ttlMs: 60 * MINUTE,
  negativeTtlMs: 30 * SECOND,
  staleGraceMs: 5 * MINUTE,
  fillLeaseMs: 2 * SECOND,
  /** refresh_ahead, as a share of the keyspace's TTL */
  refreshAheadShare: 0.2,
  ttlJitter: 0.1,
};

export const WRITE_BEHIND_DEFAULTS: WriteBehindConfig = {
  flushIntervalMs: SECOND,
  batchSize: 500,
  maxQueue: 100_000,
  maxAttempts: 5,
};

export const NEAR_DEFAULTS = {
  maxEntries: 100_000,
  maxBytes: 64 * 1024 * 1024,
  ttlMs: 30 * SECOND,
  mode: "coherent" as const,
  maxStalenessMs: 50,
  leaseMs: 2 * SECOND,
};
