/** Readers for the top-level sections other than keyspaces. */
import { readCdc } from "./cdc.js";
import {
  checkCacheUrl,
  checkClusterNode,
  checkCron,
  checkKeyspaceName,
  checkStoreUrl,
  checkWebhookUrl,
} from "./checks.js";
import {
  BREAKER_DEFAULTS,
  CACHE_DEFAULTS,
  LOG_DEFAULTS,
  LOG_LEVELS,
  SERVER_DEFAULTS,
  STORE_DEFAULTS,
} from "./defaults.js";
import type { Value } from "./node.js";
import type {
  AuthConfig,
  AuthToken,
  BreakerConfig,
  CacheConfig,
  CheckerConfig,
  Config,
  Permission,
  RedisTarget,
  ServerConfig,
  StoreConfig,
  WebhookConfig,
} from "./types.js";

const MIN_TOKEN_LENGTH = 16;
const nonEmpty = (s: string) => (s.trim() === "" ? "must not be empty" : undefined);

export function readServer(v: Value): ServerConfig {
  const f = v.fields([
    "host",
    "port",
    "max_value",
    "max_batch",
    "headers_timeout",
    "request_timeout",
    "keep_alive_timeout",
    "max_connections",
    "shutdown_timeout",
    "request_deadline",
    "tls",
    "resp",
  ]);
  const d = SERVER_DEFAULTS;
  const server: ServerConfig = {
    host: f.host.str({ expect: "a host name or IP address to listen on", def: d.host, check: nonEmpty }),
    // 0 asks the system for a free port (tests).
    port: f.port.int({ min: 0, max: 65535, def: d.port }),
    maxValue: f.max_value.size({ def: d.maxValue, positive: true }),
    maxBatch: f.max_batch.int({ min: 1, def: d.maxBatch }),
    headersTimeoutMs: f.headers_timeout.duration({ def: d.headersTimeoutMs, positive: true }),
    requestTimeoutMs: f.request_timeout.duration({ def: d.requestTimeoutMs, positive: true }),
    keepAliveTimeoutMs: f.keep_alive_timeout.duration({ def: d.keepAliveTimeoutMs, positive: true }),
    maxConnections: f.max_connections.int({ min: 1, def: d.maxConnections }),
    shutdownTimeoutMs: f.shutdown_timeout.duration({ def: d.shutdownTimeoutMs }),
    requestDeadlineMs: f.request_deadline.duration({ def: d.requestDeadlineMs, positive: true }),
    tls: readTls(f.tls),
  };
  server.resp = readResp(f.resp, server);
  // Node refuses a server whose headers timeout is longer than its request timeout.
  if (server.headersTimeoutMs > server.requestTimeoutMs) {
    const at = f.headers_timeout.given ? f.headers_timeout : f.request_timeout;
    at.fail("server.headers_timeout must not be longer than server.request_timeout");
  }
  return server;
}

/** `resp: { host, port }`: the Redis protocol listener; host defaults to server.host. */
function readResp(v: Value, server: ServerConfig): ServerConfig["resp"] {
  if (v.missing) return undefined;
  const f = v.fields(["host", "port"]);
  const resp = {
    host: f.host.str({ expect: "a host name or IP address to listen on", def: server.host, check: nonEmpty }),
    port: f.port.int({ min: 0, max: 65535 }),
  };
  if (resp.port !== 0 && resp.port === server.port && resp.host === server.host) {
    f.port.fail(`is server.port (${server.port}) too; the Redis protocol needs a port of its own, e.g. 6380`);
  }
  return resp;
}

/** `tls: { cert: FILE, key: FILE }`: both PEM files, read at start-up. */
function readTls(v: Value): ServerConfig["tls"] {
  if (v.missing) return undefined;
  const f = v.fields(["cert", "key"]);
  const file = (what: string) => ({ expect: `the path of a PEM file holding the ${what}`, check: nonEmpty });
  return { certFile: f.cert.str(file("certificate")), keyFile: f.key.str(file("private key")) };
}

/** `breaker: { failures: 5, cooldown: 2s }` under cache: or store:. */
function readBreaker(v: Value): BreakerConfig {
  const f = v.fields(["failures", "cooldown"]);
  return {
    failures: f.failures.int({ min: 1, max: 1000, def: BREAKER_DEFAULTS.failures }),
    cooldownMs: f.cooldown.duration({ def: BREAKER_DEFAULTS.cooldownMs, positive: true }),
  };
}

export function readCache(v: Value): CacheConfig {
  const f = v.fields([
    "url",
    "cluster",
    "sentinel",
    "prefix",
    "max_entries",
    "timeout",
    "breaker",
    "trust_lease",
  ]);
  const d = CACHE_DEFAULTS;
  const given = (["url", "cluster", "sentinel"] as const).filter((k) => f[k].given);
  if (given.length > 1) {
    f[given[1]!].fail(
      `cache takes exactly one of url, cluster and sentinel; ${given.join(" and ")} are both given`,
    );
  }
  let url: string;
  let redis: RedisTarget | undefined;
  if (f.cluster.given) {
    const nodes = readClusterNodes(f.cluster);
    redis = { kind: "cluster", nodes };
    url = `redis-cluster://${nodes.map((n) => new URL(n).host).join(",")}`;
  } else if (f.sentinel.given) {
    const sentinel = readSentinel(f.sentinel);
    redis = sentinel;
    url = `redis-sentinel://${sentinel.name}@${sentinel.nodes.map((n) => `${n.host}:${n.port}`).join(",")}`;
  } else {
    url = f.url.str({
      expect: "memory:, redis://... or rediss://...",
      def: d.url,
      check: checkCacheUrl,
      secret: true,
    });
    if (url !== "memory:") redis = { kind: "url", url };
  }
  return {
    url,
    ...(redis ? { redis } : {}),
    prefix: f.prefix.str({
      expect: "a key prefix of 1 to 100 letters, digits, _ . : or -",
      def: d.prefix,
      check: (s) =>
        /^[A-Za-z0-9_.:-]{1,100}$/.test(s) ? undefined : "must be 1 to 100 letters, digits, _ . : or -",
    }),
    maxEntries: f.max_entries.int({ min: 1, def: d.maxEntries }),
    timeoutMs: f.timeout.duration({ def: d.timeoutMs, positive: true }),
    breaker: readBreaker(f.breaker),
    trustLeaseMs: f.trust_lease.duration({ def: d.trustLeaseMs, positive: true }),
  };
}

/** `cluster: [redis://host:port, ...]`: any nodes of the Cluster; the others are found from them. */
function readClusterNodes(v: Value): string[] {
  const items = v.items("node URLs, e.g. [redis://10.0.0.1:7000, redis://10.0.0.2:7000]");
  if (items.length === 0) v.fail("must list at least one node of the Cluster, e.g. [redis://10.0.0.1:7000]");
  return items.map((item) =>
    item.str({
      expect: "a node URL redis://HOST:PORT or rediss://HOST:PORT",
      secret: true,
      check: checkClusterNode,
    }),
  );
}

/** `sentinel: { name: mymaster, nodes: ["host:port", ...] }` */
function readSentinel(v: Value): RedisTarget & { kind: "sentinel" } {
  const f = v.fields(["name", "nodes"]);
  const name = f.name.str({
    expect: "the name of the master the sentinels watch (e.g. mymaster)",
    check: nonEmpty,
  });
  const items = f.nodes.items('sentinels as "host:port", e.g. ["10.0.0.1:26379"]');
  if (items.length === 0) f.nodes.fail('must list at least one sentinel, e.g. ["10.0.0.1:26379"]');
  const nodes = items.map((item) => {
    let node: { host: string; port: number } | undefined;
    item.str({
      expect: 'a sentinel as "host:port", e.g. "10.0.0.1:26379"',
      check: (s) => {
        const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(s);
        const port = m ? Number(m[2]) : 0;
        if (!m || port < 1 || port > 65535) return 'must be "host:port", e.g. "10.0.0.1:26379"';
        node = { host: m[1]!.replace(/^\[|\]$/g, ""), port };
        return undefined;
      },
    });
    return node!;
  });
  return { kind: "sentinel", name, nodes };
}

export function readStore(v: Value, cacheUrl: string): StoreConfig {
  const f = v.fields(["url", "pool", "timeout", "breaker", "pooler", "cdc"]);
  const d = STORE_DEFAULTS;
  const url = f.url.str({
    expect: "postgres://..., postgresql://..., pglite:PATH or pglite:memory",
    def: d.url,
    check: checkStoreUrl,
    secret: true,
  });
  const pooler = f.pooler.oneOf(["none", "transaction"], d.pooler);
  if (pooler === "transaction") {
    if (!/^postgres(ql)?:\/\//i.test(url)) {
      f.pooler.fail(
        "applies to a PostgreSQL server (store.url postgres://...); PGlite is embedded, with no pooler",
      );
    }
    if (cacheUrl === "memory:") {
      f.pooler.fail(
        'can not be transaction with cache.url "memory:": a daemon with an in-process cache keeps other ' +
          "daemons off its tables with a session lock, which a pooler in transaction mode does not hold. " +
          "Use a Redis cache, or connect to PostgreSQL directly (pooler: none)",
      );
    }
    if (f.cdc.given) {
      f.cdc.fail(
        "needs a direct connection to PostgreSQL (a replication connection and a session lock), which a " +
          "pooler in transaction mode can not carry: point store.url at PostgreSQL itself with pooler: none " +
          "(docs/connection-budget.md)",
      );
    }
  }
  return {
    url,
    poolSize: f.pool.int({ min: 1, max: 1000, def: d.poolSize }),
    timeoutMs: f.timeout.duration({ def: d.timeoutMs, positive: true }),
    breaker: readBreaker(f.breaker),
    pooler,
    cdc: readCdc(f.cdc, url),
  };
}

export function readLog(v: Value): Config["log"] {
  const f = v.fields(["level", "access"]);
  return { level: f.level.oneOf(LOG_LEVELS, LOG_DEFAULTS.level), access: f.access.bool(LOG_DEFAULTS.access) };
}

/** The global checker (over the built-in defaults) or a keyspace's (over the global one). */
export function readChecker(v: Value, base: CheckerConfig): CheckerConfig {
  const f = v.fields(["schedule", "sample", "repair", "alert_ratio", "enabled"]);
  return {
    schedule: f.schedule.str({ expect: "a cron schedule", def: base.schedule, check: checkCron }),
    sample: f.sample.int({ min: 1, def: base.sample }),
    repair: f.repair.oneOf(["invalidate", "rewrite", "report"], base.repair),
    alertRatio: f.alert_ratio.num({ min: 0, max: 1, def: base.alertRatio }),
    enabled: f.enabled.bool(base.enabled),
  };
}

export function readAlerts(v: Value): Config["alerts"] {
  const f = v.fields(["webhooks"]);
  const webhooks = f.webhooks.items("webhooks (url, format)").map((item): WebhookConfig => {
    const w = item.fields(["url", "format"]);
    return {
      url: w.url.str({ expect: "an http:// or https:// URL", check: checkWebhookUrl, secret: true }),
      format: w.format.oneOf(["alertmanager", "json"], "alertmanager"),
    };
  });
  return { webhooks };
}

/** `auth:` absent (or empty) means no token is asked for. */
export function readAuth(v: Value, keyspaces: ReadonlySet<string>): AuthConfig | undefined {
  if (v.missing) return undefined;
  const f = v.fields(["tokens", "protect_ops"]);
  const items = f.tokens.items("tokens (name, token, allow)");
  if (items.length === 0) f.tokens.fail("needs at least one token (name, token, allow) when auth: is given");
  const names = new Set<string>();
  const secrets = new Map<string, string>();
  const tokens = items.map((item): AuthToken => {
    const t = item.fields(["name", "token", "allow"]);
    const name = t.name.str({ expect: "a name for the token (shown in logs)", check: nonEmpty });
    if (names.has(name)) t.name.fail(`is used by another token; token names must be unique`);
    names.add(name);
    const token = t.token.str({
      expect: `a secret string of at least ${MIN_TOKEN_LENGTH} characters`,
      secret: true,
      check: (s) =>
        s.length >= MIN_TOKEN_LENGTH
          ? undefined
          : `is ${s.length === 0 ? "empty" : `${s.length} characters long`}; a token must be at least ${MIN_TOKEN_LENGTH} characters`,
    });
    const twin = secrets.get(token);
    if (twin !== undefined)
      t.token.fail(`is the same secret as token ${JSON.stringify(twin)}; each token must differ`);
    secrets.set(token, name);
    return { name, token, allow: readAllow(t.allow, keyspaces) };
  });
  return { tokens, protectOps: f.protect_ops.bool(false) };
}

function readAllow(v: Value, keyspaces: ReadonlySet<string>): Record<string, Permission> {
  const allow: Record<string, Permission> = {};
  const known = [...keyspaces].join(", ") || "(none configured)";
  for (const [name, value] of v.entries('a mapping of keyspace (or "*") to read, write or admin')) {
    if (name !== "*") {
      const bad = checkKeyspaceName(name);
      if (bad) value.fail(bad);
      if (!keyspaces.has(name)) value.fail(`names no configured keyspace; allowed: "*" or one of ${known}`);
    }
    allow[name] = value.oneOf(["read", "write", "admin"]);
  }
  return allow;
}
