/**
 * The core reports what happens as events; metrics (src/metrics) and logs subscribe. Nothing in the
 * core imports prom-client.
 */
import type { StrategyName } from "./config/types.js";
import type { Backend } from "./errors.js";

export type TelemetryEvent =
  | {
      /** a keyspace was built (start-up or reload): its series are exported at 0 from now on */
      type: "keyspace_started";
      keyspace: string;
      strategy: StrategyName;
      checkerEnabled: boolean;
      alertRatio: number;
      at: number;
      /** the front ends requests come in by ("http", and "resp" with server.resp); absent: http only */
      protocols?: ("http" | "resp")[];
    }
  | {
      type: "cache_hit" | "cache_miss" | "cache_stale" | "coalesced" | "refresh_ahead";
      keyspace: string;
      n?: number;
    }
  | { type: "store_read" | "store_write"; keyspace: string; n?: number; statements?: number }
  | { type: "backend_error"; backend: Backend; code: string }
  | { type: "breaker"; backend: Backend; state: "closed" | "half-open" | "open" }
  | {
      type: "cache_repair";
      keyspace: string;
      outcome: "repaired" | "invalidated" | "failed";
      staleSeconds: number;
    }
  | { type: "wb_flush"; keyspace: string; writes: number; statements: number; seconds: number }
  | { type: "wb_dead_letter"; keyspace: string; key: string; reason: string }
  | { type: "wb_superseded"; keyspace: string }
  | { type: "near_hit" | "near_miss"; keyspace: string; n?: number }
  | { type: "near_invalidation"; keyspace: string; seconds: number }
  | {
      /** one consistency check finished; counts by kind (consistent, stale, orphan, missing_write, mismatch) */
      type: "consistency_check";
      keyspace: string;
      checked: Record<string, number>;
      repaired: Record<string, number>;
      skipped: number;
      ratio: number;
      ratioUpper: number;
      /** the keyspace's alert_ratio, exported so alerting rules can compare against it */
      alertRatio: number;
      finishedAt: number;
      seconds: number;
    }
  | { type: "consistency_alert"; keyspace: string; state: "firing" | "resolved"; outcome: "sent" | "failed" }
  /** change data capture (src/cdc): one committed transaction applied, commit to invalidation */
  | { type: "cdc_lag"; seconds: number }
  | { type: "cdc_invalidated"; keyspace: string; n: number }
  | { type: "cdc_dropped"; keyspace: string; reason: string }
  | { type: "cdc_retained_wal"; bytes: number }
  | { type: "cdc_slot_lost"; reason: "dropped" | "invalidated" }
  /** this daemon took (true) or gave up (false) the reading of the slot */
  | { type: "cdc_reader"; active: boolean };

export interface Telemetry {
  emit(event: TelemetryEvent): void;
}

export class TelemetryHub implements Telemetry {
  private readonly sinks: ((e: TelemetryEvent) => void)[] = [];
  subscribe(sink: (e: TelemetryEvent) => void): void {
    this.sinks.push(sink);
  }
  emit(event: TelemetryEvent): void {
    for (const sink of this.sinks) sink(event);
  }
}

export const noTelemetry: Telemetry = { emit() {} };
