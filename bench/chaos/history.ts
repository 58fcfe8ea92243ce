/** What the chaos clients did and saw: every write and read with its timing, outcome and version. */

/** Each value written is unique: {c: client, n: sequence}, so a read tells exactly which write it saw. */
export interface Written {
  c: number;
  n: number;
}

export interface WriteRecord {
  ks: string;
  key: string;
  value: Written;
  /** ms on this process's clock */
  start: number;
  end: number;
  /** acknowledged: 200 or 202 with a version */
  acked: boolean;
  version?: number;
  /** HTTP status, or "error" when no answer came (the daemon was killed): the write may have happened */
  status: number | "error";
}

export interface ReadRecord {
  ks: string;
  key: string;
  start: number;
  end: number;
  status: number | "error";
  /** the ETag's version; 0 for a 404 without one */
  version: number;
  value?: Written;
  cache?: string;
}

export class History {
  readonly writes: WriteRecord[] = [];
  readonly reads: ReadRecord[] = [];
  /** answers outside what the protocol allows under faults */
  readonly unexpected: string[] = [];

  statusCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of [...this.writes, ...this.reads])
      counts[String(r.status)] = (counts[String(r.status)] ?? 0) + 1;
    return counts;
  }

  cacheCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.reads) if (r.cache) counts[r.cache] = (counts[r.cache] ?? 0) + 1;
    return counts;
  }
}

export const id = (v: Written): string => `${v.c}:${v.n}`;
