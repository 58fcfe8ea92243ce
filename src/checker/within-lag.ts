/**
 * "Consistent within the CDC lag": of the changes a check sees, the share the cache reflected no later
 * than `lagMs` after they were made (a change is reflected when the cache no longer claims the state
 * before it). Computed when change data capture is on, beside the ratio, which it does not alter.
 *
 * Versions are microsecond clocks, so a row's version says when it changed. The changes a check can
 * judge are the sampled keys the cache was behind on at the first read (stale, orphan, mismatch), and the
 * keys found consistent whose row changed less than `lagMs` before that read. A key still behind is read
 * again until it agrees or `lagMs` after its change has passed. A version that is not a plausible clock
 * (a mapped table counting 1, 2, 3) counts from the first read instead.
 */
import type { Sides, Verdict } from "./classify.js";

export interface WithinLagReport {
  /** within / changes; null when the check saw no change it could judge */
  fraction: number | null;
  lag_ms: number;
  /** changes the check could judge */
  changes: number;
  /** of those, reflected by the cache within lag_ms */
  within: number;
}

/** The lag within which a change counts as reflected, when store.cdc is on. */
export const CDC_LAG_MS = 1_000;

/** 2001-01-01: a version below this many ms is not a clock. */
const PLAUSIBLE_MS = 978_307_200_000;
const POLL_MS = 50;

export class WithinLag {
  private changes = 0;
  private within = 0;
  private pending: { key: string; deadline: number }[] = [];

  constructor(private readonly lagMs: number) {}

  /** The first read of a key, at readAt (ms). */
  first(key: string, sides: Sides, verdict: Verdict, readAt: number): void {
    if (verdict === "skip" || verdict === "missing_write") return;
    const changedAt = changeTime(sides.row?.version, readAt);
    if (verdict === "consistent") {
      if (sides.row && changedAt !== undefined && readAt - changedAt <= this.lagMs) {
        this.changes++;
        this.within++;
      }
      return;
    }
    this.changes++;
    const deadline = (changedAt ?? readAt) + this.lagMs;
    if (readAt <= deadline) this.pending.push({ key, deadline });
  }

  /** Reads the keys still behind again until each agrees or its deadline has passed. */
  async settle(
    read: (keys: string[]) => Promise<Map<string, Sides>>,
    verdict: (s: Sides) => Verdict,
  ): Promise<void> {
    while (this.pending.length > 0) {
      const at = Date.now();
      const sides = await read(this.pending.map((p) => p.key));
      this.pending = this.pending.filter((p) => {
        const s = sides.get(p.key);
        if (s && verdict(s) === "consistent" && at <= p.deadline) {
          this.within++;
          return false;
        }
        return Date.now() < p.deadline;
      });
      if (this.pending.length === 0) break;
      const next = Math.min(...this.pending.map((p) => p.deadline)) - Date.now();
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(POLL_MS, next))));
    }
  }

  report(): WithinLagReport {
    return {
      fraction: this.changes === 0 ? null : Math.round((this.within / this.changes) * 1e6) / 1e6,
      lag_ms: this.lagMs,
      changes: this.changes,
      within: this.within,
    };
  }
}

function changeTime(version: number | undefined, readAt: number): number | undefined {
  if (version === undefined) return undefined;
  const ms = version / 1000;
  return ms >= PLAUSIBLE_MS && ms <= readAt + 60_000 ? ms : undefined;
}
