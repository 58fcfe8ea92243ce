/**
 * Whether this daemon may serve cache entries, and the sweeps that earn it: the trust authority.
 *
 * A write whose cache update failed after its commit leaves a repair intent in PostgreSQL
 * (sidecache_cache_repairs) before it is acknowledged. Trust is a lease: a sweep that reads every intent,
 * applies it to the cache (a tombstone at its version) and hears the cache answer (its incarnation checked
 * too) makes the cache trusted for `leaseMs` from the moment the sweep began. Sweeps run every
 * `intervalMs` (a third of the lease), so a healthy daemon never lapses; one that can not reach
 * PostgreSQL or Redis, or that was frozen, lapses within the lease and reads PostgreSQL until a sweep
 * succeeds again. A writer that recorded an intent waits one lease (`outlast`) before acknowledging: by
 * then every daemon has either swept after the intent (and hides the key) or stopped trusting its cache,
 * whoever it is and whether or not it saw the cache fail. One failed cache call costs nothing beyond its
 * key (CacheRepairs); a dropped connection costs nothing: a reconnect to another server is caught by the
 * incarnation check.
 */
import type { CacheAdapter, CacheEntry } from "../cache/adapter.js";
import { WRITE_MARKER_MIN_MS } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { RepairIntent, StoreAdapter } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";

export interface CacheTrustOptions {
  cache: CacheAdapter;
  store: StoreAdapter;
  /** the live keyspaces: intents of their tables are applied to each keyspace on the table */
  keyspaces: () => KeyspaceConfig[];
  telemetry: Telemetry;
  log: Logger;
  /** how long a successful sweep makes the cache trusted, from the moment it began */
  leaseMs?: number;
  /** how often to sweep while trusted (default a third of the lease) */
  intervalMs?: number;
  /** how often to sweep while not trusted */
  retryMs?: number;
  batch?: number;
}

const DEFAULT_LEASE_MS = 1_500;
const DEFAULT_RETRY_MS = 250;
const DEFAULT_BATCH = 500;

export class CacheTrust {
  /** performance.now() until which entries may be served */
  private until = 0;
  private everTrusted = false;
  /** the last sweep failed because PostgreSQL did not answer */
  private storeFailing = false;
  /** performance.now() when the sweep under way asked PostgreSQL for the intents, while it waits */
  private storeAskedAt?: number;
  private running?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private unsubscribe?: () => void;
  readonly leaseMs: number;
  private readonly intervalMs: number;
  private readonly retryMs: number;
  private readonly batch: number;

  constructor(private readonly o: CacheTrustOptions) {
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.intervalMs = o.intervalMs ?? Math.max(1, Math.floor(this.leaseMs / 3));
    this.retryMs = Math.min(o.retryMs ?? DEFAULT_RETRY_MS, this.intervalMs);
    this.batch = o.batch ?? DEFAULT_BATCH;
  }

  /** Whether cache entries may be served now. */
  get trusted(): boolean {
    return performance.now() < this.until;
  }

  /**
   * Whether the cache is not trusted because PostgreSQL does not answer: the last sweep failed on it, or
   * the one under way has waited for it longer than half a lease (a hung server).
   */
  get storeDown(): boolean {
    if (this.trusted) return false;
    if (this.storeFailing) return true;
    return this.storeAskedAt !== undefined && performance.now() - this.storeAskedAt > this.leaseMs / 2;
  }

  /**
   * Resolves once every daemon that trusted its cache when this was called has either swept again (and
   * so saw every intent recorded before the call) or stopped trusting: one lease.
   */
  outlast(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.leaseMs).unref());
  }

  /** Listens to the cache's connection and runs the first sweep; resolves once it ended (trusted or not). */
  async start(): Promise<void> {
    this.unsubscribe = this.o.cache.onConnectionChange?.((state) => {
      if (state === "up") this.wake();
    });
    await this.sweep();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    this.timer = undefined;
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
    const began = performance.now();
    const byTable = new Map<string, KeyspaceConfig[]>();
    for (const ks of this.o.keyspaces()) {
      const list = byTable.get(ks.table) ?? [];
      list.push(ks);
      byTable.set(ks.table, list);
    }
    let step: "store" | "cache" = "store";
    try {
      let after: RepairIntent | null = null;
      for (;;) {
        this.storeAskedAt = performance.now();
        const intents = await this.o.store.pendingRepairs([...byTable.keys()], after, this.batch);
        this.storeAskedAt = undefined;
        await Promise.all(intents.map((i) => this.apply(i, byTable.get(i.table) ?? [])));
        if (intents.length < this.batch) break;
        after = intents[intents.length - 1]!;
      }
      step = "cache";
      // Also when there was nothing to repair: the cache must answer before its entries are served.
      await this.o.cache.ping();
    } catch (err) {
      this.storeAskedAt = undefined;
      // applying an intent writes to the cache: only a failed read of the intents blames PostgreSQL
      this.storeFailing = step === "store" && !isCacheError(err);
      if (!this.trusted) this.o.log.debug({ err: String(err) }, "repair sweep failed; retrying");
      else this.o.log.warn({ err: String(err) }, "repair sweep failed; cache trusted until the lease ends");
      return;
    }
    this.storeFailing = false;
    if (this.stopped) return;
    const wasTrusted = this.trusted;
    this.until = Math.max(this.until, began + this.leaseMs);
    if (!wasTrusted && this.trusted) {
      if (this.everTrusted) this.o.log.info("cache entries trusted again: every repair intent is applied");
      this.everTrusted = true;
    }
  }

  /**
   * A tombstone at the intent's version in each keyspace on the table: it replaces any older entry and is
   * refused by one of that version or newer (the update that failed landed after all, or a later write).
   */
  private async apply(intent: RepairIntent, keyspaces: KeyspaceConfig[]): Promise<void> {
    const entry: CacheEntry = { kind: "tombstone", version: intent.version, freshUntil: 0 };
    for (const ks of keyspaces) {
      await this.o.cache.setIfNewer(ks.name, intent.key, entry, Math.max(ks.ttlMs, WRITE_MARKER_MIN_MS));
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

function isCacheError(err: unknown): boolean {
  return (err as { backend?: unknown } | null)?.backend === "cache";
}
