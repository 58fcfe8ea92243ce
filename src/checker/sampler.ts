/**
 * Which keys a run looks at. A sample draws from both sides: PostgreSQL's rows find stale entries,
 * the cache's keys find orphans and lost write-behind writes (keys PostgreSQL does not have). A full
 * sweep walks every row in key order, then every cached key PostgreSQL does not have.
 */
import type { CacheAdapter } from "../cache/adapter.js";
import { RedisCache } from "../cache/redis.js";
import type { TableStore } from "../store/adapter.js";

/** Up to n distinct keys, alternating between the two sides so neither crowds the other out. */
export async function sampleKeys(
  cache: CacheAdapter,
  store: TableStore,
  keyspace: string,
  n: number,
): Promise<string[]> {
  const [fromStore, fromCache] = await Promise.all([store.sampleKeys(n), cache.sampleKeys(keyspace, n)]);
  const out = new Set<string>();
  for (let i = 0; out.size < n && (i < fromStore.length || i < fromCache.length); i++) {
    const c = fromCache[i];
    if (c !== undefined) out.add(c);
    const s = fromStore[i];
    if (s !== undefined && out.size < n) out.add(s);
  }
  return [...out];
}

/** Every row's key, batch by batch, in key order. */
export async function* storeKeyBatches(store: TableStore, batch: number): AsyncGenerator<string[]> {
  let after: string | null = null;
  for (;;) {
    const keys = await store.scanKeys(after, batch);
    if (keys.length === 0) return;
    yield keys;
    if (keys.length < batch) return;
    after = keys[keys.length - 1]!;
  }
}

/** Every cached key of the keyspace, batch by batch (a key may come twice while Redis resizes). */
export async function* cacheKeyBatches(
  cache: CacheAdapter,
  keyspace: string,
  batch: number,
): AsyncGenerator<string[]> {
  if (cache instanceof RedisCache) {
    yield* cache.keyBatches(keyspace, batch);
    return;
  }
  // The embedded cache is in this process and bounded: all of its keys at once is cheap.
  const all = await cache.sampleKeys(keyspace, Number.MAX_SAFE_INTEGER);
  for (let i = 0; i < all.length; i += batch) yield all.slice(i, i + batch);
}
