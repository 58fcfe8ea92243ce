/**
 * The OpenAPI 3.1 description of the HTTP protocol, served at GET /openapi.json. It is the one source of
 * the protocol's types: the TypeScript client's types are generated from it (client/src/schema.ts), and
 * the tests hold it against the live router and the daemon's answers.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { MethodNotAllowedError } from "../errors.js";
import type { ProxyContext } from "./context.js";

export const OPENAPI_PATH = "/openapi.json";

/** Every error code the daemon answers with, by HTTP status. */
export const ERROR_CODES = {
  400: ["invalid_key", "invalid_json", "invalid_request"],
  401: ["unauthorized"],
  403: ["forbidden"],
  404: ["not_found", "unknown_keyspace"],
  405: ["method_not_allowed"],
  412: ["version_mismatch"],
  413: ["value_too_large"],
  415: ["unsupported_media_type"],
  429: ["queue_full"],
  500: ["internal"],
  503: ["backend_unavailable", "overloaded"],
  504: ["timeout"],
} as const;

type ErrorStatus = keyof typeof ERROR_CODES;
/** The statuses as numbers (Object.keys gives strings). */
const ERROR_STATUSES = Object.keys(ERROR_CODES).map(Number) as ErrorStatus[];

const ref = (kind: "schemas" | "responses" | "parameters" | "headers", name: string) => ({
  $ref: `#/components/${kind}/${name}`,
});

const json = (schema: object) => ({ "application/json": { schema } });

const MAX_VERSION = Number.MAX_SAFE_INTEGER;

const errorResponseNames: Record<ErrorStatus, [string, string]> = {
  400: ["BadRequest", "The request is malformed: a bad key, JSON body, header or field."],
  401: ["Unauthorized", "Auth is on and the request has no valid bearer token."],
  403: ["Forbidden", "The token may not do this on this keyspace (read < write < admin)."],
  404: [
    "NotFound",
    "No such keyspace (`unknown_keyspace`), or nothing under this key, dead letter or warming run, or no audit log for the keyspace (`not_found`).",
  ],
  405: ["MethodNotAllowed", "The method is not served here, or the keyspace is read-through (no writes)."],
  412: [
    "PreconditionFailed",
    "`If-Match` names another version or the key is absent; `If-None-Match: *` and the key exists.",
  ],
  413: ["ContentTooLarge", "The value (or batch body) is larger than `server.max_value` (16 × for batches)."],
  415: ["UnsupportedMediaType", "The body's `Content-Type` is not `application/json` (or `*+json`)."],
  429: [
    "QueueFull",
    "The write-behind queue is full; nothing was queued. Retry after `Retry-After` seconds.",
  ],
  500: ["Internal", "An unexpected failure; it is logged by the daemon."],
  503: [
    "Unavailable",
    "A backend the request needs is down (`backend_unavailable`: nothing was changed by a write-through strict or write-behind write), or the daemon is at its connection limit (`overloaded`, with `Retry-After`).",
  ],
  504: ["Timeout", "The request passed its deadline (`server.request_timeout`); a write may still complete."],
};

function errorSchema(status: ErrorStatus): object {
  return {
    type: "object",
    required: ["error"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        additionalProperties: false,
        properties: {
          code: { type: "string", enum: [...ERROR_CODES[status]] },
          message: { type: "string", description: "A sentence for a person; not stable." },
        },
      },
    },
  };
}

function errorResponse(status: ErrorStatus): object {
  const [, description] = errorResponseNames[status];
  const headers: Record<string, object> = {};
  if (status === 401) headers["WWW-Authenticate"] = must("WWW-Authenticate");
  if (status === 405) headers.Allow = must("Allow");
  if (status === 429) headers["Retry-After"] = must("Retry-After");
  if (status === 503) headers["Retry-After"] = may("Retry-After");
  return {
    description,
    ...(Object.keys(headers).length ? { headers } : {}),
    content: json(ref("schemas", `Error${status}`)),
  };
}

/** The error responses an operation lists: its own, plus those every routed request can meet. */
function errors(...own: ErrorStatus[]): Record<string, object> {
  const all = new Set<ErrorStatus>([...own, 401, 403, 500, 503, 504]);
  const out: Record<string, object> = {};
  for (const status of [...all].sort((a, b) => a - b)) {
    out[String(status)] = ref("responses", errorResponseNames[status][0]);
  }
  return out;
}

/** Errors of routes outside /v1 (liveness, readiness, metrics, this document): auth only with protect_ops. */
function opsErrors(): Record<string, object> {
  const out: Record<string, object> = {};
  for (const status of [401, 403, 500, 503, 504] as const) {
    out[String(status)] = ref("responses", errorResponseNames[status][0]);
  }
  return out;
}

const versionSchema = {
  type: "integer",
  minimum: 0,
  maximum: MAX_VERSION,
  description:
    "Grows per key, whatever strategy wrote it, across restarts and cache loss; a key deleted and written again continues above it. Below 2^53, so JSON numbers carry it exactly.",
};

const schemas = {
  Value: { description: "Any JSON value; it comes back semantically equal (object keys may be reordered)." },
  Key: {
    type: "string",
    minLength: 1,
    maxLength: 512,
    not: { enum: [".", ".."] },
    description:
      "1 to 512 bytes of UTF-8 (no U+0000); not `.` or `..`. In a path, one percent-encoded segment.",
  },
  Version: versionSchema,
  CacheStatus: { type: "string", enum: ["HIT", "MISS", "STALE"] },
  CacheTier: {
    type: "string",
    enum: ["L1", "L2", "DB"],
    description:
      "`L1`: the daemon's near cache (the keyspace's `near_cache`); `L2`: the shared cache (Redis, or the in-process cache of `cache.url: memory:`); `DB`: PostgreSQL.",
  },
  VersionResult: {
    type: "object",
    required: ["version"],
    additionalProperties: false,
    properties: { version: ref("schemas", "Version") },
  },
  MgetRequest: {
    type: "object",
    required: ["keys"],
    properties: {
      keys: { type: "array", items: ref("schemas", "Key"), description: "At most `server.max_batch` keys." },
    },
  },
  MgetResult: {
    type: "object",
    required: ["values"],
    additionalProperties: false,
    properties: {
      values: {
        type: "object",
        additionalProperties: ref("schemas", "Value"),
        description: "Every requested key; `null` both for an absent key and for a stored `null`.",
      },
    },
  },
  MsetRequest: {
    type: "object",
    required: ["items"],
    properties: {
      items: {
        type: "object",
        minProperties: 1,
        additionalProperties: ref("schemas", "Value"),
        description: "Key to value; at most `server.max_batch` items, each value up to `server.max_value`.",
      },
    },
  },
  MsetResult: {
    type: "object",
    required: ["versions"],
    additionalProperties: false,
    properties: { versions: { type: "object", additionalProperties: ref("schemas", "Version") } },
  },
  FlushResult: {
    type: "object",
    required: ["flushed"],
    additionalProperties: false,
    properties: {
      flushed: { type: "integer", minimum: 0, description: "Writes this call saw applied to PostgreSQL." },
    },
  },
  CheckRequest: {
    type: "object",
    additionalProperties: false,
    properties: {
      sample: { type: "integer", minimum: 1, maximum: 1_000_000, description: "Keys to sample." },
      full: { type: "boolean", description: "Check every key instead of a sample." },
    },
  },
  InconsistentKind: { type: "string", enum: ["stale", "orphan", "missing_write", "mismatch"] },
  KeyFinding: {
    type: "object",
    required: ["key", "kind", "cacheVersion", "storeVersion", "repaired"],
    additionalProperties: false,
    properties: {
      key: { type: "string" },
      kind: ref("schemas", "InconsistentKind"),
      cacheVersion: { type: "integer" },
      storeVersion: { type: ["integer", "null"] },
      repaired: { type: "boolean" },
    },
  },
  CheckReport: {
    type: "object",
    required: [
      "keyspace",
      "sampled",
      "inconsistent",
      "by_kind",
      "repaired",
      "ratio",
      "started_at",
      "duration_ms",
      "mode",
      "repair",
      "skipped",
      "ratio_upper_95",
      "nines",
      "findings",
      "repair_errors",
    ],
    additionalProperties: false,
    properties: {
      keyspace: { type: "string" },
      sampled: { type: "integer", minimum: 0 },
      inconsistent: { type: "integer", minimum: 0 },
      by_kind: {
        type: "object",
        propertyNames: ref("schemas", "InconsistentKind"),
        additionalProperties: { type: "integer", minimum: 0 },
      },
      repaired: { type: "integer", minimum: 0 },
      ratio: { type: "number", minimum: 0, maximum: 1 },
      started_at: { type: "string", format: "date-time" },
      duration_ms: { type: "number", minimum: 0 },
      mode: { type: "string", enum: ["sample", "full"] },
      repair: { type: "string", enum: ["invalidate", "rewrite", "report"] },
      skipped: {
        type: "integer",
        minimum: 0,
        description: "Keys written while checked, or with a queued write.",
      },
      ratio_upper_95: { type: "number", minimum: 0, maximum: 1 },
      nines: {
        type: "object",
        required: ["estimate", "lower_95"],
        additionalProperties: false,
        properties: { estimate: { type: ["number", "null"] }, lower_95: { type: "number" } },
      },
      findings: { type: "array", items: ref("schemas", "KeyFinding"), maxItems: 100 },
      repair_errors: { type: "integer", minimum: 0 },
    },
  },
  Strategy: {
    type: "string",
    enum: ["cache-aside", "read-through", "write-through", "write-around", "write-behind"],
  },
  KeyspaceStatus: {
    type: "object",
    required: ["strategy", "table", "queue_depth", "hit_ratio", "last_check"],
    additionalProperties: false,
    properties: {
      strategy: ref("schemas", "Strategy"),
      consistency: { type: "string", enum: ["strict", "eventual"], description: "write-through only." },
      table: { type: "string" },
      queue_depth: { type: "integer", minimum: 0 },
      oldest_pending_seconds: { type: "number", minimum: 0, description: "write-behind only." },
      dead_letters: { type: "integer", minimum: 0, description: "write-behind only." },
      hit_ratio: { type: ["number", "null"], minimum: 0, maximum: 1 },
      last_check: { anyOf: [ref("schemas", "CheckReport"), { type: "null" }] },
    },
  },
  KeyspaceList: {
    type: "object",
    required: ["keyspaces"],
    additionalProperties: false,
    properties: { keyspaces: { type: "object", additionalProperties: ref("schemas", "KeyspaceStatus") } },
  },
  DeadLetter: {
    type: "object",
    required: ["id", "entryId", "key", "version", "value", "reason", "attempts", "at"],
    additionalProperties: false,
    properties: {
      id: { type: "string", pattern: "^\\d{1,20}-\\d{1,20}$", description: "What replay and drop take." },
      entryId: { type: "string", description: "The id the write had in the queue." },
      key: { type: "string" },
      version: ref("schemas", "Version"),
      value: { type: ["string", "null"], description: "The value as JSON text; null for a delete." },
      reason: { type: "string" },
      attempts: { type: "integer", minimum: 1 },
      at: { type: "integer", description: "Milliseconds since the epoch it was dead-lettered." },
    },
  },
  AuditRecord: {
    type: "object",
    required: ["key", "version", "op", "if_match", "if_none_match", "client", "via", "at", "acknowledged_at"],
    additionalProperties: false,
    properties: {
      key: { type: "string" },
      version: ref("schemas", "Version"),
      op: {
        type: "string",
        enum: ["put", "delete", "mset"],
        description: "`mset`: one write of an `_mset` (or `MSET`); all of them commit together.",
      },
      if_match: {
        anyOf: [ref("schemas", "Version"), { type: "null" }],
        description: "The version `If-Match` named; null without one.",
      },
      if_none_match: { type: "boolean", description: "The write was made with `If-None-Match: *`." },
      client: {
        type: ["string", "null"],
        description: "The name of the caller's token (`auth.tokens[].name`); null when auth is off.",
      },
      via: { type: ["string", "null"], enum: ["http", "resp", null], description: "The front end." },
      at: {
        type: "string",
        format: "date-time",
        description:
          "PostgreSQL's clock when the write was applied, in the transaction that committed it (UTC, microseconds).",
      },
      acknowledged_at: {
        type: ["string", "null"],
        format: "date-time",
        description:
          "write-behind: when the write was acknowledged (queued); null for the other strategies, acknowledged at `at`.",
      },
    },
  },
  AuditPage: {
    type: "object",
    required: ["keyspace", "records", "next_cursor"],
    additionalProperties: false,
    properties: {
      keyspace: { type: "string" },
      records: { type: "array", items: ref("schemas", "AuditRecord"), description: "Newest first." },
      next_cursor: {
        type: ["string", "null"],
        description: "Give it as `cursor` for the next page; null on the last one.",
      },
    },
  },
  DeadLetterList: {
    type: "object",
    required: ["dead_letters"],
    additionalProperties: false,
    properties: { dead_letters: { type: "array", items: ref("schemas", "DeadLetter") } },
  },
  WarmRequest: {
    type: "object",
    additionalProperties: false,
    properties: {
      from: {
        type: "string",
        enum: ["query", "hot"],
        description:
          "`query`: the keys of the keyspace's `warm.query`; `hot`: the keys read most before the last shutdown. Default: the keyspace's `warm.from` (a keyspace without a `warm:` section needs `hot`).",
      },
      limit: {
        type: "integer",
        minimum: 1,
        maximum: 10_000_000,
        description: "Most keys to warm. Default: the keyspace's `warm.limit`, else 10000.",
      },
    },
  },
  WarmProgress: {
    type: "object",
    required: ["keyspace", "from", "state", "total", "warmed", "found", "rate", "started_at"],
    additionalProperties: false,
    properties: {
      keyspace: { type: "string" },
      from: { type: "string", enum: ["query", "hot"] },
      state: {
        type: "string",
        enum: ["running", "done", "failed", "stopped"],
        description:
          "`stopped`: the daemon stopped, or the keyspace was removed by a reload, during the run.",
      },
      total: {
        type: ["integer", "null"],
        minimum: 0,
        description: "Keys to warm; null until the query or the hot-key list answered.",
      },
      warmed: { type: "integer", minimum: 0, description: "Keys read so far." },
      found: {
        type: "integer",
        minimum: 0,
        description: "Of those, keys PostgreSQL had a row for (the others are cached as absent).",
      },
      rate: { type: "integer", minimum: 1, description: "Most keys read per second (`warm.rate`)." },
      started_at: { type: "string", format: "date-time" },
      finished_at: { type: "string", format: "date-time", description: "Once the run ended." },
      error: { type: "string", description: "Why the run failed (`state: failed`)." },
    },
  },
  StatusPoint: {
    type: "object",
    required: ["t", "hits", "misses"],
    additionalProperties: false,
    properties: {
      t: { type: "integer", description: "End of the interval, milliseconds since the epoch." },
      hits: { type: "integer", minimum: 0 },
      misses: { type: "integer", minimum: 0 },
      queue: {
        type: "integer",
        minimum: 0,
        description: "write-behind only: the queue depth at the end of the interval.",
      },
    },
  },
  CheckSummary: {
    type: "object",
    required: [
      "finished_at",
      "sampled",
      "inconsistent",
      "by_kind",
      "repaired",
      "ratio",
      "ratio_upper_95",
      "nines",
      "duration_ms",
    ],
    additionalProperties: false,
    properties: {
      finished_at: { type: "string", format: "date-time" },
      sampled: { type: "integer", minimum: 0 },
      inconsistent: { type: "integer", minimum: 0 },
      by_kind: {
        type: "object",
        propertyNames: ref("schemas", "InconsistentKind"),
        additionalProperties: { type: "integer", minimum: 1 },
      },
      repaired: { type: "integer", minimum: 0 },
      ratio: { type: "number", minimum: 0, maximum: 1 },
      ratio_upper_95: { type: "number", minimum: 0, maximum: 1 },
      nines: {
        type: "object",
        required: ["estimate", "lower_95"],
        additionalProperties: false,
        properties: { estimate: { type: ["number", "null"] }, lower_95: { type: "number" } },
      },
      duration_ms: { type: "integer", minimum: 0 },
    },
  },
  StatusKeyspace: {
    type: "object",
    required: ["name", "strategy", "table", "hit_ratio", "points", "queue", "checks", "warm", "checker"],
    additionalProperties: false,
    properties: {
      name: { type: "string" },
      strategy: ref("schemas", "Strategy"),
      consistency: { type: "string", enum: ["strict", "eventual"], description: "write-through only." },
      table: { type: "string" },
      hit_ratio: { type: ["number", "null"], minimum: 0, maximum: 1 },
      points: {
        type: "array",
        items: ref("schemas", "StatusPoint"),
        description: "Hits and misses per interval of `interval_ms`, oldest first: the last 90.",
      },
      queue: {
        description: "write-behind only (null otherwise, and when Redis does not answer).",
        anyOf: [
          {
            type: "object",
            required: ["depth", "oldest_seconds", "dead_letters"],
            additionalProperties: false,
            properties: {
              depth: { type: "integer", minimum: 0 },
              oldest_seconds: { type: "number", minimum: 0 },
              dead_letters: { type: "integer", minimum: 0 },
            },
          },
          { type: "null" },
        ],
      },
      dead_letters: {
        type: "array",
        items: ref("schemas", "DeadLetter"),
        maxItems: 20,
        description:
          "write-behind only, and only for a token with admin on this keyspace: the oldest 20 (the dead-letter API pages through the rest).",
      },
      checks: {
        type: "array",
        items: ref("schemas", "CheckSummary"),
        description: "The last 10 consistency checks this daemon ran, newest first.",
      },
      warm: {
        anyOf: [ref("schemas", "WarmProgress"), { type: "null" }],
        description: "The last warming run since start, or null.",
      },
      checker: {
        type: ["string", "null"],
        description: "The checker's cron schedule; null when it is disabled for this keyspace.",
      },
    },
  },
  StatusSnapshot: {
    type: "object",
    required: ["generated_at", "interval_ms", "ready", "keyspaces"],
    additionalProperties: false,
    properties: {
      generated_at: { type: "string", format: "date-time" },
      interval_ms: { type: ["integer", "null"], minimum: 1, description: "Length of one point." },
      ready: {
        type: "object",
        required: ["status", "checks", "breakers"],
        additionalProperties: false,
        properties: {
          status: { type: "string", enum: ["ok", "unavailable"] },
          checks: { type: "object", additionalProperties: { type: "string", enum: ["up", "down"] } },
          breakers: {
            type: "object",
            additionalProperties: { type: "string", enum: ["closed", "half-open", "open"] },
          },
        },
      },
      keyspaces: { type: "array", items: ref("schemas", "StatusKeyspace") },
    },
  },
  Health: {
    type: "object",
    required: ["status"],
    additionalProperties: false,
    properties: { status: { const: "ok" } },
  },
  Readiness: {
    type: "object",
    required: ["status", "checks"],
    additionalProperties: false,
    properties: {
      status: { type: "string", enum: ["ok", "unavailable"] },
      checks: {
        type: "object",
        additionalProperties: { type: "string", enum: ["up", "down"] },
        description: "One entry per dependency: cache, store.",
      },
      breakers: {
        type: "object",
        additionalProperties: { type: "string", enum: ["closed", "half-open", "open"] },
      },
    },
  },
  ErrorCode: {
    type: "string",
    enum: Object.values(ERROR_CODES).flat(),
  },
  ...Object.fromEntries(ERROR_STATUSES.map((s) => [`Error${s}`, errorSchema(s)])),
};

const headers = {
  "X-Cache": {
    description:
      "Where the answer came from: `HIT` (a cache: `X-Cache-Tier` says which), `MISS` (PostgreSQL, also when the cache is down) or `STALE` (an expired entry served while PostgreSQL fails). `_mget` answers `HIT` only when every key hit.",
    schema: ref("schemas", "CacheStatus"),
  },
  "X-Cache-Tier": {
    description:
      "Which tier answered: `L1` (the daemon's near cache), `L2` (Redis, or the in-process cache) or `DB` (PostgreSQL). A `HIT` or `STALE` comes from L1 or L2, a `MISS` from DB. `GET` only: `_mget` does not carry it.",
    schema: ref("schemas", "CacheTier"),
  },
  ETag: {
    description: 'The version in quotes, as in `"1795239090025000"`: what `If-Match` takes back.',
    schema: { type: "string", pattern: '^"\\d{1,16}"$' },
  },
  "Retry-After": {
    description: "Seconds to wait before trying again.",
    schema: { type: "integer", minimum: 1 },
  },
  Allow: { description: "The methods this path answers.", schema: { type: "string" } },
  "WWW-Authenticate": { schema: { type: "string", const: 'Bearer realm="sidecache"' } },
  "WWW-Authenticate-Basic": {
    description:
      "The status page asks for HTTP Basic auth: a browser prompts, and the password is the token.",
    schema: { type: "string", const: 'Basic realm="sidecache", charset="UTF-8"' },
  },
  "Cache-Control": { schema: { type: "string", const: "no-store" } },
  "Content-Security-Policy": {
    description:
      "Only the page's own inline script and style (by hash) run; it connects only to this daemon.",
    schema: { type: "string" },
  },
};

/** A header the answer always carries: a Header Object of its own, since a $ref's siblings are ignored. */
function must(name: keyof typeof headers): object {
  return { ...headers[name], required: true };
}

/** A header the answer carries only at times (inline too, or generators take a $ref'd one as always there). */
function may(name: keyof typeof headers): object {
  return { ...headers[name] };
}

const parameters = {
  Keyspace: {
    name: "keyspace",
    in: "path",
    required: true,
    description: "A keyspace of the configuration, percent-encoded.",
    schema: { type: "string", minLength: 1 },
  },
  Key: {
    name: "key",
    in: "path",
    required: true,
    description: "The key as one percent-encoded path segment (encode `/` as `%2F`).",
    schema: ref("schemas", "Key"),
  },
  IfMatch: {
    name: "If-Match",
    in: "header",
    required: false,
    description:
      "Write only if the current version is this one (an `ETag` from a read or a write): 412 `version_mismatch` otherwise, also when the key is absent. One quoted version; `*` and lists are refused with `invalid_request`.",
    schema: { type: "string", pattern: '^\\s*(W/)?"\\d{1,16}"\\s*$' },
  },
  IfNoneMatch: {
    name: "If-None-Match",
    in: "header",
    required: false,
    description: "`*`: write only if the key is absent (create); 412 `version_mismatch` when it exists.",
    schema: { type: "string", enum: ["*"] },
  },
  CacheControl: {
    name: "Cache-Control",
    in: "header",
    required: false,
    description:
      "With the directive `no-cache` (case-insensitive, alone or in a list; other directives are ignored) the read is not answered from the daemon's near cache: Redis and PostgreSQL answer as for a keyspace without `near_cache` (`X-Cache-Tier` L2 or DB). No effect on keyspaces without a near cache.",
    schema: { type: "string" },
    example: "no-cache",
  },
  DeadLetterId: {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string", pattern: "^\\d{1,20}-\\d{1,20}$" },
  },
};

const kvParams = [ref("parameters", "Keyspace"), ref("parameters", "Key")];
const ksParams = [ref("parameters", "Keyspace")];
const readHeaders = { "X-Cache": must("X-Cache"), "X-Cache-Tier": must("X-Cache-Tier"), ETag: must("ETag") };
const versionBody = (description: string, etag: boolean) => ({
  description,
  ...(etag ? { headers: { ETag: must("ETag") } } : {}),
  content: json(ref("schemas", "VersionResult")),
});

function opsPath(operationId: string, summary: string, ok: object) {
  const get = { operationId, summary, tags: ["ops"], responses: { "200": ok, ...opsErrors() } };
  return { get, head: { ...get, operationId: `${operationId}Head`, summary: `${summary} (headers only)` } };
}

const paths = {
  "/v1/kv/{keyspace}/{key}": {
    parameters: kvParams,
    get: {
      operationId: "getValue",
      summary: "Read one value",
      tags: ["kv"],
      parameters: [ref("parameters", "CacheControl")],
      responses: {
        "200": { description: "The value.", headers: readHeaders, content: json(ref("schemas", "Value")) },
        ...errors(400),
        "404": {
          description:
            "No value under the key (`not_found`: with `X-Cache` and `X-Cache-Tier`, and `ETag` when the version of the delete is known), or no such keyspace (`unknown_keyspace`: without them).",
          headers: { "X-Cache": may("X-Cache"), "X-Cache-Tier": may("X-Cache-Tier"), ETag: may("ETag") },
          content: json(ref("schemas", "Error404")),
        },
      },
    },
    put: {
      operationId: "putValue",
      summary: "Create or replace a value",
      description:
        "200 once PostgreSQL holds it (write-through: and the cache); 202 for write-behind once the write is durable in the queue. read-through keyspaces refuse writes with 405.",
      tags: ["kv"],
      parameters: [ref("parameters", "IfMatch"), ref("parameters", "IfNoneMatch")],
      requestBody: { required: true, content: json(ref("schemas", "Value")) },
      responses: {
        "200": versionBody("Stored.", true),
        "202": versionBody("Queued durably (write-behind).", true),
        ...errors(400, 404, 405, 412, 413, 415, 429),
      },
    },
    delete: {
      operationId: "deleteValue",
      summary: "Delete a value",
      description: "Deleting an absent key is not an error.",
      tags: ["kv"],
      parameters: [ref("parameters", "IfMatch"), ref("parameters", "IfNoneMatch")],
      responses: {
        "204": { description: "Deleted." },
        "202": versionBody("Queued durably (write-behind), with the delete's version.", false),
        ...errors(400, 404, 405, 412, 429),
      },
    },
  },
  "/v1/kv/{keyspace}/_mget": {
    parameters: ksParams,
    post: {
      operationId: "mget",
      summary: "Read many values",
      tags: ["kv"],
      parameters: [ref("parameters", "CacheControl")],
      requestBody: { required: true, content: json(ref("schemas", "MgetRequest")) },
      responses: {
        "200": {
          description: "A value (or null) per key.",
          headers: { "X-Cache": must("X-Cache") },
          content: json(ref("schemas", "MgetResult")),
        },
        ...errors(400, 404, 413, 415),
      },
    },
  },
  "/v1/kv/{keyspace}/_mset": {
    parameters: ksParams,
    post: {
      operationId: "mset",
      summary: "Write many values, all or nothing",
      tags: ["kv"],
      requestBody: { required: true, content: json(ref("schemas", "MsetRequest")) },
      responses: {
        "200": { description: "Stored.", content: json(ref("schemas", "MsetResult")) },
        "202": { description: "Queued durably (write-behind).", content: json(ref("schemas", "MsetResult")) },
        ...errors(400, 404, 405, 413, 415, 429),
      },
    },
  },
  "/v1/keyspaces": {
    get: {
      operationId: "listKeyspaces",
      summary: "Each keyspace: strategy, queue depth, hit ratio, last check",
      tags: ["admin"],
      responses: {
        "200": { description: "By name.", content: json(ref("schemas", "KeyspaceList")) },
        ...errors(),
      },
    },
  },
  "/v1/keyspaces/{keyspace}/flush": {
    parameters: ksParams,
    post: {
      operationId: "flush",
      summary: "Drain the write-behind queue",
      description:
        "Answers once PostgreSQL holds every write acknowledged before the call; 0 for other strategies.",
      tags: ["admin"],
      responses: {
        "200": { description: "Drained.", content: json(ref("schemas", "FlushResult")) },
        ...errors(400, 404),
      },
    },
  },
  "/v1/keyspaces/{keyspace}/check": {
    parameters: ksParams,
    post: {
      operationId: "check",
      summary: "Run the consistency check now",
      tags: ["admin"],
      requestBody: { required: false, content: json(ref("schemas", "CheckRequest")) },
      responses: {
        "200": { description: "The report.", content: json(ref("schemas", "CheckReport")) },
        ...errors(400, 404, 413, 415),
      },
    },
  },
  "/v1/keyspaces/{keyspace}/dead-letters": {
    parameters: ksParams,
    get: {
      operationId: "listDeadLetters",
      summary: "Write-behind writes PostgreSQL refused for good",
      tags: ["admin"],
      parameters: [
        {
          name: "count",
          in: "query",
          required: false,
          schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
        },
        {
          name: "after",
          in: "query",
          required: false,
          description: "List those after this id (exclusive).",
          schema: { type: "string", pattern: "^\\d{1,20}-\\d{1,20}$" },
        },
      ],
      responses: {
        "200": { description: "Oldest first.", content: json(ref("schemas", "DeadLetterList")) },
        ...errors(400, 404),
      },
    },
  },
  "/v1/keyspaces/{keyspace}/dead-letters/{id}": {
    parameters: [...ksParams, ref("parameters", "DeadLetterId")],
    delete: {
      operationId: "dropDeadLetter",
      summary: "Drop a dead letter for good",
      tags: ["admin"],
      responses: { "204": { description: "Dropped." }, ...errors(400, 404) },
    },
  },
  "/v1/keyspaces/{keyspace}/dead-letters/{id}/replay": {
    parameters: [...ksParams, ref("parameters", "DeadLetterId")],
    post: {
      operationId: "replayDeadLetter",
      summary: "Queue a dead letter again with a fresh version",
      tags: ["admin"],
      responses: { "202": versionBody("Queued.", false), ...errors(400, 404, 429) },
    },
  },
  "/v1/keyspaces/{keyspace}/audit": {
    parameters: ksParams,
    get: {
      operationId: "listAudit",
      summary: "The keyspace's audit log: who wrote what, and when",
      description:
        "One record per committed write of a keyspace with `audit` set, written by the transaction that committed the write (for write-behind, by the flush that applied it). Newest first, by time then key and version; pages follow `next_cursor`, and records committed while paging never shift the pages. Writes made outside sidecache are not recorded. 404 `not_found` for a keyspace without `audit`; 400 `invalid_request` for a bad parameter.",
      tags: ["admin"],
      parameters: [
        {
          name: "key",
          in: "query",
          required: false,
          description: "Only this key.",
          schema: { type: "string" },
        },
        {
          name: "since",
          in: "query",
          required: false,
          description:
            "Records at or after: an RFC 3339 time, or a duration back from now (`15m`, `24h`, `7d`).",
          schema: { type: "string" },
          example: "24h",
        },
        {
          name: "until",
          in: "query",
          required: false,
          description: "Records before: an RFC 3339 time, or a duration back from now.",
          schema: { type: "string" },
        },
        {
          name: "limit",
          in: "query",
          required: false,
          schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
        },
        {
          name: "cursor",
          in: "query",
          required: false,
          description: "The `next_cursor` of the previous page.",
          schema: { type: "string" },
        },
      ],
      responses: {
        "200": { description: "A page, newest first.", content: json(ref("schemas", "AuditPage")) },
        ...errors(400, 404, 405),
      },
    },
  },
  "/v1/keyspaces/{keyspace}/warm": {
    parameters: ksParams,
    get: {
      operationId: "warmProgress",
      summary: "The progress of the keyspace's last cache warming run",
      tags: ["admin"],
      responses: {
        "200": { description: "The last run since start.", content: json(ref("schemas", "WarmProgress")) },
        ...errors(400, 404),
      },
    },
    post: {
      operationId: "warm",
      summary: "Warm the keyspace's cache now",
      description:
        "Starts a run in the background: keys from the keyspace's `warm.query` or its hot keys, read through the keyspace's read path at most `warm.rate` a second. One run per keyspace at a time: while one runs, this answers its progress and starts nothing. 400 `invalid_request` for a bad field, a keyspace without a `warm:` section and no `from`, or `from: query` without a `warm.query`.",
      tags: ["admin"],
      requestBody: { required: false, content: json(ref("schemas", "WarmRequest")) },
      responses: {
        "202": {
          description: "Started (or running already): the run's progress.",
          content: json(ref("schemas", "WarmProgress")),
        },
        ...errors(400, 404, 413, 415),
      },
    },
  },
  "/ui": (() => {
    const get = {
      operationId: "statusPage",
      summary: "The status page for operators",
      description:
        "One HTML page, its script and style inline, nothing loaded from elsewhere; it holds no data and polls `/ui/status`. Also served at `/ui/`. Open like the probes; with `auth.protect_ops` any valid token, as a bearer token or as the password of HTTP Basic auth (the 401 asks a browser for it).",
      tags: ["ui"],
      security: [{ bearer: [] }, { basic: [] }, {}],
      responses: {
        "200": {
          description: "The page.",
          headers: {
            "Content-Security-Policy": must("Content-Security-Policy"),
            "Cache-Control": must("Cache-Control"),
          },
          content: { "text/html": { schema: { type: "string" } } },
        },
        ...opsErrors(),
        "401": {
          description: "`auth.protect_ops` is on and the request has no valid token.",
          headers: { "WWW-Authenticate": must("WWW-Authenticate-Basic") },
          content: json(ref("schemas", "Error401")),
        },
      },
    };
    return { get, head: { ...get, operationId: "statusPageHead", summary: `${get.summary} (headers only)` } };
  })(),
  "/ui/status": (() => {
    const get = {
      operationId: "uiStatus",
      summary: "What the status page shows, as JSON",
      description:
        "Needs what `GET /v1/keyspaces` needs (admin on some keyspace, when auth is on); a keyspace's dead letters are listed only to a token with admin on it.",
      tags: ["ui"],
      responses: {
        "200": {
          description: "Readiness and every keyspace.",
          headers: { "Cache-Control": must("Cache-Control") },
          content: json(ref("schemas", "StatusSnapshot")),
        },
        ...errors(),
      },
    };
    return { get, head: { ...get, operationId: "uiStatusHead", summary: `${get.summary} (headers only)` } };
  })(),
  "/healthz": opsPath("healthz", "The process is alive", {
    description: "Alive.",
    content: json(ref("schemas", "Health")),
  }),
  "/readyz": (() => {
    const ready = { description: "Cache and database answer.", content: json(ref("schemas", "Readiness")) };
    const p = opsPath("readyz", "Cache and database are reachable", ready);
    const down = {
      description: "Something is down (`checks` names it), or the daemon is at its connection limit.",
      content: json({ anyOf: [ref("schemas", "Readiness"), ref("schemas", "Error503")] }),
    };
    for (const op of [p.get, p.head]) (op.responses as Record<string, object>)["503"] = down;
    return p;
  })(),
  "/metrics": opsPath("metrics", "Prometheus text exposition", {
    description: "The metrics.",
    content: { "text/plain": { schema: { type: "string" } } },
  }),
  [OPENAPI_PATH]: opsPath("openapi", "This description", {
    description: "OpenAPI 3.1.",
    content: json({ type: "object" }),
  }),
};

export const openapiDocument = {
  openapi: "3.1.0",
  info: {
    title: "sidecache",
    version: "1.0.0",
    summary: "A caching sidecar: a key/value HTTP protocol in front of Redis and PostgreSQL.",
    description:
      'Bodies are JSON in UTF-8 (`Content-Type: application/json`; a missing type is taken as JSON). Every error is `{"error": {"code", "message"}}` with the status its code belongs to. Every answer carries `X-Request-Id` (the request\'s own when it sent a tame one). Requests the HTTP parser can not read get 400 `invalid_request` (431 for oversized headers, 408 `timeout` for slow ones), then the connection closes.',
    license: { name: "MIT", identifier: "MIT" },
  },
  tags: [
    { name: "kv", description: "Values" },
    {
      name: "admin",
      description:
        "Keyspaces: status, write-behind queue, dead letters, consistency check, cache warming (admin permission)",
    },
    { name: "ops", description: "Probes, metrics and this document (a token only with `auth.protect_ops`)" },
    { name: "ui", description: "The operators' status page and the data it shows" },
  ],
  security: [{ bearer: [] }, {}],
  paths,
  components: {
    schemas,
    responses: Object.fromEntries(ERROR_STATUSES.map((s) => [errorResponseNames[s][0], errorResponse(s)])),
    parameters,
    headers,
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        description: "A token of `auth.tokens`; without `auth` no token is asked for.",
      },
      basic: {
        type: "http",
        scheme: "basic",
        description: "The status page only: any user name, the token as the password.",
      },
    },
  },
} as const;

const body = JSON.stringify(openapiDocument);
const bodyBytes = Buffer.byteLength(body);

/** GET /openapi.json: the description; like the other ops routes it needs a token only with protect_ops. */
export function serveOpenApi(
  ctx: ProxyContext,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): number {
  if (method !== "GET" && method !== "HEAD") {
    throw new MethodNotAllowedError(`${OPENAPI_PATH} answers GET only.`, ["GET", "HEAD"]);
  }
  if (ctx.auth.protectsOps) ctx.auth.check(req, "read", undefined);
  res.writeHead(200, { "content-type": "application/json", "content-length": bodyBytes });
  res.end(method === "HEAD" ? undefined : body);
  return 200;
}
