/**
 * Builds the near caches of a configuration, in front of a Redis cache: also when no keyspace has one, so
 * that this daemon's writes reach other daemons' near caches (none when the cache is in-process).
 */
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
  if (!config.cache.redis) return undefined;
  const near = [...config.keyspaces.values()].flatMap((ks) => (ks.near ? [ks.near] : []));
  const coherent = near.filter((n) => n.mode === "coherent").map((n) => n.leaseMs);
  const bounded = near.filter((n) => n.mode === "bounded").map((n) => n.maxStalenessMs);
  const redis = config.cache.redis;
  // the coherence channel reaches the near cache built right after it
  const ref: { near?: NearCache } = {};
  const open = (leaseMs?: number, maxStalenessMs?: number) => {
    const coherence = new Coherence({
      redis,
      prefix: config.cache.prefix,
      leaseMs,
      maxStalenessMs,
      timeoutMs: config.cache.timeoutMs,
      log,
      onInvalidate: (ks, key, version, sentAt) => ref.near?.dropped(ks, key, version, sentAt),
      onLapse: () => ref.near?.dropAll(),
    });
    coherence.start();
    return coherence;
  };
  // A daemon without a near cache of its own opens the channel only once a write must be announced to
  // another daemon's (a rolling change of the configuration): it is a writer, never a member.
  const own =
    near.length > 0
      ? open(
          coherent.length > 0 ? Math.min(...coherent) : undefined,
          bounded.length > 0 ? Math.min(...bounded) : undefined,
        )
      : undefined;
  const nearCache = new NearCache(cache, own, () => open(), telemetry);
  ref.near = nearCache;
  nearCache.configure([...config.keyspaces.values()]);
  return nearCache;
}
