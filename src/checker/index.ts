/** Builds a daemon's checker: its own connections where the backend allows, coordination, alerts. */
import type { CacheAdapter } from "../cache/adapter.js";
import { openRedis } from "../cache/connect.js";
import type { Config } from "../config/types.js";
import type { KeyspaceRegistry } from "../keyspaces.js";
import type { Logger } from "../log.js";
import type { StoreAdapter } from "../store/adapter.js";
import { createStore } from "../store/index.js";
import type { Telemetry } from "../telemetry.js";
import { Alerts, type AlertOptions } from "./alerts.js";
import { Checker } from "./checker.js";
import { LocalCoordination, RedisCoordination } from "./lock.js";
import type { CheckLimits } from "./run.js";
import type { TickSource } from "./scheduler.js";
import { CDC_LAG_MS } from "./within-lag.js";

export { Checker } from "./checker.js";
export type { CheckReport, CheckOptions } from "./types.js";

/** A checker reads through a small pool of its own, so a sweep never queues behind requests. */
const CHECKER_POOL = 2;

export interface CreateCheckerOptions {
  keyspaces: KeyspaceRegistry;
  cache: CacheAdapter;
  store: StoreAdapter;
  telemetry: Telemetry;
  log: Logger;
  limits?: Partial<CheckLimits>;
  alerts?: Partial<AlertOptions>;
  ticks?: TickSource;
}

export async function createChecker(config: Config, o: CreateCheckerOptions): Promise<Checker> {
  const log = o.log.child({ component: "checker" });
  const owned: (() => Promise<void>)[] = [];
  // The daemon's cache: through the backend guard, and through the near caches, whose copies a repair
  // must drop in every daemon.
  const cache = o.cache;
  let coordination;
  if (config.cache.redis) {
    // the checkers' locks and alert state, on a connection of their own
    const own = openRedis(config.cache.redis, {
      name: "sidecache-checker",
      timeoutMs: config.cache.timeoutMs,
    });
    own.on("error", () => {});
    owned.push(async () => {
      await own.quit().catch(() => {});
      own.disconnect(false);
    });
    coordination = new RedisCoordination(own, config.cache.prefix);
  } else {
    coordination = new LocalCoordination();
  }
  let store = o.store;
  if (o.store.kind === "postgres") {
    try {
      const own = await createStore({ ...config.store, poolSize: CHECKER_POOL }, log);
      owned.push(() => own.close());
      store = own;
    } catch (err) {
      await Promise.allSettled(owned.map((c) => c()));
      throw err;
    }
  }
  const alerts = new Alerts(config.alerts.webhooks, coordination, o.telemetry, log, o.alerts);
  return new Checker({
    keyspaces: o.keyspaces,
    cache,
    store,
    coordination,
    alerts,
    telemetry: o.telemetry,
    log,
    limits: config.store.cdc ? { cdcLagMs: CDC_LAG_MS, ...o.limits } : o.limits,
    ticks: o.ticks,
    close: async () => {
      await Promise.allSettled(owned.map((c) => c()));
    },
  });
}
