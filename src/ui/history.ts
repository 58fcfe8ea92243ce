/**
 * The last minutes of each keyspace for the status page: hits and misses per interval (from telemetry),
 * the write-behind queue depth sampled at each interval, and the last consistency checks with their nines.
 * Kept in memory, bounded, per daemon.
 */
import type { Keyspace } from "../keyspaces.js";
import type { TelemetryEvent } from "../telemetry.js";

export interface Point {
  /** end of the interval, ms since the epoch */
  t: number;
  hits: number;
  misses: number;
  /** write-behind only: queue depth at the end of the interval */
  queue?: number;
}

export interface CheckSummary {
  finished_at: string;
  sampled: number;
  inconsistent: number;
  by_kind: Record<string, number>;
  repaired: number;
  ratio: number;
  ratio_upper_95: number;
  /** -log10 of the rate: the estimate (null when nothing was found) and the bound the sample supports */
  nines: { estimate: number | null; lower_95: number };
  duration_ms: number;
}

export interface HistoryOptions {
  keyspaces: () => Keyspace[];
  /** length of one point [10 s] */
  intervalMs?: number;
  /** points kept [90: 15 minutes at 10 s] */
  points?: number;
  /** checks kept per keyspace [10] */
  checks?: number;
}

interface Series {
  points: Point[];
  hits: number;
  misses: number;
  checks: CheckSummary[];
}

export class StatusHistory {
  readonly intervalMs: number;
  private readonly maxPoints: number;
  private readonly maxChecks: number;
  private readonly series = new Map<string, Series>();
  private timer?: NodeJS.Timeout;
  private sampling = false;

  constructor(private readonly o: HistoryOptions) {
    this.intervalMs = o.intervalMs ?? 10_000;
    this.maxPoints = o.points ?? 90;
    this.maxChecks = o.checks ?? 10;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The telemetry sink. */
  readonly onEvent = (e: TelemetryEvent): void => {
    switch (e.type) {
      case "cache_hit":
        this.of(e.keyspace).hits += e.n ?? 1;
        break;
      case "cache_miss":
        this.of(e.keyspace).misses += e.n ?? 1;
        break;
      case "consistency_check": {
        const inconsistent = Object.entries(e.checked)
          .filter(([k]) => k !== "consistent")
          .reduce((n, [, v]) => n + v, 0);
        const byKind = Object.fromEntries(
          Object.entries(e.checked).filter(([k, v]) => k !== "consistent" && v > 0),
        );
        const checks = this.of(e.keyspace).checks;
        checks.unshift({
          finished_at: new Date(e.finishedAt).toISOString(),
          sampled: Object.values(e.checked).reduce((n, v) => n + v, 0),
          inconsistent,
          by_kind: byKind,
          repaired: Object.values(e.repaired).reduce((n, v) => n + v, 0),
          ratio: e.ratio,
          ratio_upper_95: e.ratioUpper,
          nines: {
            estimate: e.ratio > 0 ? round(-Math.log10(e.ratio)) : null,
            lower_95: round(-Math.log10(e.ratioUpper)),
          },
          duration_ms: Math.round(e.seconds * 1000),
        });
        checks.length = Math.min(checks.length, this.maxChecks);
        break;
      }
    }
  };

  points(keyspace: string): Point[] {
    return this.series.get(keyspace)?.points ?? [];
  }

  checks(keyspace: string): CheckSummary[] {
    return this.series.get(keyspace)?.checks ?? [];
  }

  /** Closes the current interval of every keyspace: one point each. */
  async sample(now = Date.now()): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const live = this.o.keyspaces();
      const names = new Set(live.map((k) => k.config.name));
      for (const name of this.series.keys()) if (!names.has(name)) this.series.delete(name);
      await Promise.all(
        live.map(async (ks) => {
          const s = this.of(ks.config.name);
          const point: Point = { t: now, hits: s.hits, misses: s.misses };
          s.hits = 0;
          s.misses = 0;
          if (ks.strategy.queueStatus) {
            const q = await ks.strategy.queueStatus().catch(() => undefined);
            if (q) point.queue = q.depth;
          }
          s.points.push(point);
          if (s.points.length > this.maxPoints) s.points.splice(0, s.points.length - this.maxPoints);
        }),
      );
    } finally {
      this.sampling = false;
    }
  }

  private of(keyspace: string): Series {
    let s = this.series.get(keyspace);
    if (!s) this.series.set(keyspace, (s = { points: [], hits: 0, misses: 0, checks: [] }));
    return s;
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
