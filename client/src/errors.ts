/**
 * Errors as classes, one per family of the protocol's codes (by HTTP status), each carrying the stable
 * `code` and the `status` it came with. The codes and their statuses are the OpenAPI description's
 * (schema.ts): a code the description moves to another status no longer compiles here.
 */
import type { components } from "./schema.js";

type Schemas = components["schemas"];
/** Every code the daemon answers with. */
export type ErrorCode = Schemas["ErrorCode"];
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 412 | 413 | 415 | 429 | 500 | 503 | 504;
/** The codes of one status, as the description lists them. */
export type CodesOf<S extends ErrorStatus> = Schemas[`Error${S}`]["error"]["code"];
type StatusOf<C extends ErrorCode> = { [S in ErrorStatus]: C extends CodesOf<S> ? S : never }[ErrorStatus];
/** Codes the client raises itself when no usable answer came back. */
export type ClientCode = "connection_failed" | "unexpected_response";

/** Each code with its status: checked against the description by the compiler and by a test. */
export const CODE_STATUS: { readonly [C in ErrorCode]: StatusOf<C> } = {
  invalid_key: 400,
  invalid_json: 400,
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unknown_keyspace: 404,
  method_not_allowed: 405,
  version_mismatch: 412,
  value_too_large: 413,
  unsupported_media_type: 415,
  queue_full: 429,
  internal: 500,
  backend_unavailable: 503,
  overloaded: 503,
  timeout: 504,
};

export interface ErrorDetails {
  /** the X-Request-Id of the answer: what the daemon's log lines carry */
  requestId?: string;
  /** from Retry-After, when the answer had one */
  retryAfterMs?: number;
  /** how many requests were sent for this call, retries included */
  attempts?: number;
  cause?: unknown;
}

/** The base of every error the client throws: `code` is stable, `message` is for people. */
export class SidecacheError<C extends string = ErrorCode | ClientCode | (string & {})> extends Error {
  readonly requestId?: string;
  readonly retryAfterMs?: number;
  attempts: number;

  constructor(
    readonly code: C,
    /** the HTTP status; 0 when no answer came (connection failed, the client's own deadline) */
    readonly status: number,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.requestId = details.requestId;
    this.retryAfterMs = details.retryAfterMs;
    this.attempts = details.attempts ?? 1;
  }
}

/** 400: `invalid_key`, `invalid_json`, `invalid_request`. */
export class BadRequestError extends SidecacheError<CodesOf<400>> {}
/** 401 `unauthorized`: no token, or not a valid one. */
export class UnauthorizedError extends SidecacheError<CodesOf<401>> {}
/** 403 `forbidden`: the token may not do this on this keyspace. */
export class ForbiddenError extends SidecacheError<CodesOf<403>> {}
/** 404: `not_found` (a key; `get` answers null instead), `unknown_keyspace`. */
export class NotFoundError extends SidecacheError<CodesOf<404>> {}
/** 405 `method_not_allowed`: a write to a read-through keyspace. */
export class MethodNotAllowedError extends SidecacheError<CodesOf<405>> {
  /** the methods the path answers, from Allow */
  allow: string[] = [];
}
/** 412 `version_mismatch`: If-Match named another version, or If-None-Match: * met an existing key. */
export class VersionMismatchError extends SidecacheError<CodesOf<412>> {}
/** 413 `value_too_large`. */
export class ValueTooLargeError extends SidecacheError<CodesOf<413>> {}
/** 415 `unsupported_media_type` (the client always sends JSON; listed for completeness). */
export class UnsupportedMediaTypeError extends SidecacheError<CodesOf<415>> {}
/** 429 `queue_full`: the write-behind queue is full and nothing was queued; `retryAfterMs` says when to come back. */
export class QueueFullError extends SidecacheError<CodesOf<429>> {}
/** 500 `internal`. */
export class InternalError extends SidecacheError<CodesOf<500>> {}
/** 503: `backend_unavailable` (Redis or PostgreSQL down), `overloaded` (connection limit, with Retry-After). */
export class UnavailableError extends SidecacheError<CodesOf<503>> {}
/** `timeout`: 504 when the daemon's deadline passed (a write may still complete), 0 when the client's did. */
export class TimeoutError extends SidecacheError<CodesOf<504>> {}
/** The request could not be sent or its answer not read (`connection_failed`, status 0). */
export class ConnectionError extends SidecacheError<"connection_failed"> {
  /** the connection was refused: nothing reached the daemon */
  readonly refused: boolean;
  constructor(message: string, details: ErrorDetails & { refused: boolean }) {
    super("connection_failed", 0, message, details);
    this.refused = details.refused;
  }
}

type Family = new (code: never, status: number, message: string, details?: ErrorDetails) => SidecacheError;

export const FAMILIES: { readonly [S in ErrorStatus]: Family } = {
  400: BadRequestError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  405: MethodNotAllowedError,
  412: VersionMismatchError,
  413: ValueTooLargeError,
  415: UnsupportedMediaTypeError,
  429: QueueFullError,
  500: InternalError,
  503: UnavailableError,
  504: TimeoutError,
};

/** The error an answer of status >= 400 stands for; a body not in the error shape gives `unexpected_response`. */
export function errorFromAnswer(status: number, text: string, details: ErrorDetails): SidecacheError {
  let code: string | undefined;
  let message = `The daemon answered ${status}.`;
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof e?.code === "string") code = e.code;
    if (typeof e?.message === "string") message = e.message;
  } catch {
    // not the error shape: a proxy in between, say
  }
  const Family = FAMILIES[status as ErrorStatus];
  if (code === undefined || !Family) {
    return new SidecacheError(code ?? "unexpected_response", status, message, details);
  }
  return new Family(code as never, status, message, details);
}
