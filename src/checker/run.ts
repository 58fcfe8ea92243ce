/**
 * One check of one keyspace: read both sides batch by batch (PostgreSQL first, then the cache, then the
 * queued writes), re-read every key that disagrees after a short pause and leave out any key where
 * anything moved, classify what stays, repair it by policy and build the report.
 *
 * The read order matters: a write that lands between the reads shows as a cache newer than PostgreSQL,
 * and the re-read then finds PostgreSQL moved; a cache update that lags its commit shows as stale, and
 * the re-read finds the cache moved. Either way the key is skipped, never reported.
 */
import type { CacheAdapter, CacheEntry } from "../cache/adapter.js";
import type { KeyspaceConfig, RepairPolicy } from "../config/types.js";
import type { Logger } from "../log.js";
import type { StoredRow, TableStore } from "../store/adapter.js";
import { classify, moved, type Sides, type Verdict } from "./classify.js";
import { Repairer } from "./repair.js";
import { buildReport, type Tally } from "./report.js";
import { cacheKeyBatches, sampleKeys, storeKeyBatches } from "./sampler.js";
import type { CheckOptions, CheckReport, InconsistentKind } from "./types.js";
import { WithinLag } from "./within-lag.js";

export interface CheckLimits {
  /** keys read per round trip */
  batch: number;
  /** keys compared per second at most, so a check never crowds out serving */
  keysPerSecond: number;
  /** pause before the second read of a key that disagrees */
  recheckDelayMs: number;
  /**
   * write-behind: a pending write this much older than the oldest write in the queue has lost its queue
   * entry (the margin covers clock differences between daemons and Redis)
   */
  lostWriteMarginMs: number;
  /** with change data capture: the lag within which changes should be reflected (consistent_within_lag) */
  cdcLagMs?: number;
}

export const DEFAULT_LIMITS: CheckLimits = {
  batch: 100,
  keysPerSecond: 2000,
  recheckDelayMs: 50,
  lostWriteMarginMs: 10_000,
};

export interface CheckTarget {
  ks: KeyspaceConfig;
  cache: CacheAdapter;
  store: TableStore;
  /** write-behind's queued versions (Strategy.pendingVersions) */
  pending?: (keys: string[]) => Promise<Map<string, number>>;
  /**
   * write-behind without pending information: a key ahead of PostgreSQL may be a queued write, so such
   * keys are skipped rather than reported
   */
  pendingUnknown?: boolean;
  log: Logger;
  limits?: Partial<CheckLimits>;
}

export interface CheckOutcome {
  report: CheckReport;
  /** keys compared by kind, consistent included (for metrics) */
  checked: Record<string, number>;
  repaired: Record<string, number>;
}

export async function runCheck(t: CheckTarget, options: CheckOptions = {}): Promise<CheckOutcome> {
  return new CheckRun(t, options).execute();
}

class CheckRun {
  private readonly limits: CheckLimits;
  private readonly policy: RepairPolicy;
  private readonly repairer: Repairer;
  private readonly columns?: string[];
  private readonly tally: Tally;
  private readonly startedAt = Date.now();
  private paced = 0;
  private readonly lag?: WithinLag;

  constructor(
    private readonly t: CheckTarget,
    private readonly options: CheckOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...t.limits };
    this.policy = t.ks.checker.repair;
    this.repairer = new Repairer(t.ks, t.cache, t.store);
    const m = t.ks.mapped;
    if (m) this.columns = m.columns.filter((c) => c !== m.keyColumn && c !== m.versionColumn);
    this.tally = { checked: {}, repaired: {}, skipped: 0, findings: [], repairErrors: 0 };
    if (this.limits.cdcLagMs !== undefined) this.lag = new WithinLag(this.limits.cdcLagMs);
  }

  async execute(): Promise<CheckOutcome> {
    const { ks, cache, store } = this.t;
    const batch = Math.max(1, this.limits.batch);
    if (this.options.full) {
      for await (const keys of storeKeyBatches(store, batch)) await this.batch(keys, false);
      for await (const keys of cacheKeyBatches(cache, ks.name, batch)) await this.batch(keys, true);
    } else {
      const n = this.options.sample ?? ks.checker.sample;
      const keys = await sampleKeys(cache, store, ks.name, n);
      for (let i = 0; i < keys.length; i += batch) await this.batch(keys.slice(i, i + batch), false);
    }
    const report = buildReport({
      keyspace: ks.name,
      mode: this.options.full ? "full" : "sample",
      repair: this.policy,
      startedAt: this.startedAt,
      tally: this.tally,
    });
    if (this.lag) report.consistent_within_lag = this.lag.report();
    return { report, checked: { ...this.tally.checked }, repaired: { ...this.tally.repaired } };
  }

  /** cacheSide: keys listed from the cache in a full sweep; those with a row were covered by the row pass. */
  private async batch(keys: string[], cacheSide: boolean): Promise<void> {
    if (keys.length === 0) return;
    await this.pace(keys.length);
    const readAt = Date.now();
    let first = await this.read(keys);
    if (cacheSide) first = new Map([...first].filter(([, s]) => s.row === null));
    const suspects: string[] = [];
    for (const [key, sides] of first) {
      const verdict = this.verdict(sides);
      this.lag?.first(key, sides, verdict, readAt);
      if (verdict === "skip") this.tally.skipped++;
      else if (verdict === "consistent") this.count("consistent");
      else suspects.push(key);
    }
    await this.lag?.settle(
      (k) => this.read(k),
      (s) => this.verdict(s),
    );
    if (suspects.length === 0) return;
    await sleep(this.limits.recheckDelayMs);
    const second = await this.read(suspects);
    for (const key of suspects) {
      const a = first.get(key)!;
      const b = second.get(key)!;
      const now = Date.now();
      if (moved(a, b, now)) {
        this.tally.skipped++;
        continue;
      }
      const verdict = this.verdict(b);
      if (verdict === "skip") {
        this.tally.skipped++;
        continue;
      }
      if (verdict === "consistent") {
        this.count("consistent");
        continue;
      }
      await this.settle(key, verdict, b);
    }
  }

  private async settle(key: string, kind: InconsistentKind, sides: Sides): Promise<void> {
    const entry = sides.entry as CacheEntry;
    let storeFloor: number | undefined;
    if (kind === "orphan") {
      // Did PostgreSQL ever hold this version? If not, in write-behind the cache holds a write it never got.
      storeFloor = await this.t.store.currentVersion(key);
      if (this.t.ks.strategy === "write-behind" && entry.version > storeFloor) kind = "missing_write";
    }
    this.count(kind);
    let repaired = false;
    try {
      repaired = await this.repairer.repair(this.policy, { key, kind, entry, row: sides.row, storeFloor });
    } catch (err) {
      this.tally.repairErrors++;
      this.t.log.warn({ key, kind, err: (err as Error).message }, "consistency repair failed");
    }
    if (repaired) this.tally.repaired[kind] = (this.tally.repaired[kind] ?? 0) + 1;
    const finding = {
      key,
      kind,
      cacheVersion: entry.version,
      storeVersion: sides.row?.version ?? null,
      repaired,
    };
    if (this.tally.findings.length < 100) this.tally.findings.push(finding);
    const level = kind === "missing_write" && !repaired ? "error" : "warn";
    this.t.log[level](
      { keyspace: this.t.ks.name, ...finding },
      kind === "missing_write"
        ? "the cache holds a write PostgreSQL does not have (a lost write-behind write?)"
        : "cache and PostgreSQL disagree",
    );
  }

  private verdict(sides: Sides): Verdict {
    const v = classify(sides, { now: Date.now(), columns: this.columns });
    if (this.t.pendingUnknown && (v === "missing_write" || v === "orphan")) return "skip";
    return v;
  }

  private count(kind: string): void {
    this.tally.checked[kind] = (this.tally.checked[kind] ?? 0) + 1;
  }

  private async read(keys: string[]): Promise<Map<string, Sides>> {
    const rows: Map<string, StoredRow> = await this.t.store.getMany(keys);
    // What Redis holds: near copies are copies of it
    const entries = await this.t.cache.getMany(this.t.ks.name, keys, { skipNear: true });
    const pending = (await this.t.pending?.(keys)) ?? new Map<string, number>();
    const out = new Map<string, Sides>();
    keys.forEach((key, i) => {
      out.set(key, { row: rows.get(key) ?? null, entry: entries[i] ?? null, pending: pending.get(key) });
    });
    return out;
  }

  /** Spreads the reads so that no more than keysPerSecond keys are compared per second. */
  private async pace(n: number): Promise<void> {
    const due = this.startedAt + (this.paced / this.limits.keysPerSecond) * 1000;
    this.paced += n;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
