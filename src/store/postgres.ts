/** The pg Pool driver. A PostgreSQL restart shows up as failed calls, never as a crash. */
import pg from "pg";
import type { Logger } from "../log.js";
import type { Driver, Queryable, QueryResult } from "./driver.js";
import { markCommitUnknown, markOutcomeUnknown, sqlStateOf } from "./errors.js";

export interface PostgresDriverOptions {
  url: string;
  poolSize: number;
  timeoutMs: number;
  /** "transaction": a pooler such as PgBouncer in transaction mode is in front of PostgreSQL */
  pooler?: "none" | "transaction";
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

/**
 * A pooler in transaction mode hands each transaction whatever server connection is free, so nothing may
 * be set for a session, and PgBouncer refuses startup parameters it does not know (statement_timeout
 * among them): the timeouts are set per transaction instead, with SET LOCAL, in BEGIN's round trip.
 */
function begin(timeoutMs: number, idleMs: number): string {
  return `begin; set local statement_timeout = ${timeoutMs}; set local idle_in_transaction_session_timeout = ${idleMs}`;
}

/** Says what to do when PgBouncer (or another pooler) refused a startup parameter. */
function explain(err: unknown): unknown {
  if (err instanceof Error && /unsupported startup parameter/i.test(err.message)) {
    err.message +=
      " (a pooler in front of PostgreSQL refused it: for PgBouncer in transaction mode set store.pooler: transaction)";
  }
  return err;
}

export class PostgresDriver implements Driver {
  readonly kind = "postgres";
  private readonly pool: pg.Pool;
  private readonly begin: string;

  constructor(options: PostgresDriverOptions) {
    const { log } = options;
    const idleMs = Math.max(options.timeoutMs * 2, 10_000);
    const pooled = options.pooler === "transaction";
    this.begin = pooled ? begin(options.timeoutMs, idleMs) : "begin";
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: options.timeoutMs,
      // The server gives up first (57014, the connection stays usable); the client-side timeout is the
      // backstop for a server that no longer answers at all. Behind a pooler in transaction mode, a
      // statement outside a transaction has only the backstop.
      ...(pooled
        ? {}
        : { statement_timeout: options.timeoutMs, idle_in_transaction_session_timeout: idleMs }),
      query_timeout: options.timeoutMs + 1000,
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
    try {
      return toResult(await this.pool.query(text, params));
    } catch (err) {
      throw explain(err);
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw explain(err);
    }
  }

  async autocommit(text: string, params: unknown[] = []): Promise<QueryResult> {
    // A failure to get a connection sent nothing: it stays a plain error.
    const client = await this.connect();
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
    const client = await this.connect();
    // Released with an error (and so closed) only when the connection itself may be broken.
    let broken: Error | undefined;
    let rolledBack = false;
    try {
      await client.query(this.begin);
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
