/**
 * The consistency checker of a daemon: runs checks on demand (POST /v1/keyspaces/{ks}/check) and on each
 * keyspace's schedule, one at a time per keyspace; on a schedule tick only the daemon that claims the tick
 * (and the keyspace's run lease) runs it. Every finished check updates the keyspace's last report, the
 * metrics (through telemetry) and the alert state.
 */
import type { CacheAdapter } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import { UnknownKeyspaceError } from "../errors.js";
import type { KeyspaceRegistry } from "../keyspaces.js";
import type { Logger } from "../log.js";
import type { CheckRunner } from "../proxy/context.js";
import type { StoreAdapter, TableStore } from "../store/adapter.js";
import type { Strategy } from "../strategies/strategy.js";
import type { Telemetry } from "../telemetry.js";
import type { Alerts } from "./alerts.js";
import type { Coordination } from "./lock.js";
import { DEFAULT_LIMITS, runCheck, type CheckLimits } from "./run.js";
import { CheckScheduler, type TickSource } from "./scheduler.js";
import type { CheckOptions, CheckReport } from "./types.js";

/** How long a run's lease lasts without renewal (it is renewed while the run goes on). */
const RUN_LEASE_MS = 30_000;

export interface CheckerDeps {
  keyspaces: KeyspaceRegistry;
  /** the checker's own connections where the backend allows (Redis, a PostgreSQL pool) */
  cache: CacheAdapter;
  store: StoreAdapter;
  coordination: Coordination;
  alerts: Alerts;
  telemetry: Telemetry;
  log: Logger;
  limits?: Partial<CheckLimits>;
  ticks?: TickSource;
  /** closes what the checker opened for itself */
  close?: () => Promise<void>;
}

export class Checker implements CheckRunner {
  private readonly scheduler: CheckScheduler;
  private readonly tables = new Map<string, { signature: string; table: Promise<TableStore> }>();
  /** the run in progress per keyspace: runs of one keyspace never overlap in this daemon */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly last = new Map<string, CheckReport>();
  private readonly warned = new Set<string>();
  private stopped = false;

  constructor(private readonly d: CheckerDeps) {
    this.scheduler = new CheckScheduler(
      (ks, slot, interval) => this.tick(ks, slot, interval),
      d.log,
      d.ticks,
    );
  }

  start(): void {
    this.scheduler.sync(this.configs());
  }

  /** After the daemon replaced keyspaces: schedules follow, last reports carry over. */
  reload(): void {
    for (const ks of this.d.keyspaces.all()) {
      const report = this.last.get(ks.config.name);
      if (report && !ks.lastCheck) ks.lastCheck = report as unknown as Record<string, unknown>;
    }
    this.scheduler.sync(this.configs());
  }

  /** A check now (HTTP or command line); waits for a run of the same keyspace already going on. */
  async run(keyspace: string, options: CheckOptions = {}): Promise<Record<string, unknown>> {
    const report = await this.serialized(keyspace, () => this.check(keyspace, options));
    return report as unknown as Record<string, unknown>;
  }

  /** The last report of each keyspace checked by this daemon. */
  lastReport(keyspace: string): CheckReport | undefined {
    return this.last.get(keyspace);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.scheduler.stop();
    this.d.alerts.stop();
    await Promise.allSettled([...this.inFlight.values()]);
    await this.d.close?.();
  }

  private configs(): KeyspaceConfig[] {
    return this.d.keyspaces.all().map((k) => k.config);
  }

  private tick(keyspace: string, slot: Date, intervalMs: number): void {
    if (this.stopped) return;
    // A run still going on locally: this tick is not ours to start (no overlap, no pile-up).
    if (this.inFlight.has(keyspace)) {
      this.d.log.warn(
        { keyspace, slot: slot.toISOString() },
        "consistency check still running; tick skipped",
      );
      return;
    }
    const lease = Math.min(3_600_000, Math.max(5_000, intervalMs * 2));
    void this.serialized(keyspace, async () => {
      if (!(await this.d.coordination.claimTick(keyspace, slot.getTime(), lease))) return;
      const release = await this.d.coordination.acquireRun(keyspace, RUN_LEASE_MS);
      if (!release) {
        this.d.log.warn({ keyspace }, "consistency check still running in another daemon; tick skipped");
        return;
      }
      try {
        await this.check(keyspace, {});
      } finally {
        await release();
      }
    }).catch((err: unknown) => {
      this.d.log.error({ keyspace, err: (err as Error).message }, "scheduled consistency check failed");
    });
  }

  private async serialized<T>(keyspace: string, fn: () => Promise<T>): Promise<T> {
    while (this.inFlight.has(keyspace)) await this.inFlight.get(keyspace)!.catch(() => {});
    const p = fn();
    this.inFlight.set(keyspace, p);
    try {
      return await p;
    } finally {
      if (this.inFlight.get(keyspace) === p) this.inFlight.delete(keyspace);
    }
  }

  private async check(keyspace: string, options: CheckOptions): Promise<CheckReport> {
    const ks = this.d.keyspaces.get(keyspace);
    if (!ks) throw new UnknownKeyspaceError(keyspace);
    const strategy = ks.strategy;
    const pending = strategy.pendingVersions ? this.queued(strategy) : undefined;
    const pendingUnknown = !pending && ks.config.strategy === "write-behind";
    if (pendingUnknown && !this.warned.has(keyspace)) {
      // Without the queue's view a queued write looks lost: such keys are skipped, never reported.
      this.warned.add(keyspace);
      this.d.log.warn(
        { keyspace },
        "the write-behind strategy gives no pending versions; keys ahead of PostgreSQL are skipped",
      );
    }
    const { report, checked, repaired } = await runCheck(
      {
        ks: ks.config,
        cache: this.d.cache,
        store: await this.table(ks.config),
        pending,
        pendingUnknown,
        log: this.d.log.child({ keyspace, component: "checker" }),
        limits: this.d.limits,
      },
      options,
    );
    this.last.set(keyspace, report);
    const current = this.d.keyspaces.get(keyspace);
    if (current) current.lastCheck = report as unknown as Record<string, unknown>;
    this.d.telemetry.emit({
      type: "consistency_check",
      keyspace,
      checked,
      repaired,
      skipped: report.skipped,
      ratio: report.ratio,
      ratioUpper: report.ratio_upper_95,
      alertRatio: ks.config.checker.alertRatio,
      finishedAt: Date.now(),
      seconds: report.duration_ms / 1000,
    });
    try {
      await this.d.alerts.observe(report, ks.config.checker.alertRatio);
    } catch (err) {
      this.d.log.error({ keyspace, err: (err as Error).message }, "consistency alert state not updated");
    }
    return report;
  }

  /**
   * Writes still queued for PostgreSQL. A pending write older than every write in the queue (by more
   * than a margin for clock skew) has lost its queue entry: no flush will ever bring it to PostgreSQL,
   * so it does not count as queued. The queue's state is read before the pending writes, so a write
   * enqueued in between is newer than the cut-off.
   */
  private queued(strategy: Strategy): (keys: string[]) => Promise<Map<string, number>> {
    const margin = this.d.limits?.lostWriteMarginMs ?? DEFAULT_LIMITS.lostWriteMarginMs;
    return async (keys) => {
      const status = await strategy.queueStatus?.();
      const now = Date.now();
      const pending = await strategy.pendingVersions!(keys);
      if (!status) return pending;
      const oldestMs = status.depth > 0 ? now - status.oldestSeconds * 1000 : now;
      const cutoff = (oldestMs - margin) * 1000;
      for (const [key, version] of pending) if (version < cutoff) pending.delete(key);
      return pending;
    };
  }

  private table(config: KeyspaceConfig): Promise<TableStore> {
    const signature = JSON.stringify([config.table, config.mapped ?? null]);
    const known = this.tables.get(config.name);
    if (known && known.signature === signature) return known.table;
    const table = this.d.store.table({ table: config.table, mapped: config.mapped });
    table.catch(() => this.tables.delete(config.name));
    this.tables.set(config.name, { signature, table });
    return table;
  }
}
