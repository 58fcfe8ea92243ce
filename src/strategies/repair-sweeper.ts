/**
 * Applies the repair intents PostgreSQL holds (sidecache_cache_repairs: cache updates that failed after a
 * commit) to the cache, and decides whether this daemon may trust cache entries at all.
 *
 * The cache is not trusted from start-up, and again from the moment its connection drops or a call to it
 * fails, until a sweep that began after that moment has invalidated every intent and heard the cache
 * answer. Until then the synchronous strategies read PostgreSQL (X-Cache: MISS), so no entry an intent
 * still covers is served, whoever recorded it. A sweep runs at start (before the daemon listens), right
 * after the cache (re)connects, every `retryMs` while the cache is not trusted, and every `intervalMs`
 * otherwise (one indexed query when there is nothing to repair).
 */
import type { CacheAdapter, CacheEntry } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { RepairIntent, StoreAdapter } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";

/** Whether cache entries may be served now; read on every cache lookup, so it is a plain field. */
export interface CacheTrust {
  readonly trusted: boolean;
}

export interface RepairSweeperOptions {
  cache: CacheAdapter;
  store: StoreAdapter;
  /** the live keyspaces: intents of their tables are applied to each keyspace on the table */
  keyspaces: () => KeyspaceConfig[];
  telemetry: Telemetry;
  log: Logger;
  intervalMs?: number;
  retryMs?: number;
  batch?: number;
}

const DEFAULT_INTERVAL_MS = 1_000;
const DEFAULT_RETRY_MS = 250;
const DEFAULT_BATCH = 500;
/** A tombstone is kept at least this long (as BaseStrategy's), so a slow fill can not outlive it. */
const MIN_TOMBSTONE_TTL_MS = 60_000;

export class RepairSweeper implements CacheTrust {
  trusted = false;
  /** bumped whenever the cache is suspected; a sweep restores trust only if none happened since it began */
  private epoch = 0;
  private running?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private unsubscribe?: () => void;
  private readonly intervalMs: number;
  private readonly retryMs: number;
  private readonly batch: number;

  constructor(private readonly o: RepairSweeperOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.retryMs = o.retryMs ?? DEFAULT_RETRY_MS;
    this.batch = o.batch ?? DEFAULT_BATCH;
  }

  /** Listens to the cache's connection and runs the first sweep; resolves once it ended (trusted or not). */
  async start(): Promise<void> {
    this.unsubscribe = this.o.cache.onConnectionChange?.((state) => {
      if (state === "down") this.suspect();
      else this.wake();
    });
    await this.sweep();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The cache dropped or failed: its entries may predate writes whose cache update did not reach it. */
  suspect(): void {
    this.epoch++;
    if (!this.trusted) return;
    this.trusted = false;
    this.o.log.info("cache entries not trusted until the repair intents are applied");
    this.arm(this.retryMs);
  }

  /** Sweeps now (after the one under way, if any). */
  wake(): void {
    void this.sweep();
  }

  /** One sweep; concurrent calls share it, and a call during a sweep runs one more after it. */
  sweep(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    clearTimeout(this.timer);
    this.running = (async () => {
      do {
        this.again = false;
        await this.once();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
      this.arm(this.trusted ? this.intervalMs : this.retryMs);
    });
    return this.running;
  }

  private arm(ms: number): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.sweep(), ms);
    this.timer.unref();
  }

  private async once(): Promise<void> {
    if (this.stopped) return;
    const epoch = this.epoch;
    const byTable = new Map<string, KeyspaceConfig[]>();
    for (const ks of this.o.keyspaces()) {
      const list = byTable.get(ks.table) ?? [];
      list.push(ks);
      byTable.set(ks.table, list);
    }
    try {
      let after: RepairIntent | null = null;
      for (;;) {
        const intents = await this.o.store.pendingRepairs([...byTable.keys()], after, this.batch);
        await Promise.all(intents.map((i) => this.apply(i, byTable.get(i.table) ?? [])));
        if (intents.length < this.batch) break;
        after = intents[intents.length - 1]!;
      }
      // Also when there was nothing to repair: the cache must answer before its entries are served.
      await this.o.cache.ping();
    } catch (err) {
      if (!this.trusted) this.o.log.debug({ err: String(err) }, "repair sweep failed; retrying");
      else this.o.log.warn({ err: String(err) }, "repair sweep failed");
      return;
    }
    if (this.epoch === epoch && !this.trusted && !this.stopped) {
      this.trusted = true;
      this.o.log.info("cache entries trusted again: every repair intent is applied");
    }
  }

  /**
   * A tombstone at the intent's version in each keyspace on the table: it replaces any older entry and is
   * refused by one of that version or newer (the update that failed landed after all, or a later write).
   */
  private async apply(intent: RepairIntent, keyspaces: KeyspaceConfig[]): Promise<void> {
    const entry: CacheEntry = { kind: "tombstone", version: intent.version, freshUntil: 0 };
    for (const ks of keyspaces) {
      await this.o.cache.setIfNewer(ks.name, intent.key, entry, Math.max(ks.ttlMs, MIN_TOMBSTONE_TTL_MS));
    }
    if (await this.o.store.clearRepair(intent)) {
      for (const ks of keyspaces) {
        this.o.telemetry.emit({
          type: "cache_repair",
          keyspace: ks.name,
          outcome: "invalidated",
          staleSeconds: intent.ageSeconds,
        });
      }
    }
  }
}
