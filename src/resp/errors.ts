/**
 * Errors over RESP: a line that starts with the contract's code in capitals (`-QUEUE_FULL ...`), as
 * clients split the first word off as the error's kind. Two codes take the names every Redis client
 * knows: a command sent without authentication is `-NOAUTH`, a refused AUTH is `-WRONGPASS`.
 */
import { SidecacheError } from "../errors.js";

/** Input that is not RESP: answered with an error, after which the connection is closed. */
export class ProtocolError extends Error {}

/** An error Redis itself would give (wrong arity, unknown command): `-ERR ...` or another Redis code. */
export class RedisError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class WrongPassError extends RedisError {
  constructor() {
    super("WRONGPASS", "The token is not valid.");
  }
}

/** The error's code and message for a `-` line; undefined for errors that are not the client's to see. */
export function errorParts(err: unknown): { code: string; message: string } | undefined {
  if (err instanceof RedisError) return { code: err.code, message: err.message };
  if (err instanceof SidecacheError) {
    const code = err.code === "unauthorized" ? "NOAUTH" : err.code.toUpperCase();
    return { code, message: err.message };
  }
  return undefined;
}
