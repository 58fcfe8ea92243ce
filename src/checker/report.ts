/** The report of a check (docs/protocol.md), with the confidence the sample supports. */
import type { RepairPolicy } from "../config/types.js";
import { nines, round, upperBound } from "./stats.js";
import { INCONSISTENT_KINDS, type CheckReport, type InconsistentKind, type KeyFinding } from "./types.js";

export interface Tally {
  /** keys compared, by kind (consistent included) */
  checked: Record<string, number>;
  repaired: Partial<Record<InconsistentKind, number>>;
  skipped: number;
  findings: KeyFinding[];
  repairErrors: number;
}

export function buildReport(r: {
  keyspace: string;
  mode: "sample" | "full";
  repair: RepairPolicy;
  startedAt: number;
  tally: Tally;
}): CheckReport {
  const { tally } = r;
  const sampled = Object.values(tally.checked).reduce((a, b) => a + b, 0);
  const byKind: Partial<Record<InconsistentKind, number>> = {};
  let inconsistent = 0;
  for (const kind of INCONSISTENT_KINDS) {
    const n = tally.checked[kind] ?? 0;
    if (n > 0) byKind[kind] = n;
    inconsistent += n;
  }
  const repaired = Object.values(tally.repaired).reduce((a, b) => a + (b ?? 0), 0);
  const ratio = sampled === 0 ? 0 : inconsistent / sampled;
  const upper = sampled === 0 ? 1 : upperBound(inconsistent, sampled);
  return {
    keyspace: r.keyspace,
    sampled,
    inconsistent,
    by_kind: byKind,
    repaired,
    ratio: round(ratio, 6),
    started_at: new Date(r.startedAt).toISOString(),
    duration_ms: Date.now() - r.startedAt,
    mode: r.mode,
    repair: r.repair,
    skipped: tally.skipped,
    ratio_upper_95: round(upper, 6),
    nines: { estimate: nines(ratio), lower_95: nines(upper) ?? 0 },
    findings: tally.findings,
    repair_errors: tally.repairErrors,
  };
}
