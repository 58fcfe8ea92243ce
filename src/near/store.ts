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

/**
 * What the LRU holds per key: the copy itself, handed out as it is on a hit (so one object per key, not a
 * copy inside a holder). An invalidation marker is a tombstone at the version it announces: never served,
 * and it refuses copies older than that version. Tombstones read from Redis are never kept, so every
 * tombstone here is a marker.
 */
type Held = CacheEntry;

/** A slot's bytes: its key, its value text and a fixed overhead for the objects around them. */
const OVERHEAD = 96;

/**
 * Built field by field, always in this order: a spread copy gets a hidden class of its own in V8
 * (measured: one per entry, about 200 bytes each), and markers and copies share one.
 */
function held(
  kind: CacheEntry["kind"],
  version: number,
  freshUntil: number,
  value: string | undefined,
): Held {
  return { kind, version, freshUntil, value, near: true };
}

/**
 * A copy of the text that owns its characters. A value decoded from a Redis reply is a slice of the reply's
 * whole text, which V8 keeps as a view holding that text alive: kept for long, it costs the reply plus the
 * view. A text that UTF-8 can not carry as it is (lone surrogates) is kept as it is.
 */
function ownText(text: string): string {
  const copy = Buffer.from(text, "utf8").toString("utf8");
  return copy === text ? copy : text;
}

export class NearStore {
  private readonly lru: LRUCache<string, Held>;
  private epochNo = 0;

  constructor(readonly config: NearCacheConfig) {
    this.lru = new LRUCache<string, Held>({
      max: config.maxEntries,
      maxSize: config.maxBytes,
      sizeCalculation: (held, key) => key.length * 2 + (held.value?.length ?? 0) * 2 + OVERHEAD,
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
    const entry = this.lru.get(key);
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
    // Marked once here, so a hit hands out the stored object as it is.
    const value = entry.value === undefined ? undefined : ownText(entry.value);
    this.lru.set(key, held(entry.kind, entry.version, entry.freshUntil, value), { ttl });
  }

  /** Drops the copy of the key and refuses copies older than `version` (0: drops, refuses nothing older). */
  invalidate(key: string, version: number): boolean {
    const old = this.lru.peek(key, { allowStale: true });
    const floor = Math.max(version, old?.version ?? 0);
    if (floor > 0) this.lru.set(key, held("tombstone", floor, 0, undefined), { ttl: this.config.ttlMs });
    else this.lru.delete(key);
    return old !== undefined && old.kind !== "tombstone";
  }

  /** Drops everything, and every copy already on its way. */
  clear(): void {
    this.epochNo++;
    this.lru.clear();
  }
}
