/**
 * The embedded in-process cache (`memory:`): one LRU bounded by CacheConfig.maxEntries with a TTL per
 * entry, and the same rules as the Redis adapter. Each keyspace keeps an index of its keys so that
 * sampleKeys can pick at random without walking the whole cache.
 */
import { LRUCache } from "lru-cache";
import type { CacheAdapter, CacheEntry, CacheWrite } from "./adapter.js";
import { assertEntry } from "./codec.js";
import type { CacheConfig } from "../config/types.js";

interface Slot {
  keyspace: string;
  key: string;
  entry: CacheEntry;
}

/** Keys with O(1) add, remove and random pick. */
class KeyIndex {
  private readonly keys: string[] = [];
  private readonly pos = new Map<string, number>();

  get size(): number {
    return this.keys.length;
  }
  add(key: string): void {
    if (this.pos.has(key)) return;
    this.pos.set(key, this.keys.length);
    this.keys.push(key);
  }
  remove(key: string): void {
    const i = this.pos.get(key);
    if (i === undefined) return;
    const last = this.keys.pop() as string;
    this.pos.delete(key);
    if (i < this.keys.length) {
      this.keys[i] = last;
      this.pos.set(last, i);
    }
  }
  /** Every key, as a copy. */
  all(): string[] {
    return [...this.keys];
  }
  /** Up to n distinct keys, in random order. */
  pick(n: number): string[] {
    const size = this.keys.length;
    if (n * 2 >= size) {
      const all = [...this.keys];
      for (let i = all.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [all[i], all[j]] = [all[j] as string, all[i] as string];
      }
      return all.slice(0, n);
    }
    const chosen = new Set<string>();
    while (chosen.size < n) chosen.add(this.keys[Math.floor(Math.random() * size)] as string);
    return [...chosen];
  }
}

export class MemoryCache implements CacheAdapter {
  readonly kind = "memory";
  private readonly lru: LRUCache<string, Slot>;
  private readonly indexes = new Map<string, KeyIndex>();

  constructor(config: Pick<CacheConfig, "maxEntries">) {
    this.lru = new LRUCache<string, Slot>({
      max: Math.max(1, Math.floor(config.maxEntries)),
      // ttl tracking on, every set gives its own
      ttl: 60_000,
      ttlResolution: 1,
      dispose: (slot, _k, reason) => {
        if (reason !== "set") this.unindex(slot);
      },
    });
  }

  async get(keyspace: string, key: string): Promise<CacheEntry | null> {
    const slot = this.lru.get(lruKey(keyspace, key));
    return slot ? { ...slot.entry } : null;
  }

  async getMany(keyspace: string, keys: string[]): Promise<(CacheEntry | null)[]> {
    return keys.map((key) => {
      const slot = this.lru.get(lruKey(keyspace, key));
      return slot ? { ...slot.entry } : null;
    });
  }

  generation(): number {
    return 0;
  }

  async setIfNewer(keyspace: string, key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    assertEntry(entry);
    const k = lruKey(keyspace, key);
    const cached = this.lru.get(k)?.entry;
    if (cached) {
      const taken =
        entry.version > cached.version ||
        (cached.kind === "tombstone" && entry.version >= cached.version) ||
        (cached.kind === "value" && entry.kind === "value" && entry.version === cached.version);
      if (!taken) return false;
    }
    const stored: CacheEntry =
      entry.kind === "value"
        ? { kind: entry.kind, version: entry.version, freshUntil: entry.freshUntil, value: entry.value }
        : { kind: entry.kind, version: entry.version, freshUntil: entry.freshUntil };
    this.lru.set(k, { keyspace, key, entry: stored }, { ttl: Math.max(1, Math.ceil(ttlMs)) });
    let index = this.indexes.get(keyspace);
    if (!index) this.indexes.set(keyspace, (index = new KeyIndex()));
    index.add(key);
    return true;
  }

  async setManyIfNewer(keyspace: string, items: readonly CacheWrite[]): Promise<boolean[]> {
    const out: boolean[] = [];
    for (const it of items) out.push(await this.setIfNewer(keyspace, it.key, it.entry, it.ttlMs));
    return out;
  }

  async delete(keyspace: string, key: string): Promise<void> {
    this.lru.delete(lruKey(keyspace, key));
  }

  async deleteIf(
    keyspace: string,
    key: string,
    observed: Pick<CacheEntry, "kind" | "version">,
  ): Promise<boolean> {
    const k = lruKey(keyspace, key);
    const cached = this.lru.get(k)?.entry;
    if (!cached || cached.kind !== observed.kind || cached.version !== observed.version) return false;
    this.lru.delete(k);
    return true;
  }

  async deleteKeyspace(keyspace: string): Promise<number> {
    const keys = this.indexes.get(keyspace)?.all() ?? [];
    let removed = 0;
    for (const key of keys) if (this.lru.delete(lruKey(keyspace, key))) removed++;
    return removed;
  }

  async sampleKeys(keyspace: string, n: number): Promise<string[]> {
    const want = Math.floor(n);
    if (!(want > 0)) return [];
    // Expired entries stay until touched; drop them (and so unindex them) before picking.
    this.lru.purgeStale();
    const index = this.indexes.get(keyspace);
    if (!index) return [];
    return index.pick(want);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.lru.clear();
    this.indexes.clear();
  }

  private unindex(slot: Slot): void {
    const index = this.indexes.get(slot.keyspace);
    if (!index) return;
    index.remove(slot.key);
    if (index.size === 0) this.indexes.delete(slot.keyspace);
  }
}

function lruKey(keyspace: string, key: string): string {
  return `${keyspace}\u0000${key}`;
}
