/**
 * Metrics and the access log for a command's work on one keyspace, as the HTTP router records a request:
 * keyspace, op, the HTTP status of the same outcome, duration, and protocol "resp".
 */
import { SidecacheError } from "../errors.js";
import type { Op } from "../proxy/context.js";
import type { CommandContext } from "./command.js";

export interface Outcome {
  /** the keyspace once known; "(unknown)" for a name no keyspace has */
  keyspace: string;
  /** the HTTP status of the same outcome: 200, 202, 204, 404 (a GET of an absent key), 412 ... */
  status: number;
  /** the name of the caller's token, when auth is on */
  client?: string;
}

export async function observed<T>(
  c: CommandContext,
  op: Op,
  keyspace: string,
  work: (o: Outcome) => Promise<T>,
): Promise<T> {
  const started = process.hrtime.bigint();
  const o: Outcome = { keyspace, status: 200 };
  try {
    return await work(o);
  } catch (err) {
    o.status = statusOf(err);
    throw err;
  } finally {
    record(c, op, o, started);
  }
}

/** Records a command refused before its work began (an unknown keyspace, a forbidden key). */
export function refused(c: CommandContext, op: Op, o: Outcome, err: unknown): void {
  o.status = statusOf(err);
  record(c, op, o, process.hrtime.bigint());
}

function statusOf(err: unknown): number {
  return err instanceof SidecacheError ? err.status : 500;
}

function record(c: CommandContext, op: Op, o: Outcome, started: bigint): void {
  const request = c.request;
  // Past its deadline the command was answered TIMEOUT, whatever the work did later.
  const status = request?.answered ? 504 : o.status;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { observer, log, accessLog } = c.resp.proxy;
  observer.request(o.keyspace, op, status, seconds, "resp");
  const failed = status >= 500 || status === 401 || status === 403;
  const level = failed || accessLog ? "info" : "debug";
  if (!log.isLevelEnabled(level)) return;
  log[level](
    {
      reqId: request?.id,
      protocol: "resp",
      conn: c.session.id,
      keyspace: o.keyspace || undefined,
      op,
      client: o.client,
      status,
      ms: Math.round(seconds * 10_000) / 10,
    },
    "request",
  );
}
