/**
 * Every error the daemon answers with, each with the stable code and HTTP status of the protocol
 * (docs/protocol.md). The HTTP layer renders any SidecacheError as {"error": {"code", "message"}}.
 */
export class SidecacheError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidKeyError extends SidecacheError {
  constructor(message: string) {
    super("invalid_key", 400, message);
  }
}
export class InvalidJsonError extends SidecacheError {
  constructor(message: string) {
    super("invalid_json", 400, message);
  }
}
export class InvalidRequestError extends SidecacheError {
  constructor(message: string) {
    super("invalid_request", 400, message);
  }
}
export class UnauthorizedError extends SidecacheError {
  constructor(message = "A valid bearer token is required.") {
    super("unauthorized", 401, message, { "www-authenticate": 'Bearer realm="sidecache"' });
  }
}
export class ForbiddenError extends SidecacheError {
  constructor(message: string) {
    super("forbidden", 403, message);
  }
}
export class NotFoundError extends SidecacheError {
  constructor(message: string) {
    super("not_found", 404, message);
  }
}
export class UnknownKeyspaceError extends SidecacheError {
  constructor(keyspace: string) {
    super("unknown_keyspace", 404, `No keyspace named ${JSON.stringify(keyspace)} is configured.`);
  }
}
export class MethodNotAllowedError extends SidecacheError {
  constructor(message: string, allow: string[]) {
    super("method_not_allowed", 405, message, { allow: allow.join(", ") });
  }
}
export class VersionMismatchError extends SidecacheError {
  constructor(message: string) {
    super("version_mismatch", 412, message);
  }
}
export class ValueTooLargeError extends SidecacheError {
  constructor(limit: number) {
    super("value_too_large", 413, `The request body is larger than the limit of ${limit} bytes.`);
  }
}
export class UnsupportedMediaTypeError extends SidecacheError {
  constructor(got: string) {
    super("unsupported_media_type", 415, `Bodies must be application/json, not ${JSON.stringify(got)}.`);
  }
}
export class QueueFullError extends SidecacheError {
  constructor(keyspace: string, retryAfterSeconds: number) {
    super(
      "queue_full",
      429,
      `The write-behind queue of ${JSON.stringify(keyspace)} is full; retry after ${retryAfterSeconds}s.`,
      { "retry-after": String(retryAfterSeconds) },
    );
  }
}
export type Backend = "cache" | "store";
export class BackendUnavailableError extends SidecacheError {
  constructor(
    readonly backend: Backend,
    message: string,
    override readonly cause?: unknown,
  ) {
    super("backend_unavailable", 503, message);
  }
}
/**
 * Part of the backend is unreachable (one shard of a Redis Cluster, its connection closed or its slots
 * moving) while the rest answers: the call failed, the backend's circuit breaker does not count it.
 */
export class ShardUnavailableError extends BackendUnavailableError {}
/** The daemon itself is at a limit (connections): nothing is wrong with the request or the backends. */
export class OverloadedError extends SidecacheError {
  constructor(message: string, retryAfterSeconds = 1) {
    super("overloaded", 503, message, { "retry-after": String(retryAfterSeconds) });
  }
}
export class TimeoutError extends SidecacheError {
  constructor(message: string) {
    super("timeout", 504, message);
  }
}

/** A write the database refuses for good (constraint, bad type): the request is wrong, not the backend. */
export class StoreRejectedError extends SidecacheError {
  constructor(
    message: string,
    readonly sqlState?: string,
  ) {
    super("invalid_request", 400, message);
  }
}

/**
 * A write announced at a version (write-through strict's tombstone) found the key already at or above it:
 * nothing was written. The writer takes a version above `current` and tries again; it is never answered.
 */
export class VersionTakenError extends SidecacheError {
  /** never answered to a client: the writer retries */
  static readonly internal = true;
  constructor(readonly current: Map<string, number>) {
    super("version_taken", 409, `The key(s) ${[...current.keys()].join(", ")} already have a newer version.`);
  }
}

/** A configuration file that can not be used; the message names file, line, path and what is allowed. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${path || "(root)"}: ${problem}`);
    this.name = "ConfigError";
  }
}

/** PostgreSQL can not stream changes for store.cdc (a setting, a privilege, a table); the message says the fix. */
export class CdcSetupError extends Error {
  readonly code = "cdc_setup";
  constructor(message: string) {
    super(message);
    this.name = "CdcSetupError";
  }
}
