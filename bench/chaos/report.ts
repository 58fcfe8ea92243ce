/** What a chaos run prints, and the file a failing one leaves behind. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ChaosReport } from "./chaos.js";
import type { SavedRun } from "./checker.js";
import type { Violation } from "./invariants.js";

export function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of items) out[key(t)] = (out[key(t)] ?? 0) + 1;
  return out;
}

export function printReport(r: ChaosReport, say: (l: string) => void): void {
  say(`did: ${r.run.faults.length} faults ${JSON.stringify(countBy(r.run.faults, (f) => f.fault))}`);
  say(
    `     ${r.operations} operations: ${r.writes.acked + r.writes.refused + r.writes.unknown} key writes ` +
      `(${r.writes.acked} acknowledged, ${r.writes.refused} refused, ${r.writes.unknown} without an answer or ` +
      `failed), ${r.reads} key reads`,
  );
  say(`     statuses ${JSON.stringify(r.statuses)}; X-Cache ${JSON.stringify(r.cache)}`);
  say(
    `     by daemon ${JSON.stringify(countBy([...r.run.writes, ...r.run.reads], (o) => `d${o.daemon}`))}; ` +
      `${r.run.final.commits.length} commits logged; ${r.divergedBeforeCheck} cache entries off before the full check`,
  );
  for (const c of r.run.final.checks) {
    say(
      `     full check ${String(c.keyspace)}: sampled ${String(c.sampled)}, inconsistent ${String(c.inconsistent)} ` +
        `${JSON.stringify(c.by_kind ?? {})}, repaired ${String(c.repaired)}`,
    );
  }
  printViolations(r.violations, say);
  if (r.violations.some((v) => v.kind === "final_read_diverges"))
    for (const line of r.run.final.diagnostics ?? []) say(`  ${line}`);
}

export function printViolations(violations: Violation[], say: (l: string) => void): void {
  if (violations.length === 0) {
    say(
      "found: no violation (no acknowledged write lost, read your writes across daemons, monotonic reads, " +
        "no dirty read, nothing made up, cache and every daemon agree with PostgreSQL)",
    );
    return;
  }
  say(`found: ${violations.length} violations ${JSON.stringify(countBy(violations, (v) => v.kind))}`);
  for (const v of violations.slice(0, 25)) say(`  ${v.kind}: ${v.detail}`);
  if (violations.length > 25) say(`  ... and ${violations.length - 25} more`);
}

/** Writes the run's whole history to DIR/chaos-PROFILE-seedN.json; returns the path. */
export function saveRun(r: ChaosReport, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = resolve(join(dir, `chaos-${r.run.profile}-seed${r.run.seed}.json`));
  writeFileSync(file, JSON.stringify({ ...r.run, violations: r.violations } satisfies SavedRun));
  return file;
}
