/**
 * `sidecache check`: one consistency run per keyspace (or the one named) from the command line, against
 * the configured cache and store, with each keyspace's repair policy. Prints the reports as JSON and
 * exits 0 when every keyspace is consistent, 1 when one is not (or a check failed). Sends no alerts:
 * the daemons do that.
 */
import { createCache } from "../cache/index.js";
import type { Config } from "../config/types.js";
import { KeyspaceRegistry } from "../keyspaces.js";
import { createLogger } from "../log.js";
import { createStore } from "../store/index.js";
import { createStrategy } from "../strategies/index.js";
import type { Strategy } from "../strategies/strategy.js";
import { noTelemetry } from "../telemetry.js";
import { Alerts } from "./alerts.js";
import { Checker } from "./checker.js";
import { CDC_LAG_MS } from "./within-lag.js";
import { LocalCoordination } from "./lock.js";
import type { CheckReport } from "./types.js";

export async function runCheckCommand(
  config: Config,
  options: { keyspace?: string; full: boolean },
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  if (options.keyspace !== undefined && !config.keyspaces.has(options.keyspace)) {
    process.stderr.write(
      `sidecache check: no keyspace named ${JSON.stringify(options.keyspace)} (configured: ${[...config.keyspaces.keys()].join(", ")})\n`,
    );
    return 1;
  }
  // Logs go to stderr so that stdout holds only the reports.
  const log = createLogger(config.log.level === "info" ? "warn" : config.log.level);
  const store = await createStore(config.store, log);
  const cache = createCache(config.cache, log);
  const keyspaces = new KeyspaceRegistry();
  const strategies: Strategy[] = [];
  const names = options.keyspace !== undefined ? [options.keyspace] : [...config.keyspaces.keys()];
  const coordination = new LocalCoordination();
  const checker = new Checker({
    keyspaces,
    cache,
    store,
    coordination,
    alerts: new Alerts([], coordination, noTelemetry, log),
    telemetry: noTelemetry,
    log,
    limits: config.store.cdc ? { cdcLagMs: CDC_LAG_MS } : undefined,
  });
  const reports: CheckReport[] = [];
  let failed = false;
  try {
    for (const name of names) {
      const ks = config.keyspaces.get(name)!;
      // The strategy is built, not started: the checker asks it only which writes are queued.
      const table = await store.table({ table: ks.table, mapped: ks.mapped });
      const strategy = createStrategy({
        keyspace: ks,
        cache,
        store: table,
        telemetry: noTelemetry,
        log,
        redis: config.cache.redis,
        cachePrefix: config.cache.prefix,
      });
      strategies.push(strategy);
      keyspaces.set({ config: ks, strategy });
      try {
        reports.push((await checker.run(name, { full: options.full })) as unknown as CheckReport);
      } catch (err) {
        failed = true;
        process.stderr.write(
          `sidecache check: ${name}: ${err instanceof Error ? err.message : String(err)}\n`,
        );
      }
    }
  } finally {
    await Promise.allSettled(strategies.map((s) => s.stop(0)));
    await checker.stop();
    await Promise.allSettled([cache.close(), store.close()]);
  }
  out(
    `${JSON.stringify(reports.length === 1 && options.keyspace !== undefined ? reports[0] : reports, null, 2)}\n`,
  );
  return failed || reports.some((r) => r.inconsistent > 0) ? 1 : 0;
}
