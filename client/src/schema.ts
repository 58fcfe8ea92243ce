/**
 * The protocol's types, generated from the OpenAPI description (src/proxy/openapi.ts) by
 * `npm run generate:client`. Do not edit: a test fails when this file and the description differ.
 */
export interface paths {
  "/v1/kv/{keyspace}/{key}": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        /** @description The key as one percent-encoded path segment (encode `/` as `%2F`). */
        key: components["parameters"]["Key"];
      };
      cookie?: never;
    };
    /** Read one value */
    get: operations["getValue"];
    /**
     * Create or replace a value
     * @description 200 once PostgreSQL holds it (write-through: and the cache); 202 for write-behind once the write is durable in the queue. read-through keyspaces refuse writes with 405.
     */
    put: operations["putValue"];
    post?: never;
    /**
     * Delete a value
     * @description Deleting an absent key is not an error.
     */
    delete: operations["deleteValue"];
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/kv/{keyspace}/_mget": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    get?: never;
    put?: never;
    /** Read many values */
    post: operations["mget"];
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/kv/{keyspace}/_mset": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    get?: never;
    put?: never;
    /** Write many values, all or nothing */
    post: operations["mset"];
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /** Each keyspace: strategy, queue depth, hit ratio, last check */
    get: operations["listKeyspaces"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/flush": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    get?: never;
    put?: never;
    /**
     * Drain the write-behind queue
     * @description Answers once PostgreSQL holds every write acknowledged before the call; 0 for other strategies.
     */
    post: operations["flush"];
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/check": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    get?: never;
    put?: never;
    /** Run the consistency check now */
    post: operations["check"];
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/dead-letters": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    /** Write-behind writes PostgreSQL refused for good */
    get: operations["listDeadLetters"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/dead-letters/{id}": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        id: components["parameters"]["DeadLetterId"];
      };
      cookie?: never;
    };
    get?: never;
    put?: never;
    post?: never;
    /** Drop a dead letter for good */
    delete: operations["dropDeadLetter"];
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/dead-letters/{id}/replay": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        id: components["parameters"]["DeadLetterId"];
      };
      cookie?: never;
    };
    get?: never;
    put?: never;
    /** Queue a dead letter again with a fresh version */
    post: operations["replayDeadLetter"];
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/audit": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    /**
     * The keyspace's audit log: who wrote what, and when
     * @description One record per committed write of a keyspace with `audit` set, written by the transaction that committed the write (for write-behind, by the flush that applied it). Newest first, by time then key and version; pages follow `next_cursor`, and records committed while paging never shift the pages. Writes made outside sidecache are not recorded. 404 `not_found` for a keyspace without `audit`; 400 `invalid_request` for a bad parameter.
     */
    get: operations["listAudit"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/v1/keyspaces/{keyspace}/warm": {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    /** The progress of the keyspace's last cache warming run */
    get: operations["warmProgress"];
    put?: never;
    /**
     * Warm the keyspace's cache now
     * @description Starts a run in the background: keys from the keyspace's `warm.query` or its hot keys, read through the keyspace's read path at most `warm.rate` a second. One run per keyspace at a time: while one runs, this answers its progress and starts nothing. 400 `invalid_request` for a bad field, a keyspace without a `warm:` section and no `from`, or `from: query` without a `warm.query`.
     */
    post: operations["warm"];
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  "/ui": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /**
     * The status page for operators
     * @description One HTML page, its script and style inline, nothing loaded from elsewhere; it holds no data and polls `/ui/status`. Also served at `/ui/`. Open like the probes; with `auth.protect_ops` any valid token, as a bearer token or as the password of HTTP Basic auth (the 401 asks a browser for it).
     */
    get: operations["statusPage"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    /**
     * The status page for operators (headers only)
     * @description One HTML page, its script and style inline, nothing loaded from elsewhere; it holds no data and polls `/ui/status`. Also served at `/ui/`. Open like the probes; with `auth.protect_ops` any valid token, as a bearer token or as the password of HTTP Basic auth (the 401 asks a browser for it).
     */
    head: operations["statusPageHead"];
    patch?: never;
    trace?: never;
  };
  "/ui/status": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /**
     * What the status page shows, as JSON
     * @description Needs what `GET /v1/keyspaces` needs (admin on some keyspace, when auth is on); a keyspace's dead letters are listed only to a token with admin on it.
     */
    get: operations["uiStatus"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    /**
     * What the status page shows, as JSON (headers only)
     * @description Needs what `GET /v1/keyspaces` needs (admin on some keyspace, when auth is on); a keyspace's dead letters are listed only to a token with admin on it.
     */
    head: operations["uiStatusHead"];
    patch?: never;
    trace?: never;
  };
  "/healthz": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /** The process is alive */
    get: operations["healthz"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    /** The process is alive (headers only) */
    head: operations["healthzHead"];
    patch?: never;
    trace?: never;
  };
  "/readyz": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /** Cache and database are reachable */
    get: operations["readyz"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    /** Cache and database are reachable (headers only) */
    head: operations["readyzHead"];
    patch?: never;
    trace?: never;
  };
  "/metrics": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /** Prometheus text exposition */
    get: operations["metrics"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    /** Prometheus text exposition (headers only) */
    head: operations["metricsHead"];
    patch?: never;
    trace?: never;
  };
  "/openapi.json": {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    /** This description */
    get: operations["openapi"];
    put?: never;
    post?: never;
    delete?: never;
    options?: never;
    /** This description (headers only) */
    head: operations["openapiHead"];
    patch?: never;
    trace?: never;
  };
}
export type webhooks = Record<string, never>;
export interface components {
  schemas: {
    /** @description Any JSON value; it comes back semantically equal (object keys may be reordered). */
    Value: unknown;
    /** @description 1 to 512 bytes of UTF-8 (no U+0000); not `.` or `..`. In a path, one percent-encoded segment. */
    Key: string;
    /** @description Grows per key, whatever strategy wrote it, across restarts and cache loss; a key deleted and written again continues above it. Below 2^53, so JSON numbers carry it exactly. */
    Version: number;
    /** @enum {string} */
    CacheStatus: "HIT" | "MISS" | "STALE";
    /**
     * @description `L1`: the daemon's near cache (the keyspace's `near_cache`); `L2`: the shared cache (Redis, or the in-process cache of `cache.url: memory:`); `DB`: PostgreSQL.
     * @enum {string}
     */
    CacheTier: "L1" | "L2" | "DB";
    VersionResult: {
      version: components["schemas"]["Version"];
    };
    MgetRequest: {
      /** @description At most `server.max_batch` keys. */
      keys: components["schemas"]["Key"][];
    };
    MgetResult: {
      /** @description Every requested key; `null` both for an absent key and for a stored `null`. */
      values: {
        [key: string]: components["schemas"]["Value"];
      };
    };
    MsetRequest: {
      /** @description Key to value; at most `server.max_batch` items, each value up to `server.max_value`. */
      items: {
        [key: string]: components["schemas"]["Value"];
      };
    };
    MsetResult: {
      versions: {
        [key: string]: components["schemas"]["Version"];
      };
    };
    FlushResult: {
      /** @description Writes this call saw applied to PostgreSQL. */
      flushed: number;
    };
    CheckRequest: {
      /** @description Keys to sample. */
      sample?: number;
      /** @description Check every key instead of a sample. */
      full?: boolean;
    };
    /** @enum {string} */
    InconsistentKind: "stale" | "orphan" | "missing_write" | "mismatch";
    KeyFinding: {
      key: string;
      kind: components["schemas"]["InconsistentKind"];
      cacheVersion: number;
      storeVersion: number | null;
      repaired: boolean;
    };
    CheckReport: {
      keyspace: string;
      sampled: number;
      inconsistent: number;
      by_kind: {
        [key: string]: number;
      };
      repaired: number;
      ratio: number;
      /** Format: date-time */
      started_at: string;
      duration_ms: number;
      /** @enum {string} */
      mode: "sample" | "full";
      /** @enum {string} */
      repair: "invalidate" | "rewrite" | "report";
      /** @description Keys written while checked, or with a queued write. */
      skipped: number;
      ratio_upper_95: number;
      nines: {
        estimate: number | null;
        lower_95: number;
      };
      findings: components["schemas"]["KeyFinding"][];
      repair_errors: number;
    };
    /** @enum {string} */
    Strategy: "cache-aside" | "read-through" | "write-through" | "write-around" | "write-behind";
    KeyspaceStatus: {
      strategy: components["schemas"]["Strategy"];
      /**
       * @description write-through only.
       * @enum {string}
       */
      consistency?: "strict" | "eventual";
      table: string;
      queue_depth: number;
      /** @description write-behind only. */
      oldest_pending_seconds?: number;
      /** @description write-behind only. */
      dead_letters?: number;
      hit_ratio: number | null;
      last_check: components["schemas"]["CheckReport"] | null;
    };
    KeyspaceList: {
      keyspaces: {
        [key: string]: components["schemas"]["KeyspaceStatus"];
      };
    };
    DeadLetter: {
      /** @description What replay and drop take. */
      id: string;
      /** @description The id the write had in the queue. */
      entryId: string;
      key: string;
      version: components["schemas"]["Version"];
      /** @description The value as JSON text; null for a delete. */
      value: string | null;
      reason: string;
      attempts: number;
      /** @description Milliseconds since the epoch it was dead-lettered. */
      at: number;
    };
    AuditRecord: {
      key: string;
      version: components["schemas"]["Version"];
      /**
       * @description `mset`: one write of an `_mset` (or `MSET`); all of them commit together.
       * @enum {string}
       */
      op: "put" | "delete" | "mset";
      /** @description The version `If-Match` named; null without one. */
      if_match: components["schemas"]["Version"] | null;
      /** @description The write was made with `If-None-Match: *`. */
      if_none_match: boolean;
      /** @description The name of the caller's token (`auth.tokens[].name`); null when auth is off. */
      client: string | null;
      /**
       * @description The front end.
       * @enum {string|null}
       */
      via: "http" | "resp" | null;
      /**
       * Format: date-time
       * @description PostgreSQL's clock when the write was applied, in the transaction that committed it (UTC, microseconds).
       */
      at: string;
      /**
       * Format: date-time
       * @description write-behind: when the write was acknowledged (queued); null for the other strategies, acknowledged at `at`.
       */
      acknowledged_at: string | null;
    };
    AuditPage: {
      keyspace: string;
      /** @description Newest first. */
      records: components["schemas"]["AuditRecord"][];
      /** @description Give it as `cursor` for the next page; null on the last one. */
      next_cursor: string | null;
    };
    DeadLetterList: {
      dead_letters: components["schemas"]["DeadLetter"][];
    };
    WarmRequest: {
      /**
       * @description `query`: the keys of the keyspace's `warm.query`; `hot`: the keys read most before the last shutdown. Default: the keyspace's `warm.from` (a keyspace without a `warm:` section needs `hot`).
       * @enum {string}
       */
      from?: "query" | "hot";
      /** @description Most keys to warm. Default: the keyspace's `warm.limit`, else 10000. */
      limit?: number;
    };
    WarmProgress: {
      keyspace: string;
      /** @enum {string} */
      from: "query" | "hot";
      /**
       * @description `stopped`: the daemon stopped, or the keyspace was removed by a reload, during the run.
       * @enum {string}
       */
      state: "running" | "done" | "failed" | "stopped";
      /** @description Keys to warm; null until the query or the hot-key list answered. */
      total: number | null;
      /** @description Keys read so far. */
      warmed: number;
      /** @description Of those, keys PostgreSQL had a row for (the others are cached as absent). */
      found: number;
      /** @description Most keys read per second (`warm.rate`). */
      rate: number;
      /** Format: date-time */
      started_at: string;
      /**
       * Format: date-time
       * @description Once the run ended.
       */
      finished_at?: string;
      /** @description Why the run failed (`state: failed`). */
      error?: string;
    };
    StatusPoint: {
      /** @description End of the interval, milliseconds since the epoch. */
      t: number;
      hits: number;
      misses: number;
      /** @description write-behind only: the queue depth at the end of the interval. */
      queue?: number;
    };
    CheckSummary: {
      /** Format: date-time */
      finished_at: string;
      sampled: number;
      inconsistent: number;
      by_kind: {
        [key: string]: number;
      };
      repaired: number;
      ratio: number;
      ratio_upper_95: number;
      nines: {
        estimate: number | null;
        lower_95: number;
      };
      duration_ms: number;
    };
    StatusKeyspace: {
      name: string;
      strategy: components["schemas"]["Strategy"];
      /**
       * @description write-through only.
       * @enum {string}
       */
      consistency?: "strict" | "eventual";
      table: string;
      hit_ratio: number | null;
      /** @description Hits and misses per interval of `interval_ms`, oldest first: the last 90. */
      points: components["schemas"]["StatusPoint"][];
      /** @description write-behind only (null otherwise, and when Redis does not answer). */
      queue: {
        depth: number;
        oldest_seconds: number;
        dead_letters: number;
      } | null;
      /** @description write-behind only, and only for a token with admin on this keyspace: the oldest 20 (the dead-letter API pages through the rest). */
      dead_letters?: components["schemas"]["DeadLetter"][];
      /** @description The last 10 consistency checks this daemon ran, newest first. */
      checks: components["schemas"]["CheckSummary"][];
      /** @description The last warming run since start, or null. */
      warm: components["schemas"]["WarmProgress"] | null;
      /** @description The checker's cron schedule; null when it is disabled for this keyspace. */
      checker: string | null;
    };
    StatusSnapshot: {
      /** Format: date-time */
      generated_at: string;
      /** @description Length of one point. */
      interval_ms: number | null;
      ready: {
        /** @enum {string} */
        status: "ok" | "unavailable";
        checks: {
          [key: string]: "up" | "down";
        };
        breakers: {
          [key: string]: "closed" | "half-open" | "open";
        };
      };
      keyspaces: components["schemas"]["StatusKeyspace"][];
    };
    Health: {
      /** @constant */
      status: "ok";
    };
    Readiness: {
      /** @enum {string} */
      status: "ok" | "unavailable";
      /** @description One entry per dependency: cache, store. */
      checks: {
        [key: string]: "up" | "down";
      };
      breakers?: {
        [key: string]: "closed" | "half-open" | "open";
      };
    };
    /** @enum {string} */
    ErrorCode:
      | "invalid_key"
      | "invalid_json"
      | "invalid_request"
      | "unauthorized"
      | "forbidden"
      | "not_found"
      | "unknown_keyspace"
      | "method_not_allowed"
      | "version_mismatch"
      | "value_too_large"
      | "unsupported_media_type"
      | "queue_full"
      | "internal"
      | "backend_unavailable"
      | "overloaded"
      | "timeout";
    Error400: {
      error: {
        /** @enum {string} */
        code: "invalid_key" | "invalid_json" | "invalid_request";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error401: {
      error: {
        /** @enum {string} */
        code: "unauthorized";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error403: {
      error: {
        /** @enum {string} */
        code: "forbidden";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error404: {
      error: {
        /** @enum {string} */
        code: "not_found" | "unknown_keyspace";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error405: {
      error: {
        /** @enum {string} */
        code: "method_not_allowed";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error412: {
      error: {
        /** @enum {string} */
        code: "version_mismatch";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error413: {
      error: {
        /** @enum {string} */
        code: "value_too_large";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error415: {
      error: {
        /** @enum {string} */
        code: "unsupported_media_type";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error429: {
      error: {
        /** @enum {string} */
        code: "queue_full";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error500: {
      error: {
        /** @enum {string} */
        code: "internal";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error503: {
      error: {
        /** @enum {string} */
        code: "backend_unavailable" | "overloaded";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
    Error504: {
      error: {
        /** @enum {string} */
        code: "timeout";
        /** @description A sentence for a person; not stable. */
        message: string;
      };
    };
  };
  responses: {
    /** @description The request is malformed: a bad key, JSON body, header or field. */
    BadRequest: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error400"];
      };
    };
    /** @description Auth is on and the request has no valid bearer token. */
    Unauthorized: {
      headers: {
        "WWW-Authenticate": 'Bearer realm="sidecache"';
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error401"];
      };
    };
    /** @description The token may not do this on this keyspace (read < write < admin). */
    Forbidden: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error403"];
      };
    };
    /** @description No such keyspace (`unknown_keyspace`), or nothing under this key, dead letter or warming run, or no audit log for the keyspace (`not_found`). */
    NotFound: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error404"];
      };
    };
    /** @description The method is not served here, or the keyspace is read-through (no writes). */
    MethodNotAllowed: {
      headers: {
        /** @description The methods this path answers. */
        Allow: string;
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error405"];
      };
    };
    /** @description `If-Match` names another version or the key is absent; `If-None-Match: *` and the key exists. */
    PreconditionFailed: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error412"];
      };
    };
    /** @description The value (or batch body) is larger than `server.max_value` (16 × for batches). */
    ContentTooLarge: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error413"];
      };
    };
    /** @description The body's `Content-Type` is not `application/json` (or `*+json`). */
    UnsupportedMediaType: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error415"];
      };
    };
    /** @description The write-behind queue is full; nothing was queued. Retry after `Retry-After` seconds. */
    QueueFull: {
      headers: {
        /** @description Seconds to wait before trying again. */
        "Retry-After": number;
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error429"];
      };
    };
    /** @description An unexpected failure; it is logged by the daemon. */
    Internal: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error500"];
      };
    };
    /** @description A backend the request needs is down (`backend_unavailable`: nothing was changed by a write-through strict or write-behind write), or the daemon is at its connection limit (`overloaded`, with `Retry-After`). */
    Unavailable: {
      headers: {
        /** @description Seconds to wait before trying again. */
        "Retry-After"?: number;
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error503"];
      };
    };
    /** @description The request passed its deadline (`server.request_timeout`); a write may still complete. */
    Timeout: {
      headers: {
        [name: string]: unknown;
      };
      content: {
        "application/json": components["schemas"]["Error504"];
      };
    };
  };
  parameters: {
    /** @description A keyspace of the configuration, percent-encoded. */
    Keyspace: string;
    /** @description The key as one percent-encoded path segment (encode `/` as `%2F`). */
    Key: components["schemas"]["Key"];
    /** @description Write only if the current version is this one (an `ETag` from a read or a write): 412 `version_mismatch` otherwise, also when the key is absent. One quoted version; `*` and lists are refused with `invalid_request`. */
    IfMatch: string;
    /** @description `*`: write only if the key is absent (create); 412 `version_mismatch` when it exists. */
    IfNoneMatch: "*";
    /**
     * @description With the directive `no-cache` (case-insensitive, alone or in a list; other directives are ignored) the read is not answered from the daemon's near cache: Redis and PostgreSQL answer as for a keyspace without `near_cache` (`X-Cache-Tier` L2 or DB). No effect on keyspaces without a near cache.
     * @example no-cache
     */
    CacheControl: string;
    DeadLetterId: string;
  };
  requestBodies: never;
  headers: {
    /** @description Where the answer came from: `HIT` (a cache: `X-Cache-Tier` says which), `MISS` (PostgreSQL, also when the cache is down) or `STALE` (an expired entry served while PostgreSQL fails). `_mget` answers `HIT` only when every key hit. */
    "X-Cache": components["schemas"]["CacheStatus"];
    /** @description Which tier answered: `L1` (the daemon's near cache), `L2` (Redis, or the in-process cache) or `DB` (PostgreSQL). A `HIT` or `STALE` comes from L1 or L2, a `MISS` from DB. `GET` only: `_mget` does not carry it. */
    "X-Cache-Tier": components["schemas"]["CacheTier"];
    /** @description The version in quotes, as in `"1795239090025000"`: what `If-Match` takes back. */
    ETag: string;
    /** @description Seconds to wait before trying again. */
    "Retry-After": number;
    /** @description The methods this path answers. */
    Allow: string;
    "WWW-Authenticate": 'Bearer realm="sidecache"';
    /** @description The status page asks for HTTP Basic auth: a browser prompts, and the password is the token. */
    "WWW-Authenticate-Basic": 'Basic realm="sidecache", charset="UTF-8"';
    "Cache-Control": "no-store";
    /** @description Only the page's own inline script and style (by hash) run; it connects only to this daemon. */
    "Content-Security-Policy": string;
  };
  pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
  getValue: {
    parameters: {
      query?: never;
      header?: {
        /**
         * @description With the directive `no-cache` (case-insensitive, alone or in a list; other directives are ignored) the read is not answered from the daemon's near cache: Redis and PostgreSQL answer as for a keyspace without `near_cache` (`X-Cache-Tier` L2 or DB). No effect on keyspaces without a near cache.
         * @example no-cache
         */
        "Cache-Control"?: components["parameters"]["CacheControl"];
      };
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        /** @description The key as one percent-encoded path segment (encode `/` as `%2F`). */
        key: components["parameters"]["Key"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description The value. */
      200: {
        headers: {
          /** @description Where the answer came from: `HIT` (a cache: `X-Cache-Tier` says which), `MISS` (PostgreSQL, also when the cache is down) or `STALE` (an expired entry served while PostgreSQL fails). `_mget` answers `HIT` only when every key hit. */
          "X-Cache": components["schemas"]["CacheStatus"];
          /** @description Which tier answered: `L1` (the daemon's near cache), `L2` (Redis, or the in-process cache) or `DB` (PostgreSQL). A `HIT` or `STALE` comes from L1 or L2, a `MISS` from DB. `GET` only: `_mget` does not carry it. */
          "X-Cache-Tier": components["schemas"]["CacheTier"];
          /** @description The version in quotes, as in `"1795239090025000"`: what `If-Match` takes back. */
          ETag: string;
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Value"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      /** @description No value under the key (`not_found`: with `X-Cache` and `X-Cache-Tier`, and `ETag` when the version of the delete is known), or no such keyspace (`unknown_keyspace`: without them). */
      404: {
        headers: {
          /** @description Where the answer came from: `HIT` (a cache: `X-Cache-Tier` says which), `MISS` (PostgreSQL, also when the cache is down) or `STALE` (an expired entry served while PostgreSQL fails). `_mget` answers `HIT` only when every key hit. */
          "X-Cache"?: components["schemas"]["CacheStatus"];
          /** @description Which tier answered: `L1` (the daemon's near cache), `L2` (Redis, or the in-process cache) or `DB` (PostgreSQL). A `HIT` or `STALE` comes from L1 or L2, a `MISS` from DB. `GET` only: `_mget` does not carry it. */
          "X-Cache-Tier"?: components["schemas"]["CacheTier"];
          /** @description The version in quotes, as in `"1795239090025000"`: what `If-Match` takes back. */
          ETag?: string;
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Error404"];
        };
      };
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  putValue: {
    parameters: {
      query?: never;
      header?: {
        /** @description Write only if the current version is this one (an `ETag` from a read or a write): 412 `version_mismatch` otherwise, also when the key is absent. One quoted version; `*` and lists are refused with `invalid_request`. */
        "If-Match"?: components["parameters"]["IfMatch"];
        /** @description `*`: write only if the key is absent (create); 412 `version_mismatch` when it exists. */
        "If-None-Match"?: components["parameters"]["IfNoneMatch"];
      };
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        /** @description The key as one percent-encoded path segment (encode `/` as `%2F`). */
        key: components["parameters"]["Key"];
      };
      cookie?: never;
    };
    requestBody: {
      content: {
        "application/json": components["schemas"]["Value"];
      };
    };
    responses: {
      /** @description Stored. */
      200: {
        headers: {
          /** @description The version in quotes, as in `"1795239090025000"`: what `If-Match` takes back. */
          ETag: string;
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["VersionResult"];
        };
      };
      /** @description Queued durably (write-behind). */
      202: {
        headers: {
          /** @description The version in quotes, as in `"1795239090025000"`: what `If-Match` takes back. */
          ETag: string;
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["VersionResult"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      405: components["responses"]["MethodNotAllowed"];
      412: components["responses"]["PreconditionFailed"];
      413: components["responses"]["ContentTooLarge"];
      415: components["responses"]["UnsupportedMediaType"];
      429: components["responses"]["QueueFull"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  deleteValue: {
    parameters: {
      query?: never;
      header?: {
        /** @description Write only if the current version is this one (an `ETag` from a read or a write): 412 `version_mismatch` otherwise, also when the key is absent. One quoted version; `*` and lists are refused with `invalid_request`. */
        "If-Match"?: components["parameters"]["IfMatch"];
        /** @description `*`: write only if the key is absent (create); 412 `version_mismatch` when it exists. */
        "If-None-Match"?: components["parameters"]["IfNoneMatch"];
      };
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        /** @description The key as one percent-encoded path segment (encode `/` as `%2F`). */
        key: components["parameters"]["Key"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Queued durably (write-behind), with the delete's version. */
      202: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["VersionResult"];
        };
      };
      /** @description Deleted. */
      204: {
        headers: {
          [name: string]: unknown;
        };
        content?: never;
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      405: components["responses"]["MethodNotAllowed"];
      412: components["responses"]["PreconditionFailed"];
      429: components["responses"]["QueueFull"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  mget: {
    parameters: {
      query?: never;
      header?: {
        /**
         * @description With the directive `no-cache` (case-insensitive, alone or in a list; other directives are ignored) the read is not answered from the daemon's near cache: Redis and PostgreSQL answer as for a keyspace without `near_cache` (`X-Cache-Tier` L2 or DB). No effect on keyspaces without a near cache.
         * @example no-cache
         */
        "Cache-Control"?: components["parameters"]["CacheControl"];
      };
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody: {
      content: {
        "application/json": components["schemas"]["MgetRequest"];
      };
    };
    responses: {
      /** @description A value (or null) per key. */
      200: {
        headers: {
          /** @description Where the answer came from: `HIT` (a cache: `X-Cache-Tier` says which), `MISS` (PostgreSQL, also when the cache is down) or `STALE` (an expired entry served while PostgreSQL fails). `_mget` answers `HIT` only when every key hit. */
          "X-Cache": components["schemas"]["CacheStatus"];
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["MgetResult"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      413: components["responses"]["ContentTooLarge"];
      415: components["responses"]["UnsupportedMediaType"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  mset: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody: {
      content: {
        "application/json": components["schemas"]["MsetRequest"];
      };
    };
    responses: {
      /** @description Stored. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["MsetResult"];
        };
      };
      /** @description Queued durably (write-behind). */
      202: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["MsetResult"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      405: components["responses"]["MethodNotAllowed"];
      413: components["responses"]["ContentTooLarge"];
      415: components["responses"]["UnsupportedMediaType"];
      429: components["responses"]["QueueFull"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  listKeyspaces: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description By name. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["KeyspaceList"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  flush: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Drained. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["FlushResult"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  check: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody?: {
      content: {
        "application/json": components["schemas"]["CheckRequest"];
      };
    };
    responses: {
      /** @description The report. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["CheckReport"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      413: components["responses"]["ContentTooLarge"];
      415: components["responses"]["UnsupportedMediaType"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  listDeadLetters: {
    parameters: {
      query?: {
        count?: number;
        /** @description List those after this id (exclusive). */
        after?: string;
      };
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Oldest first. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["DeadLetterList"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  dropDeadLetter: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        id: components["parameters"]["DeadLetterId"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Dropped. */
      204: {
        headers: {
          [name: string]: unknown;
        };
        content?: never;
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  replayDeadLetter: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
        id: components["parameters"]["DeadLetterId"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Queued. */
      202: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["VersionResult"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      429: components["responses"]["QueueFull"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  listAudit: {
    parameters: {
      query?: {
        /** @description Only this key. */
        key?: string;
        /**
         * @description Records at or after: an RFC 3339 time, or a duration back from now (`15m`, `24h`, `7d`).
         * @example 24h
         */
        since?: string;
        /** @description Records before: an RFC 3339 time, or a duration back from now. */
        until?: string;
        limit?: number;
        /** @description The `next_cursor` of the previous page. */
        cursor?: string;
      };
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description A page, newest first. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["AuditPage"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      405: components["responses"]["MethodNotAllowed"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  warmProgress: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description The last run since start. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["WarmProgress"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  warm: {
    parameters: {
      query?: never;
      header?: never;
      path: {
        /** @description A keyspace of the configuration, percent-encoded. */
        keyspace: components["parameters"]["Keyspace"];
      };
      cookie?: never;
    };
    requestBody?: {
      content: {
        "application/json": components["schemas"]["WarmRequest"];
      };
    };
    responses: {
      /** @description Started (or running already): the run's progress. */
      202: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["WarmProgress"];
        };
      };
      400: components["responses"]["BadRequest"];
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      404: components["responses"]["NotFound"];
      413: components["responses"]["ContentTooLarge"];
      415: components["responses"]["UnsupportedMediaType"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  statusPage: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description The page. */
      200: {
        headers: {
          /** @description Only the page's own inline script and style (by hash) run; it connects only to this daemon. */
          "Content-Security-Policy": string;
          "Cache-Control": "no-store";
          [name: string]: unknown;
        };
        content: {
          "text/html": string;
        };
      };
      /** @description `auth.protect_ops` is on and the request has no valid token. */
      401: {
        headers: {
          /** @description The status page asks for HTTP Basic auth: a browser prompts, and the password is the token. */
          "WWW-Authenticate": 'Basic realm="sidecache", charset="UTF-8"';
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Error401"];
        };
      };
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  statusPageHead: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description The page. */
      200: {
        headers: {
          /** @description Only the page's own inline script and style (by hash) run; it connects only to this daemon. */
          "Content-Security-Policy": string;
          "Cache-Control": "no-store";
          [name: string]: unknown;
        };
        content: {
          "text/html": string;
        };
      };
      /** @description `auth.protect_ops` is on and the request has no valid token. */
      401: {
        headers: {
          /** @description The status page asks for HTTP Basic auth: a browser prompts, and the password is the token. */
          "WWW-Authenticate": 'Basic realm="sidecache", charset="UTF-8"';
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Error401"];
        };
      };
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  uiStatus: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Readiness and every keyspace. */
      200: {
        headers: {
          "Cache-Control": "no-store";
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["StatusSnapshot"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  uiStatusHead: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Readiness and every keyspace. */
      200: {
        headers: {
          "Cache-Control": "no-store";
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["StatusSnapshot"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  healthz: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Alive. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Health"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  healthzHead: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Alive. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Health"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  readyz: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Cache and database answer. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Readiness"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      /** @description Something is down (`checks` names it), or the daemon is at its connection limit. */
      503: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Readiness"] | components["schemas"]["Error503"];
        };
      };
      504: components["responses"]["Timeout"];
    };
  };
  readyzHead: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description Cache and database answer. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Readiness"];
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      /** @description Something is down (`checks` names it), or the daemon is at its connection limit. */
      503: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": components["schemas"]["Readiness"] | components["schemas"]["Error503"];
        };
      };
      504: components["responses"]["Timeout"];
    };
  };
  metrics: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description The metrics. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "text/plain": string;
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  metricsHead: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description The metrics. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "text/plain": string;
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  openapi: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description OpenAPI 3.1. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": Record<string, never>;
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
  openapiHead: {
    parameters: {
      query?: never;
      header?: never;
      path?: never;
      cookie?: never;
    };
    requestBody?: never;
    responses: {
      /** @description OpenAPI 3.1. */
      200: {
        headers: {
          [name: string]: unknown;
        };
        content: {
          "application/json": Record<string, never>;
        };
      };
      401: components["responses"]["Unauthorized"];
      403: components["responses"]["Forbidden"];
      500: components["responses"]["Internal"];
      503: components["responses"]["Unavailable"];
      504: components["responses"]["Timeout"];
    };
  };
}
