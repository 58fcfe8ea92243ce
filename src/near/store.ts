/**
 * One keyspace's near cache: entries copied from Redis into the daemon's memory, bounded by entries and by
 * bytes (LRU), never served past their own freshness nor past the near cache's ttl. Invalidations leave a
 * marker at the version they announce, so a copy read from Redis before the write (an older version)
 * can not land after it; `clear` (a lost invalidation channel, a lapsed lease, a new Redis incarnation)
 * bumps an epoch that every copy in flight must match.
 */
import { LRUCache } from "lru-cache";
import type { CacheEntry } from "../cache/adapter.js";
import type { NearCacheConfig } from "../config/types.js";

interface Slot {
  /** null: an invalidation marker (nothing to serve; copies below `version` refused) */
  entry: CacheEntry | null;
  version: number;
}

/** A slot's bytes: its key, its value text and a fixed overhead for the objects around them. */
const OVERHEAD = 96;

export class NearStore {
  private readonly lru: LRUCache<string, Slot>;
  private epochNo = 0;

  constructor(readonly config: NearCacheConfig) {
    this.lru = new LRUCache<string, Slot>({
      max: config.maxEntries,
      maxSize: config.maxBytes,
      sizeCalculation: (slot, key) => key.length * 2 + (slot.entry?.value?.length ?? 0) * 2 + OVERHEAD,
      ttl: config.ttlMs,
      ttlAutopurge: false,
      updateAgeOnGet: false,
    });
  }

  /** Captured before a copy is read from Redis; the copy lands only if no clear happened since. */
  get epoch(): number {
    return this.epochNo;
  }

  get size(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /** A copy that may be served now: fresh by its own clock. */
  get(key: string, now = Date.now()): CacheEntry | undefined {
    const slot = this.lru.get(key);
    const entry = slot?.entry;
    if (!entry || entry.kind === "tombstone" || entry.freshUntil <= now) return undefined;
    return entry;
  }

  /** Keeps a copy read from Redis unless a clear or an invalidation of a newer version came after the read. */
  put(key: string, entry: CacheEntry, epoch: number, now = Date.now()): void {
    if (epoch !== this.epochNo || entry.kind === "tombstone") return;
    const ttl = Math.min(this.config.ttlMs, entry.freshUntil - now);
    if (ttl <= 0) return;
    const old = this.lru.peek(key, { allowStale: true });
    if (old && old.version > entry.version) return;
    // Marked once here, so a hit hands out the stored object as it is. Built field by field: a spread
    // copy gets a hidden class of its own in V8 (measured: one per entry, about 200 bytes each).
    const copy: CacheEntry = {
      kind: entry.kind,
      version: entry.version,
      freshUntil: entry.freshUntil,
      value: entry.value,
      near: true,
    };
    this.lru.set(key, { entry: copy, version: entry.version }, { ttl });
  }

  /** Drops the copy of the key and refuses copies older than `version` (0: drops, refuses nothing older). */
  invalidate(key: string, version: number): boolean {
    const old = this.lru.peek(key, { allowStale: true });
    const floor = Math.max(version, old?.version ?? 0);
    if (floor > 0) this.lru.set(key, { entry: null, version: floor }, { ttl: this.config.ttlMs });
    else this.lru.delete(key);
    return old?.entry != null;
  }

  /** Drops everything, and every copy already on its way. */
  clear(): void {
    this.epochNo++;
    this.lru.clear();
  }
}
