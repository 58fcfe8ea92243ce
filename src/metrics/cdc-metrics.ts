/** The change data capture metrics, fed from telemetry events into the daemon's registry. */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { TelemetryEvent } from "../telemetry.js";

export class CdcMetrics {
  private readonly lag: Histogram;
  private readonly retained: Gauge;
  private readonly reader: Gauge;
  private readonly lost: Counter<"reason">;
  private readonly invalidated: Counter<"keyspace">;
  private readonly dropped: Counter<"keyspace" | "reason">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.lag = new Histogram({
      name: "sidecache_cdc_lag_seconds",
      help: "From a transaction's commit in PostgreSQL to its invalidations applied in the cache (PostgreSQL's clock against the daemon's).",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.retained = new Gauge({
      name: "sidecache_cdc_retained_wal_bytes",
      help: "WAL PostgreSQL keeps for the replication slot (from its restart_lsn to the current position).",
      registers,
    });
    this.reader = new Gauge({
      name: "sidecache_cdc_reader",
      help: "1 while this daemon reads the replication slot, 0 otherwise.",
      registers,
    });
    this.lost = new Counter({
      name: "sidecache_cdc_slot_lost_total",
      help: "Times the replication slot was found dropped or invalidated (every keyspace's entries were dropped).",
      labelNames: ["reason"],
      registers,
    });
    this.invalidated = new Counter({
      name: "sidecache_cdc_invalidations_total",
      help: "Keys invalidated by changes read from the replication slot.",
      labelNames: ["keyspace"],
      registers,
    });
    this.dropped = new Counter({
      name: "sidecache_cdc_keyspace_drops_total",
      help: "Times every entry of a keyspace was dropped by change data capture, by reason (truncate, slot_lost, ...).",
      labelNames: ["keyspace", "reason"],
      registers,
    });
    this.reader.set(0);
  }

  readonly onEvent = (e: TelemetryEvent): void => {
    switch (e.type) {
      case "cdc_lag":
        this.lag.observe(e.seconds);
        break;
      case "cdc_retained_wal":
        this.retained.set(e.bytes);
        break;
      case "cdc_reader":
        this.reader.set(e.active ? 1 : 0);
        break;
      case "cdc_slot_lost":
        this.lost.inc({ reason: e.reason });
        break;
      case "cdc_invalidated":
        this.invalidated.inc({ keyspace: e.keyspace }, e.n);
        break;
      case "cdc_dropped":
        this.dropped.inc({ keyspace: e.keyspace, reason: e.reason });
        break;
    }
  };
}
