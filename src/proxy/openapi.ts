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

const ref = (kind: "schemas" | "responses" | "parameters" | "headers", name: string) => ({
  $ref: `#/components/${kind}/${name}`,
});

const json = (schema: object) => ({ "application/json": { schema } });

const MAX_VERSION = Number.MAX_SAFE_INTEGER;

const errorResponseNames: Record<ErrorStatus, [string, string]> = {
  400: ["BadRequest", "The request is malformed: a bad key, JSON body, header or field."],
  401: ["Unauthorized", "Auth is on and the request has no valid bearer token."],
  403: ["Forbidden", "The token may not do this on this keyspace (read < write < admin)."],
  404: ["NotFound", "No value under the key (`not_found`), or no such keyspace (`unknown_keyspace`)."],
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
  if (status === 401) headers["WWW-Authenticate"] = ref("headers", "WWW-Authenticate");
  if (status === 405) headers.Allow = ref("headers", "Allow");
  if (status === 429) headers["Retry-After"] = { ...ref("headers", "Retry-After"), required: true };
  if (status === 503) headers["Retry-After"] = ref("headers", "Retry-After");
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
  DeadLetterList: {
    type: "object",
    required: ["dead_letters"],
    additionalProperties: false,
    properties: { dead_letters: { type: "array", items: ref("schemas", "DeadLetter") } },
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
  ...Object.fromEntries(
    (Object.keys(ERROR_CODES) as unknown as ErrorStatus[]).map((s) => [`Error${s}`, errorSchema(s)]),
  ),
};

const headers = {
  "X-Cache": {
    description:
      "Where the answer came from: `HIT` (cache), `MISS` (PostgreSQL, also when the cache is down) or `STALE` (an expired entry served while PostgreSQL fails). `_mget` answers `HIT` only when every key hit.",
    schema: ref("schemas", "CacheStatus"),
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
};

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
  DeadLetterId: {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string", pattern: "^\\d{1,20}-\\d{1,20}$" },
  },
};

const kvParams = [ref("parameters", "Keyspace"), ref("parameters", "Key")];
const ksParams = [ref("parameters", "Keyspace")];
const cacheHeaders = { "X-Cache": ref("headers", "X-Cache"), ETag: ref("headers", "ETag") };
const versionBody = (description: string, etag: boolean) => ({
  description,
  ...(etag ? { headers: { ETag: ref("headers", "ETag") } } : {}),
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
      responses: {
        "200": { description: "The value.", headers: cacheHeaders, content: json(ref("schemas", "Value")) },
        ...errors(400, 404),
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
      requestBody: { required: true, content: json(ref("schemas", "MgetRequest")) },
      responses: {
        "200": {
          description: "A value (or null) per key.",
          headers: { "X-Cache": ref("headers", "X-Cache") },
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
      description: "Keyspaces: status, write-behind queue, consistency check (admin permission)",
    },
    { name: "ops", description: "Probes, metrics and this document (a token only with `auth.protect_ops`)" },
  ],
  security: [{ bearer: [] }, {}],
  paths,
  components: {
    schemas,
    responses: Object.fromEntries(
      (Object.keys(ERROR_CODES) as unknown as ErrorStatus[]).map((s) => [
        errorResponseNames[s][0],
        errorResponse(s),
      ]),
    ),
    parameters,
    headers,
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        description: "A token of `auth.tokens`; without `auth` no token is asked for.",
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
