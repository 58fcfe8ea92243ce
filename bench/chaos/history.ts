/**
 * What a chaos run did and saw: every operation with its client, the daemon it went to, when it began and
 * ended (ms since the run began, on the harness's clock) and what came back; the faults with the same
 * clock; and, once everything was healed, what PostgreSQL and the cache hold. Saved as JSON when a run
 * fails, and checked again from the file (`npm run chaos -- --check FILE`).
 */

/**
 * Each value written is unique: {c: client, n: sequence}, so a read tells exactly which write it saw.
 * `refuse` asks the deferred trigger to sleep that many ms at COMMIT and then refuse the row (the write
 * answers 400); `slow` asks it to sleep that many ms, past the request deadline (504: it may commit).
 */
export interface Written {
  c: number;
  n: number;
  refuse?: number;
  slow?: number;
}

/** One key of a write (a PUT, or one item of an _mset: its items share `op`). */
export interface WriteRecord {
  op: number;
  client: number;
  daemon: number;
  ks: string;
  key: string;
  value: Written;
  start: number;
  end: number;
  /** HTTP status, or "error" when no answer came (daemon killed or down): it may have happened */
  status: number | "error";
  /** 200 or 202 with a version */
  acked: boolean;
  version?: number;
}

/** One key of a read (a GET, or one key of an _mget: its keys share `op`). */
export interface ReadRecord {
  op: number;
  /** -1 for the reads after healing */
  client: number;
  daemon: number;
  ks: string;
  key: string;
  start: number;
  end: number;
  status: number | "error";
  /** 200 with a value; false for a 404 or an _mget null */
  found: boolean;
  value?: Written;
  /** the ETag's version (0 for a 404 without one); absent for _mget, which carries no versions */
  version?: number;
  cache?: string;
  /** one key of an _mget */
  mget?: boolean;
}

export interface FaultRecord {
  fault: string;
  /** which daemon, for daemon faults */
  target?: number;
  start: number;
  end: number;
}

/** A PostgreSQL row, or one line of the commit log (the rows every committed transaction wrote). */
export interface StoredRecord {
  ks: string;
  key: string;
  value: Written;
  version: number;
}

/** A cache entry as the checker reads it back (RedisCache decodes it: other incarnations are null). */
export interface CachedRecord {
  ks: string;
  key: string;
  kind: "value" | "absent" | "tombstone";
  version: number;
  value?: Written;
}

export interface KeyspaceInfo {
  name: string;
  strategy: string;
  /** PostgreSQL commits each acknowledged write (every strategy but write-behind, which coalesces) */
  synchronous: boolean;
}

/** What PostgreSQL and the cache hold after healing, write-behind flushes and one full check. */
export interface FinalState {
  rows: StoredRecord[];
  commits: StoredRecord[];
  /** before the full check: for the report only (a write that was never answered may leave it behind) */
  cacheBeforeCheck: CachedRecord[];
  /** after the full check: must agree with PostgreSQL */
  cache: CachedRecord[];
  checks: Record<string, unknown>[];
  /** after the reads through every daemon: each one's /readyz, and PostgreSQL's sessions by state */
  diagnostics?: string[];
}

export class History {
  readonly writes: WriteRecord[] = [];
  readonly reads: ReadRecord[] = [];
  readonly faults: FaultRecord[] = [];
  /** answers outside what the protocol allows under faults */
  readonly unexpected: string[] = [];
  private ops = 0;

  /** A new operation id. */
  op(): number {
    return ++this.ops;
  }

  get operations(): number {
    return this.ops;
  }

  statusCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    const seen = new Set<number>();
    for (const r of [...this.writes, ...this.reads]) {
      if (seen.has(r.op)) continue;
      seen.add(r.op);
      counts[String(r.status)] = (counts[String(r.status)] ?? 0) + 1;
    }
    return counts;
  }

  cacheCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.reads) if (r.cache) counts[r.cache] = (counts[r.cache] ?? 0) + 1;
    return counts;
  }
}

export const id = (v: Written): string => `${v.c}:${v.n}`;
