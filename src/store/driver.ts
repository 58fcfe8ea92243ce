/**
 * The little a TableStore needs of a database connection. sql.ts, shape.ts, table-store.ts and
 * sql-store.ts hold all the SQL; a driver only runs statements, either alone or inside one transaction.
 */
export type Row = Record<string, unknown>;

export interface QueryResult {
  rows: Row[];
  /** rows a write statement touched (0 for a select that returns no rows) */
  rowCount: number;
}

export interface Queryable {
  query(text: string, params?: unknown[]): Promise<QueryResult>;
}

export interface Driver extends Queryable {
  /** "postgres" or "pglite" */
  readonly kind: string;
  /**
   * Runs one statement in its own implicit transaction (autocommit). When the connection fails after the
   * statement was sent, the error is marked as an outcome unknown (isCommitUnknown): it may have committed.
   */
  autocommit(text: string, params?: unknown[]): Promise<QueryResult>;
  /** Runs fn inside BEGIN/COMMIT on one connection; fn throwing rolls back and rethrows. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
