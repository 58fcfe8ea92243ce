/**
 * The embedded PostgreSQL (PGlite) driver. PGlite is one connection: it queues every query and holds
 * the queue for the whole of a transaction, so a transaction must only use the `tx` it is given (a query
 * on the instance itself from inside one would wait forever).
 */
import { mkdir } from "node:fs/promises";
import { PGlite, type Results, type Transaction } from "@electric-sql/pglite";
import type { Driver, Queryable, QueryResult } from "./driver.js";

function toResult(r: Results): QueryResult {
  return { rows: r.rows as Record<string, unknown>[], rowCount: r.affectedRows ?? r.rows.length };
}

export class PgliteDriver implements Driver {
  readonly kind = "pglite";
  private closed = false;

  private constructor(private readonly db: PGlite) {}

  /** path null: an in-memory database. */
  static async open(path: string | null): Promise<PgliteDriver> {
    if (path !== null) await mkdir(path, { recursive: true });
    const db = path === null ? await PGlite.create() : await PGlite.create(path);
    return new PgliteDriver(db);
  }

  private check(): void {
    if (this.closed) throw new Error("PGlite is closed");
  }

  async query(text: string, params: unknown[] = []): Promise<QueryResult> {
    this.check();
    return toResult(await this.db.query(text, params));
  }

  /** In the process: there is no connection to lose, so no outcome is ever unknown. */
  autocommit(text: string, params: unknown[] = []): Promise<QueryResult> {
    return this.query(text, params);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.check();
    return this.db.transaction(async (tx: Transaction) =>
      fn({ query: async (text, params = []) => toResult(await tx.query(text, params)) }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }
}
