/** Picks the cache adapter: Redis (one server, Sentinel or Cluster) when `redis` is set, else from the URL. */
import type { CacheAdapter } from "./adapter.js";
import { MemoryCache } from "./memory.js";
import { RedisCache } from "./redis.js";
import type { CacheConfig } from "../config/types.js";
import type { Logger } from "../log.js";

export { MemoryCache } from "./memory.js";
export { RedisCache } from "./redis.js";
export type { CacheAdapter, CacheEntry, EntryKind } from "./adapter.js";

export function createCache(config: CacheConfig, log?: Logger): CacheAdapter {
  if (config.redis) return new RedisCache(config, log);
  const scheme = config.url.slice(0, config.url.indexOf(":") + 1).toLowerCase();
  if (scheme === "memory:") return new MemoryCache(config);
  if (scheme === "redis:" || scheme === "rediss:") return new RedisCache(config, log);
  throw new TypeError(
    `Unsupported cache URL ${JSON.stringify(config.url)}: use memory:, redis:// or rediss://.`,
  );
}
