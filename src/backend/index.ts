/** Puts a BackendGuard around the cache and the store the daemon opened. */
import type { CacheAdapter } from "../cache/adapter.js";
import type { BreakerConfig, CacheConfig, StoreConfig } from "../config/types.js";
import { BREAKER_DEFAULTS } from "../config/defaults.js";
import type { Logger } from "../log.js";
import type { StoreAdapter } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";
import { BackendGuard } from "./guard.js";
import { GuardedCache } from "./guarded-cache.js";
import { GuardedStore } from "./guarded-store.js";

export { BackendGuard, BackendTimeoutError } from "./guard.js";
export { GuardedCache } from "./guarded-cache.js";
export { GuardedStore } from "./guarded-store.js";
export type { RequestContext } from "./request-context.js";

function breakerOptions(b: BreakerConfig | undefined): { threshold: number; cooldownMs: number } {
  const c = b ?? BREAKER_DEFAULTS;
  return { threshold: c.failures, cooldownMs: c.cooldownMs };
}

export function guardCache(
  cache: CacheAdapter,
  config: CacheConfig,
  telemetry: Telemetry,
  log: Logger,
): GuardedCache {
  const guard = new BackendGuard({
    backend: "cache",
    label: `the cache (${cache.kind})`,
    timeoutMs: config.timeoutMs,
    breaker: breakerOptions(config.breaker),
    telemetry,
    log,
    probe: () => cache.ping(),
    // ioredis times each command out itself; the in-process cache never waits
    selfTimed: true,
  });
  return new GuardedCache(cache, guard);
}

export function guardStore(
  store: StoreAdapter,
  config: StoreConfig,
  telemetry: Telemetry,
  log: Logger,
): GuardedStore {
  const guard = new BackendGuard({
    backend: "store",
    label: "PostgreSQL",
    timeoutMs: config.timeoutMs,
    breaker: breakerOptions(config.breaker),
    telemetry,
    log,
    probe: () => store.ping(),
  });
  return new GuardedStore(store, guard);
}
