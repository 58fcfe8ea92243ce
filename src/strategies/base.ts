/**
 * What the strategies that write PostgreSQL synchronously share: the read path, the cache updates after a
 * commit (with background repair when the cache fails) and the translation of a batch into store ops.
 */
import { WRITE_MARKER_MIN_MS, type CacheEntry } from "../cache/adapter.js";
import { SidecacheError } from "../errors.js";
import { isCommitUnknown } from "../store/errors.js";
import type { WriteOp, WriteOrigin, WriteResult } from "../store/adapter.js";
import { nextVersion } from "../version.js";
import { CacheWriteBatch } from "./cache-batch.js";
import { ReadPath } from "./read-path.js";
import { CacheRepairs } from "./repairs.js";
import type {
  Conditions,
  DeleteAck,
  ManyWriteAck,
  ReadOptions,
  ReadResult,
  Strategy,
  StrategyContext,
  WriteAck,
} from "./strategy.js";

export abstract class BaseStrategy implements Strategy {
  abstract readonly name: string;
  protected readonly reads: ReadPath;
  protected readonly repairs: CacheRepairs;
  /** the cache writes of this keyspace's writes, one call per turn of the event loop */
  protected readonly cacheWrites: CacheWriteBatch;

  constructor(
    protected readonly ctx: StrategyContext,
    options: { refreshAhead?: boolean } = {},
  ) {
    this.repairs = new CacheRepairs(ctx.keyspace.name, ctx.telemetry, ctx.log);
    this.cacheWrites = new CacheWriteBatch(ctx.cache, ctx.keyspace.name);
    const trust = ctx.cacheTrust;
    this.reads = new ReadPath(
      ctx.keyspace,
      ctx.cache,
      ctx.telemetry,
      (key, request) => ctx.store.get(key, request),
      (keys, request) => ctx.store.getMany(keys, request),
      {
        refreshAhead: options.refreshAhead ?? false,
        trusted: trust ? () => trust.trusted : undefined,
        storeDown: trust ? () => trust.storeDown : undefined,
        repairing: (key) => this.repairs.has(key),
      },
    );
  }

  get(key: string, options?: ReadOptions): Promise<ReadResult> {
    return this.reads.get(key, options);
  }

  peek(key: string, options?: ReadOptions): ReadResult | undefined {
    return this.reads.peek(key, options);
  }

  getMany(keys: string[], options?: ReadOptions): Promise<Map<string, ReadResult>> {
    return this.reads.getMany(keys, options);
  }

  abstract put(key: string, value: string, conditions: Conditions, origin?: WriteOrigin): Promise<WriteAck>;
  abstract delete(key: string, conditions: Conditions, origin?: WriteOrigin): Promise<DeleteAck>;
  abstract putMany(items: Map<string, string>, origin?: WriteOrigin): Promise<ManyWriteAck>;

  async flush(): Promise<number> {
    return 0;
  }

  async start(): Promise<void> {}

  async stop(_deadlineMs: number): Promise<void> {
    this.repairs.stop();
  }

  /**
   * Writes to PostgreSQL (one statement, maybe shared with other writes: src/store/group-commit.ts). A
   * write whose outcome is unknown (a timeout, the connection lost while the statement ran) may have
   * committed: its keys' entries are invalidated before the error is answered, so the entry it would have
   * replaced does not outlive it.
   */
  protected async storeWrite(
    ops: WriteOp[],
    /** who asks, and whether it is one _mset: for the audit log */
    by: WriteBy,
    /** tombstones put in the cache before the write, by key (write-through strict) */
    pending?: Map<string, number>,
  ): Promise<WriteResult[]> {
    const minVersion = nextVersion();
    let results: WriteResult[];
    try {
      results = await this.ctx.store.write(ops, { minVersion, origin: by.origin, mset: by.mset });
    } catch (err) {
      if (outcomeUnknown(err)) this.invalidateUnknown(ops, pending);
      throw err;
    }
    this.ctx.telemetry.emit({ type: "store_write", keyspace: this.ctx.keyspace.name, n: ops.length });
    for (const r of results) this.reads.forget(r.key);
    return results;
  }

  /**
   * A write that may or may not have committed. Once it has settled (its statement ended here and the
   * key's lock is free: committed or rolled back), a tombstone at the key's version in PostgreSQL replaces
   * every older entry and leaves an entry of that version (the write's own, or the old one if it did not
   * commit) in place; a tombstone the write put before it went out goes when PostgreSQL is below it (it did
   * not commit). Done in the background, retried until PostgreSQL answers; meanwhile this daemon's reads of
   * the key skip the cache.
   */
  private invalidateUnknown(ops: WriteOp[], pending?: Map<string, number>): void {
    const ks = this.ctx.keyspace;
    const ttlMs = Math.max(ks.ttlMs, WRITE_MARKER_MIN_MS);
    for (const key of new Set(ops.map((o) => o.key))) {
      this.reads.forget(key);
      const settle = async () => {
        const version = await this.ctx.store.settledVersion(key);
        const mine = pending?.get(key);
        if (mine !== undefined && version < mine) {
          await this.ctx.cache.deleteIf(ks.name, key, { kind: "tombstone", version: mine });
        }
        const entry = { kind: "tombstone" as const, version, freshUntil: 0 };
        if (version > 0) await this.ctx.cache.setIfNewer(ks.name, key, entry, ttlMs);
      };
      this.repairs.schedule(key, settle, settle);
    }
  }

  /**
   * The entry a committed result leaves in the cache: the value, or an absent marker for a delete. Kept at
   * least WRITE_MARKER_MIN_MS whatever the TTLs (served only while fresh), so no fill that read the row
   * before the write outlives it and readers that find nothing know no write happened in that time.
   */
  protected entryFor(result: WriteResult, value: string | null): { entry: CacheEntry; ttlMs: number } {
    const ks = this.ctx.keyspace;
    const now = Date.now();
    if (result.deleted || value === null) {
      return {
        entry: { kind: "absent", version: result.version, freshUntil: now + ks.negativeTtlMs },
        ttlMs: Math.max(ks.negativeTtlMs, WRITE_MARKER_MIN_MS),
      };
    }
    return {
      entry: { kind: "value", version: result.version, value, freshUntil: now + ks.ttlMs },
      ttlMs: Math.max(ks.ttlMs + ks.staleGraceMs, WRITE_MARKER_MIN_MS),
    };
  }

  /** A tombstone at the committed version: reads miss, and no fill that began before the write can land. */
  protected tombstone(result: WriteResult): { entry: CacheEntry; ttlMs: number } {
    const ks = this.ctx.keyspace;
    return {
      entry: { kind: "tombstone", version: result.version, freshUntil: 0 },
      ttlMs: Math.max(ks.ttlMs, WRITE_MARKER_MIN_MS),
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
      await this.cacheWrites.set(key, update.entry, update.ttlMs);
    };
    try {
      await set();
      return;
    } catch {
      // counted and logged by the backend guard; repaired below
    }
    const version = update.entry.version;
    const ts = { kind: "tombstone" as const, version, freshUntil: 0 };
    let repaired!: () => void;
    const inCache = new Promise<void>((resolve) => (repaired = resolve));
    this.repairs.schedule(
      key,
      this.thenClear(key, version, set),
      // A tombstone replaces every older entry; what it leaves (this write's value, or a later write's
      // entry) is current, where a delete could remove a later write's entry and let an older fill in.
      this.thenClear(key, version, async () => {
        await this.ctx.cache.setIfNewer(
          this.ctx.keyspace.name,
          key,
          ts,
          Math.max(update.ttlMs, WRITE_MARKER_MIN_MS),
        );
      }),
      repaired,
    );
    await this.ctx.store.recordRepair(key, version);
    // Acknowledged once no daemon can serve the entry this write replaced: the repair reached the cache
    // (every daemon reads it there), or one trust lease passed (every daemon has swept since the intent
    // was recorded, and so hides the key, or stopped trusting its cache).
    if (this.ctx.cacheTrust) await Promise.race([inCache, this.ctx.cacheTrust.outlast()]);
  }

  /** A repair that, once done, forgets its intent (left to the sweeper when PostgreSQL does not answer). */
  protected thenClear(key: string, version: number, repair: () => Promise<void>): () => Promise<void> {
    return async () => {
      await repair();
      await this.ctx.store.clearRepair(key, version).catch(() => {});
    };
  }
}

/** Who asks for a write and whether it is one _mset (the audit log records both). */
export interface WriteBy {
  origin?: WriteOrigin;
  mset?: boolean;
}

export function conditionsOp(key: string, value: string | null, c: Conditions): WriteOp {
  return { key, value, ifMatch: c.ifMatch, ifNoneMatch: c.ifNoneMatch };
}

export function versionsOf(results: WriteResult[]): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  for (const r of results) out[r.key] = r.version;
  return out;
}

/**
 * A write that failed in a way that leaves its commit unknown: it may be in PostgreSQL. A timeout (the
 * call was abandoned; its transaction may go on and commit), or a connection lost while COMMIT was on
 * its way. Anything else failed before the commit or was refused by the server: nothing changed.
 */
export function outcomeUnknown(err: unknown): boolean {
  return (err instanceof SidecacheError && err.code === "timeout") || isCommitUnknown(err);
}
