/** The pg Pool driver. A PostgreSQL restart shows up as failed calls, never as a crash. */
import pg from "pg";
import type { Logger } from "../log.js";
import type { Driver, Queryable, QueryResult } from "./driver.js";
import { markCommitUnknown, markOutcomeUnknown, sqlStateOf } from "./errors.js";

export interface PostgresDriverOptions {
  url: string;
  poolSize: number;
  timeoutMs: number;
  log?: Logger;
}

// Versions are bigint; they stay below 2^53, and the store turns them into numbers itself (num in sql.ts).
function toResult(r: pg.QueryResult): QueryResult {
  return { rows: r.rows as Record<string, unknown>[], rowCount: r.rowCount ?? 0 };
}

/** A connection error leaves the client unusable: drop it from the pool rather than hand it out again. */
function brokenConnection(err: unknown): boolean {
  const state = sqlStateOf(err);
  if (state !== undefined) return state.startsWith("08") || state.startsWith("57P");
  return true;
}

export class PostgresDriver implements Driver {
  readonly kind = "postgres";
  private readonly pool: pg.Pool;

  constructor(options: PostgresDriverOptions) {
    const { log } = options;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: options.timeoutMs,
      // The server gives up first (57014, the connection stays usable); the client-side timeout is the
      // backstop for a server that no longer answers at all.
      statement_timeout: options.timeoutMs,
      query_timeout: options.timeoutMs + 1000,
      idle_in_transaction_session_timeout: Math.max(options.timeoutMs * 2, 10_000),
      keepAlive: true,
      application_name: "sidecache",
    });
    // An idle client whose server went away emits 'error' on the pool; a checked-out one emits it on
    // itself. Without listeners either would take the process down.
    this.pool.on("error", (err) => log?.warn({ err: err.message }, "store connection lost (idle)"));
    this.pool.on("connect", (client) => {
      client.on("error", (err) => log?.warn({ err: err.message }, "store connection lost"));
    });
  }

  async query(text: string, params: unknown[] = []): Promise<QueryResult> {
    return toResult(await this.pool.query(text, params));
  }

  async autocommit(text: string, params: unknown[] = []): Promise<QueryResult> {
    // A failure to get a connection sent nothing: it stays a plain error.
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      return toResult(await client.query(text, params));
    } catch (err) {
      if (brokenConnection(err)) {
        broken = err instanceof Error ? err : new Error(String(err));
        throw markOutcomeUnknown(err);
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // Released with an error (and so closed) only when the connection itself may be broken.
    let broken: Error | undefined;
    let rolledBack = false;
    try {
      await client.query("begin");
      const tx: Queryable = {
        query: async (text, params = []) => toResult(await client.query(text, params)),
      };
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        await client.query("rollback").then(
          () => (rolledBack = true),
          (rollbackErr: unknown) =>
            (broken = rollbackErr instanceof Error ? rollbackErr : new Error("rollback failed")),
        );
        throw err;
      }
      try {
        await client.query("commit");
      } catch (err) {
        throw markCommitUnknown(err);
      }
      return result;
    } catch (err) {
      if (broken === undefined && !rolledBack && brokenConnection(err)) {
        broken = err instanceof Error ? err : new Error(String(err));
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
