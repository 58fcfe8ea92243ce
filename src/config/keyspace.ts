/** Reader for one entry of `keyspaces:`. */
import { checkColumn, checkKeyspaceName, checkTable, IDENTIFIER_RULE } from "./checks.js";
import { KEYSPACE_DEFAULTS, NEAR_DEFAULTS, WRITE_BEHIND_DEFAULTS } from "./defaults.js";
import type { Value } from "./node.js";
import { readChecker } from "./sections.js";
import {
  STRATEGIES,
  type CheckerConfig,
  type KeyspaceConfig,
  type NearCacheConfig,
  type WriteBehindConfig,
} from "./types.js";
import { formatDuration } from "./units.js";
import { readWarm } from "../warm/config.js";
import { readAudit } from "../audit/config.js";

export const KEYSPACE_FIELDS = [
  "strategy",
  "consistency",
  "table",
  "key_column",
  "columns",
  "version_column",
  "ttl",
  "negative_ttl",
  "stale_grace",
  "refresh_ahead",
  "ttl_jitter",
  "write_behind",
  "checker",
  "near_cache",
  "fill_lease",
  "warm",
  "audit",
] as const;
const FIELDS = KEYSPACE_FIELDS;

export interface KeyspaceContext {
  cacheUrl: string;
  checker: CheckerConfig;
}

export function readKeyspace(name: string, v: Value, ctx: KeyspaceContext): KeyspaceConfig {
  const bad = checkKeyspaceName(name);
  if (bad) v.fail(bad);
  const f = v.fields(FIELDS);
  const d = KEYSPACE_DEFAULTS;

  const strategy = f.strategy.oneOf(STRATEGIES, d.strategy);
  if (strategy === "write-behind" && ctx.cacheUrl === "memory:") {
    (f.strategy.given ? f.strategy : v).fail(
      "write-behind needs a Redis cache: its queue must outlive the daemon; set cache.url to redis://... or choose another strategy",
    );
  }
  if (f.consistency.given && strategy !== "write-through") {
    f.consistency.fail(`applies only to write-through keyspaces; remove it (this keyspace is ${strategy})`);
  }
  if (f.write_behind.given && strategy !== "write-behind") {
    f.write_behind.fail(`applies only to write-behind keyspaces; remove it (this keyspace is ${strategy})`);
  }

  const ttlMs = f.ttl.duration({ def: d.ttlMs, positive: true });
  const refreshAheadMs = f.refresh_ahead.duration({ def: Math.round(ttlMs * d.refreshAheadShare) });
  if (refreshAheadMs >= ttlMs) {
    f.refresh_ahead.fail(
      `must be shorter than the ttl (${formatDuration(ttlMs)}); it is how long before expiry to refresh`,
    );
  }

  return {
    name,
    strategy,
    consistency: f.consistency.oneOf(["strict", "eventual"], d.consistency),
    table: readTable(name, f.table),
    mapped: readMapping(f),
    ttlMs,
    negativeTtlMs: f.negative_ttl.duration({ def: d.negativeTtlMs }),
    staleGraceMs: f.stale_grace.duration({ def: d.staleGraceMs }),
    refreshAheadMs,
    ttlJitter: f.ttl_jitter.num({ min: 0, max: 0.5, def: d.ttlJitter }),
    writeBehind: readWriteBehind(f.write_behind),
    checker: readChecker(f.checker, ctx.checker),
    near: readNear(f.near_cache, ctx.cacheUrl),
    fillLeaseMs: f.fill_lease.duration({ def: d.fillLeaseMs, positive: true }),
    warm: readWarm(f.warm),
    audit: readAudit(f.audit),
  };
}

function readNear(v: Value, cacheUrl: string): NearCacheConfig | undefined {
  if (!v.given) return undefined;
  if (cacheUrl === "memory:") {
    v.fail("needs a Redis cache: with cache.url memory: the cache already lives in the daemon; remove it");
  }
  const f = v.fields(["max_entries", "max_bytes", "ttl", "mode", "max_staleness", "lease"]);
  const d = NEAR_DEFAULTS;
  const mode = f.mode.oneOf(["coherent", "bounded"], d.mode);
  if (f.max_staleness.given && mode !== "bounded") {
    f.max_staleness.fail("applies only to mode: bounded; remove it (this near cache is coherent)");
  }
  if (f.lease.given && mode !== "coherent") {
    f.lease.fail("applies only to mode: coherent; remove it (this near cache is bounded)");
  }
  return {
    maxEntries: f.max_entries.int({ min: 1, def: d.maxEntries }),
    maxBytes: f.max_bytes.size({ def: d.maxBytes, positive: true }),
    ttlMs: f.ttl.duration({ def: d.ttlMs, positive: true }),
    mode,
    maxStalenessMs: f.max_staleness.duration({ def: d.maxStalenessMs, positive: true }),
    leaseMs: f.lease.duration({ def: d.leaseMs, positive: true }),
  };
}

/** The table defaults to the keyspace name when that is a legal identifier. */
function readTable(name: string, v: Value): string {
  if (v.missing && checkColumn(name) !== undefined) {
    v.fail(`is required because the keyspace name ${JSON.stringify(name)} is not ${IDENTIFIER_RULE}`);
  }
  return v.str({ expect: "a table name", def: name, check: checkTable });
}

type Fields = Record<(typeof FIELDS)[number], Value>;

/** key_column, columns and version_column together map an existing table; none of them means a managed one. */
function readMapping(f: Fields): KeyspaceConfig["mapped"] {
  const parts = [f.key_column, f.columns, f.version_column];
  const given = parts.filter((p) => p.given);
  if (given.length === 0) return undefined;
  const lacking = parts.find((p) => !p.given);
  if (lacking) {
    lacking.fail(
      "is required: a mapped table needs key_column, columns and version_column together (or none of them for a managed table)",
    );
  }
  const keyColumn = f.key_column.str({ expect: "a column name", check: checkColumn });
  const versionColumn = f.version_column.str({ expect: "a column name", check: checkColumn });
  const items = f.columns.items("column names");
  if (items.length === 0) f.columns.fail("must list at least the key column");
  const columns = items.map((c) => c.str({ expect: "a column name", check: checkColumn }));
  const twice = columns.find((c, i) => columns.indexOf(c) !== i);
  if (twice !== undefined) f.columns.fail(`lists ${twice} twice; each column may appear once`);
  if (!columns.includes(keyColumn)) {
    f.key_column.fail(`must be one of the columns (${columns.join(", ")}); got ${JSON.stringify(keyColumn)}`);
  }
  if (columns.includes(versionColumn)) {
    f.version_column.fail(
      `must not be one of the columns (${columns.join(", ")}): the version is kept apart from the value`,
    );
  }
  return { keyColumn, columns, versionColumn };
}

function readWriteBehind(v: Value): WriteBehindConfig {
  const f = v.fields(["flush_interval", "batch_size", "max_queue", "max_attempts"]);
  const d = WRITE_BEHIND_DEFAULTS;
  return {
    flushIntervalMs: f.flush_interval.duration({ def: d.flushIntervalMs, positive: true }),
    batchSize: f.batch_size.int({ min: 1, def: d.batchSize }),
    maxQueue: f.max_queue.int({ min: 1, def: d.maxQueue }),
    maxAttempts: f.max_attempts.int({ min: 1, def: d.maxAttempts }),
  };
}
