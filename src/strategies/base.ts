/**
 * What the strategies that write PostgreSQL synchronously share: the read path, the cache updates after a
 * commit (with background repair when the cache fails) and the translation of a batch into store ops.
 */
import type { CacheEntry } from "../cache/adapter.js";
import type { WriteOp, WriteResult } from "../store/adapter.js";
import { nextVersion } from "../version.js";
import { ReadPath } from "./read-path.js";
import { CacheRepairs } from "./repairs.js";
import type {
  Conditions,
  DeleteAck,
  ManyWriteAck,
  ReadResult,
  Strategy,
  StrategyContext,
  WriteAck,
} from "./strategy.js";

export abstract class BaseStrategy implements Strategy {
  abstract readonly name: string;
  protected readonly reads: ReadPath;
  protected readonly repairs: CacheRepairs;

  constructor(
    protected readonly ctx: StrategyContext,
    options: { refreshAhead?: boolean } = {},
  ) {
    this.repairs = new CacheRepairs(ctx.keyspace.name, ctx.telemetry, ctx.log);
    const trust = ctx.cacheTrust ?? { trusted: true };
    this.reads = new ReadPath(
      ctx.keyspace,
      ctx.cache,
      ctx.telemetry,
      (key) => ctx.store.get(key),
      (keys) => ctx.store.getMany(keys),
      {
        refreshAhead: options.refreshAhead ?? false,
        bypass: (key) => !trust.trusted || this.repairs.has(key),
      },
    );
  }

  get(key: string): Promise<ReadResult> {
    return this.reads.get(key);
  }

  getMany(keys: string[]): Promise<Map<string, ReadResult>> {
    return this.reads.getMany(keys);
  }

  abstract put(key: string, value: string, conditions: Conditions): Promise<WriteAck>;
  abstract delete(key: string, conditions: Conditions): Promise<DeleteAck>;
  abstract putMany(items: Map<string, string>): Promise<ManyWriteAck>;

  async flush(): Promise<number> {
    return 0;
  }

  async start(): Promise<void> {}

  async stop(_deadlineMs: number): Promise<void> {
    this.repairs.stop();
  }

  /** Writes to PostgreSQL; the hook runs inside the transaction, before the commit. */
  protected async storeWrite(
    ops: WriteOp[],
    beforeCommit?: (results: WriteResult[]) => Promise<void>,
  ): Promise<WriteResult[]> {
    const results = await this.ctx.store.write(ops, { minVersion: nextVersion(), beforeCommit });
    this.ctx.telemetry.emit({ type: "store_write", keyspace: this.ctx.keyspace.name, n: ops.length });
    for (const r of results) this.reads.forget(r.key);
    return results;
  }

  /** The entry a committed result leaves in the cache: the value, or an absent marker for a delete. */
  protected entryFor(result: WriteResult, value: string | null): { entry: CacheEntry; ttlMs: number } {
    const ks = this.ctx.keyspace;
    const now = Date.now();
    if (result.deleted || value === null) {
      return {
        entry: { kind: "absent", version: result.version, freshUntil: now + ks.negativeTtlMs },
        ttlMs: ks.negativeTtlMs,
      };
    }
    return {
      entry: { kind: "value", version: result.version, value, freshUntil: now + ks.ttlMs },
      ttlMs: ks.ttlMs + ks.staleGraceMs,
    };
  }

  /** A tombstone at the committed version: reads miss, and no fill that began before the write can land. */
  protected tombstone(result: WriteResult): { entry: CacheEntry; ttlMs: number } {
    // Kept as long as a value would be, so a slow fill can not outlive it.
    const ks = this.ctx.keyspace;
    return {
      entry: { kind: "tombstone", version: result.version, freshUntil: 0 },
      ttlMs: Math.max(ks.ttlMs, 60_000),
    };
  }

  /**
   * Puts the entry in the cache after a commit. When the cache fails, the repair intent is recorded in
   * PostgreSQL before the write is acknowledged (if that fails too, the request fails: committed, not
   * acknowledged), so every daemon's RepairSweeper applies it even if this one dies; meanwhile reads of the
   * key here bypass the cache while the update is retried in the background, and it is invalidated if
   * retries run out.
   */
  protected async afterCommit(key: string, update: { entry: CacheEntry; ttlMs: number }): Promise<void> {
    const set = async () => {
      await this.ctx.cache.setIfNewer(this.ctx.keyspace.name, key, update.entry, update.ttlMs);
    };
    try {
      await set();
      return;
    } catch {
      // counted and logged by the backend guard; repaired below
    }
    const version = update.entry.version;
    const ts = { kind: "tombstone" as const, version, freshUntil: 0 };
    this.repairs.schedule(
      key,
      this.thenClear(key, version, set),
      // A tombstone replaces every older entry; what it leaves (this write's value, or a later write's
      // entry) is current, where a delete could remove a later write's entry and let an older fill in.
      this.thenClear(key, version, async () => {
        await this.ctx.cache.setIfNewer(this.ctx.keyspace.name, key, ts, Math.max(update.ttlMs, 60_000));
      }),
    );
    await this.ctx.store.recordRepair(key, version);
  }

  /** A repair that, once done, forgets its intent (left to the sweeper when PostgreSQL does not answer). */
  protected thenClear(key: string, version: number, repair: () => Promise<void>): () => Promise<void> {
    return async () => {
      await repair();
      await this.ctx.store.clearRepair(key, version).catch(() => {});
    };
  }
}

export function conditionsOp(key: string, value: string | null, c: Conditions): WriteOp {
  return { key, value, ifMatch: c.ifMatch, ifNoneMatch: c.ifNoneMatch };
}

export function versionsOf(results: WriteResult[]): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  for (const r of results) out[r.key] = r.version;
  return out;
}
