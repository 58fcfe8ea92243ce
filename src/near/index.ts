/** Builds the near caches of a configuration: none when no keyspace has one (or the cache is in-process). */
import type { CacheAdapter } from "../cache/adapter.js";
import type { Config } from "../config/types.js";
import type { Logger } from "../log.js";
import type { Telemetry } from "../telemetry.js";
import { Coherence } from "./coherence.js";
import { NearCache } from "./near-cache.js";

export { NearCache } from "./near-cache.js";

export function createNearCache(
  config: Config,
  cache: CacheAdapter,
  telemetry: Telemetry,
  log: Logger,
): NearCache | undefined {
  const near = [...config.keyspaces.values()].flatMap((ks) => (ks.near ? [ks.near] : []));
  if (near.length === 0 || !config.cache.redis) return undefined;
  const coherent = near.filter((n) => n.mode === "coherent").map((n) => n.leaseMs);
  const bounded = near.filter((n) => n.mode === "bounded").map((n) => n.maxStalenessMs);
  // the coherence channel reaches the near cache built right after it
  const ref: { near?: NearCache } = {};
  const coherence = new Coherence({
    redis: config.cache.redis,
    prefix: config.cache.prefix,
    leaseMs: coherent.length > 0 ? Math.min(...coherent) : undefined,
    maxStalenessMs: bounded.length > 0 ? Math.min(...bounded) : undefined,
    timeoutMs: config.cache.timeoutMs,
    log,
    onInvalidate: (ks, key, version, sentAt) => ref.near?.dropped(ks, key, version, sentAt),
    onLapse: () => ref.near?.dropAll(),
  });
  const nearCache = new NearCache(cache, coherence, telemetry);
  ref.near = nearCache;
  nearCache.configure([...config.keyspaces.values()]);
  coherence.start();
  return nearCache;
}
