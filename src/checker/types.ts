/** The vocabulary of the consistency checker (docs/protocol.md). */
import type { RepairPolicy } from "../config/types.js";
import type { WithinLagReport } from "./within-lag.js";

export const INCONSISTENT_KINDS = ["stale", "orphan", "missing_write", "mismatch"] as const;
export type InconsistentKind = (typeof INCONSISTENT_KINDS)[number];
export type Kind = "consistent" | InconsistentKind;

export interface CheckOptions {
  /** keys to draw (from both sides); the keyspace's `sample` when not given */
  sample?: number;
  /** every key of the keyspace, in batches, instead of a sample */
  full?: boolean;
}

/** What one key turned out to be, after the re-check. */
export interface KeyFinding {
  key: string;
  kind: InconsistentKind;
  cacheVersion: number;
  storeVersion: number | null;
  repaired: boolean;
}

export interface CheckReport {
  keyspace: string;
  sampled: number;
  inconsistent: number;
  by_kind: Partial<Record<InconsistentKind, number>>;
  repaired: number;
  ratio: number;
  started_at: string;
  duration_ms: number;
  /** the rest is sidecache's addition to the protocol's report */
  mode: "sample" | "full";
  repair: RepairPolicy;
  /** keys left out: written while checked, or with a write-behind write queued */
  skipped: number;
  /** one-sided 95% upper confidence bound of the inconsistency rate (Clopper-Pearson) */
  ratio_upper_95: number;
  /** -log10 of the rate: its estimate (null when nothing was found) and the bound the sample supports */
  nines: { estimate: number | null; lower_95: number };
  /** the keys found (at most 100 listed), with versions, so an operator can look at them */
  findings: KeyFinding[];
  /** repairs that failed (the cache or the store was down) */
  repair_errors: number;
  /** with change data capture: the share of the changes seen that the cache reflected within the lag */
  consistent_within_lag?: WithinLagReport;
}
