/** Maps what drivers throw onto the error classes of src/errors.ts. */
import { BackendUnavailableError, SidecacheError, StoreRejectedError } from "../errors.js";

/** SQLSTATE of a database error, when the thrown value has one. */
export function sqlStateOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOENT", // unix socket path gone
]);

const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /not queryable/i,
  /connection (?:is )?closed/i,
  /cannot use a pool after calling end/i,
  /client was closed/i,
  /pglite is closed/i,
];

/** Serialization failures and deadlocks: the same transaction may succeed when run again. */
export function isRetryable(err: unknown): boolean {
  const state = sqlStateOf(err);
  return state === "40001" || state === "40P01";
}

function isUnavailable(err: unknown): boolean {
  const state = sqlStateOf(err);
  if (state !== undefined) {
    // 08 connection exception, 53 insufficient resources (too many connections, out of disk),
    // 57P0x shutdown / cannot connect now, 57014 statement timeout, 58 system error.
    return (
      state.startsWith("08") ||
      state.startsWith("53") ||
      state.startsWith("57P") ||
      state === "57014" ||
      state.startsWith("58") ||
      state === "55P03" // lock_not_available (lock_timeout)
    );
  }
  if (typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && NETWORK_CODES.has(code)) return true;
  const message = (err as { message?: unknown }).message;
  if (typeof message === "string" && UNAVAILABLE_MESSAGES.some((re) => re.test(message))) return true;
  // AggregateError from a dual-stack connect: unavailable when any attempt was refused.
  const errors = (err as { errors?: unknown }).errors;
  return Array.isArray(errors) && errors.some(isUnavailable);
}

/** Bad data: the request is wrong, not the database. */
function isRejected(state: string): boolean {
  return (
    state.startsWith("22") || // data exception: bad json, bad number, value too long
    state.startsWith("23") || // integrity constraint: not null, check, foreign key, unique
    state === "42804" || // datatype mismatch
    state === "54000" // program limit exceeded: a row or jsonb value too large
  );
}

/**
 * The error to throw for err: SidecacheErrors pass through, an unreachable database becomes
 * BackendUnavailableError("store"), refused data StoreRejectedError; anything else (a bug in the SQL,
 * say) is rethrown as it is.
 */
export function mapStoreError(err: unknown): unknown {
  if (err instanceof SidecacheError) return err;
  if (isUnavailable(err)) {
    const detail = err instanceof Error && err.message ? err.message : String(err);
    return new BackendUnavailableError("store", `PostgreSQL is unavailable: ${detail}`, err);
  }
  const state = sqlStateOf(err);
  if (state !== undefined && isRejected(state)) {
    const message = err instanceof Error ? err.message : String(err);
    return new StoreRejectedError(`PostgreSQL refused the value: ${message}`, state);
  }
  return err;
}

const unknownCommits = new WeakSet<object>();

/**
 * The connection failed while COMMIT was on its way, with no answer from the server: the transaction may
 * or may not have committed. Marks the error so that callers (through any wrapping cause) can tell.
 */
export function markCommitUnknown(err: unknown): unknown {
  if (sqlStateOf(err) === undefined) markOutcomeUnknown(err);
  return err;
}

/**
 * A statement in its own implicit transaction whose connection failed after it was sent (no answer, or
 * the server's shutdown message, which may come after the commit): it may have committed.
 */
export function markOutcomeUnknown(err: unknown): unknown {
  if (typeof err === "object" && err !== null) unknownCommits.add(err);
  return err;
}

/**
 * The server answered the statement with an error of its own (refused data, a constraint, a trigger's
 * exception, a bug in the SQL): nothing of it was written, and the same statement would fail again.
 * Not a connection that failed, a server going away or overloaded, a timeout or a conflict worth a retry.
 */
export function isRefusedByServer(err: unknown): boolean {
  const state = sqlStateOf(err);
  return state !== undefined && !isUnavailable(err) && !isRetryable(err) && !isCommitUnknown(err);
}

/** Whether the error, or one of its causes, is a commit whose outcome is unknown. */
export function isCommitUnknown(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === "object" && e !== null && depth < 8; depth++) {
    if (unknownCommits.has(e)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
