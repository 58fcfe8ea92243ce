/**
 * Prometheus metrics (docs/protocol.md), fed from telemetry events and request observations. A registry
 * per daemon, so tests can run several in one process. Labels are keyspaces, never keys.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { DeferredCounts, type Owed } from "./deferred.js";
import { DurationHistogram, type DurationSeries } from "./durations.js";
import type { Op, Protocol, RequestObserver } from "../proxy/context.js";
import type { TelemetryEvent } from "../telemetry.js";
import {
  ALERT_OUTCOMES,
  ALERT_STATES,
  BACKEND_ERROR_CODES,
  CHECK_KINDS,
  INCONSISTENT_KINDS,
  REPAIR_OUTCOMES,
  requestSeries,
} from "./initial-series.js";

const BREAKER_LEVEL = { closed: 0, "half-open": 1, open: 2 } as const;

export class Metrics implements RequestObserver {
  readonly registry = new Registry();
  private readonly hits = new Map<string, { hit: number; miss: number }>();
  /** keyspaces with a finished check, and write-behind keyspaces whose queue gauges exist */
  private readonly checked = new Set<string>();
  private readonly queues = new Set<string>();

  private readonly requestCounts = new DeferredCounts<"keyspace" | "op" | "status" | "protocol">();
  private readonly requests = new Counter({
    name: "sidecache_requests_total",
    help: "Requests answered, by keyspace, operation, HTTP status (over RESP: the status of the same outcome over HTTP) and protocol (http, resp).",
    labelNames: ["keyspace", "op", "status", "protocol"],
    registers: [this.registry],
    collect: () => this.requestCounts.flush(),
  });
  private readonly duration = new DurationHistogram(
    "sidecache_request_duration_seconds",
    "Time from request to answer, in seconds, by keyspace, operation and protocol (http, resp).",
    ["keyspace", "op", "protocol"],
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    this.registry,
  );
  private readonly hitCounts = new DeferredCounts<"keyspace">();
  private readonly cacheHits = this.counter(
    "sidecache_cache_hits_total",
    "Reads answered from the cache.",
    () => this.hitCounts.flush(),
  );
  private readonly cacheMisses = this.counter(
    "sidecache_cache_misses_total",
    "Reads that went to PostgreSQL.",
  );
  private readonly cacheStale = this.counter(
    "sidecache_cache_stale_total",
    "Reads answered with an expired entry because PostgreSQL failed.",
  );
  private readonly coalesced = this.counter(
    "sidecache_coalesced_waiters_total",
    "Reads that waited for a load already in flight instead of querying PostgreSQL.",
  );
  private readonly refreshes = this.counter(
    "sidecache_refresh_ahead_total",
    "Background refreshes of entries close to expiry (read-through).",
  );
  private readonly storeReads = this.counter("sidecache_store_reads_total", "Keys read from PostgreSQL.");
  private readonly storeWrites = this.counter("sidecache_store_writes_total", "Keys written to PostgreSQL.");
  private readonly storeStatements = this.counter(
    "sidecache_store_write_statements_total",
    "Data statements sent to PostgreSQL by write-behind flushes: one per batch, each in a transaction of its own with a key lock (4 statements on the wire).",
  );
  private readonly backendErrors = new Counter({
    name: "sidecache_backend_errors_total",
    help: "Failed calls to the cache or the store, by error code.",
    labelNames: ["backend", "code"],
    registers: [this.registry],
  });
  private readonly breakerState = new Gauge({
    name: "sidecache_breaker_state",
    help: "Circuit breaker of each backend: 0 closed, 1 half-open (probing), 2 open (calls refused).",
    labelNames: ["backend"],
    registers: [this.registry],
  });
  private readonly repairs = new Counter({
    name: "sidecache_cache_repairs_total",
    help: "Cache updates retried in the background after a commit, by outcome.",
    labelNames: ["keyspace", "outcome"],
    registers: [this.registry],
  });
  private readonly staleWindow = new Histogram({
    name: "sidecache_cache_stale_window_seconds",
    help: "How long a cache entry stayed behind PostgreSQL before its background repair finished.",
    labelNames: ["keyspace"],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  private readonly deadLetterEvents = this.counter(
    "sidecache_writebehind_dead_lettered_total",
    "Write-behind writes moved to the dead-letter stream.",
  );
  private readonly nearHitCounts = new DeferredCounts<"keyspace">();
  private readonly nearHits = this.counter(
    "sidecache_near_cache_hits_total",
    "Reads answered from the daemon's near cache.",
    () => this.nearHitCounts.flush(),
  );
  private readonly nearMisses = this.counter(
    "sidecache_near_cache_misses_total",
    "Reads of a near-cached keyspace that went on to Redis.",
  );
  private readonly nearInvalidations = this.counter(
    "sidecache_near_cache_invalidations_total",
    "Near copies dropped because another daemon announced a change.",
  );
  private readonly nearInvalidationSeconds = new Histogram({
    name: "sidecache_near_cache_invalidation_seconds",
    help: "From a write's announcement to the drop of the copy at another daemon (clocks of two machines).",
    labelNames: ["keyspace"],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly nearEntries = this.gauge("sidecache_near_cache_entries", "Entries in the daemon's near cache.");
  readonly nearBytes = this.gauge(
    "sidecache_near_cache_bytes",
    "Bytes the near cache's entries take, estimated.",
  );
  private readonly superseded = this.counter(
    "sidecache_writebehind_superseded_total",
    "Write-behind writes that found PostgreSQL already holding a newer version written by someone else (dead-lettered).",
  );
  private readonly consistencyChecked = this.byKind(
    "sidecache_consistency_checked_total",
    "Keys compared by the consistency checker, by the kind they were found to be (consistent included).",
  );
  private readonly consistencyInconsistent = this.byKind(
    "sidecache_consistency_inconsistent_total",
    "Keys the consistency checker found inconsistent, by kind.",
  );
  private readonly consistencyRepaired = this.byKind(
    "sidecache_consistency_repaired_total",
    "Inconsistent keys the consistency checker repaired, by kind.",
  );
  private readonly consistencySkipped = this.counter(
    "sidecache_consistency_skipped_total",
    "Keys the consistency checker left out because they were written while checked or had a write queued.",
  );
  private readonly consistencyRatio = this.gauge(
    "sidecache_consistency_ratio",
    "Inconsistent keys / keys compared in the last consistency check.",
  );
  private readonly consistencyUpper = this.gauge(
    "sidecache_consistency_ratio_upper95",
    "95% upper confidence bound of the inconsistency rate, from the last consistency check.",
  );
  private readonly consistencyAlertRatio = this.gauge(
    "sidecache_consistency_alert_ratio",
    "The keyspace's alert_ratio: a check whose ratio passes it alerts.",
  );
  private readonly consistencyLastRun = this.gauge(
    "sidecache_consistency_last_run_timestamp_seconds",
    "When the last consistency check finished, in seconds since the epoch; until the first, when the keyspace started.",
  );
  private readonly consistencyDuration = this.gauge(
    "sidecache_consistency_last_run_duration_seconds",
    "How long the last consistency check took.",
  );
  private readonly consistencyAlerts = new Counter({
    name: "sidecache_consistency_alerts_total",
    help: "Consistency alert deliveries to webhooks, by state (firing, resolved) and outcome (sent, failed).",
    labelNames: ["keyspace", "state", "outcome"],
    registers: [this.registry],
  });
  readonly queueDepth = this.gauge(
    "sidecache_writebehind_queue_depth",
    "Write-behind writes not yet in PostgreSQL.",
  );
  readonly queueOldest = this.gauge(
    "sidecache_writebehind_oldest_seconds",
    "Age of the oldest write-behind write not yet in PostgreSQL.",
  );
  readonly deadLetters = this.gauge(
    "sidecache_writebehind_dead_letters",
    "Write-behind writes in the dead-letter stream.",
  );

  constructor() {
    this.requestCounts.attach(this.requests);
    this.hitCounts.attach(this.cacheHits);
    this.nearHitCounts.attach(this.nearHits);
    // prom-client samples the event loop's lag every 10 ms by default: an idle daemon then woke 100 times a
    // second for that alone. Every 100 ms still catches the stalls the lag metric is for.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    for (const backend of ["cache", "store"]) {
      this.breakerState.set({ backend }, 0);
      for (const code of BACKEND_ERROR_CODES) this.backendErrors.inc({ backend, code }, 0);
    }
  }

  /** Each (keyspace, op, protocol)'s counts, looked up by nested maps: no label strings built per request. */
  private readonly requestSeries = new Map<string, Map<string, RequestSeries>>();

  request(keyspace: string, op: Op, status: number, seconds: number, protocol: Protocol = "http"): void {
    let byOp = this.requestSeries.get(keyspace);
    if (!byOp) this.requestSeries.set(keyspace, (byOp = new Map()));
    const at = protocol === "http" ? op : `${op}\u0000${protocol}`;
    let s = byOp.get(at);
    if (!s) {
      const labels = { keyspace, op, protocol };
      byOp.set(at, (s = { labels, statuses: new Map(), duration: this.duration.series(labels) }));
    }
    let owed = s.statuses.get(status);
    if (owed === undefined) {
      const id = `${keyspace}\u0000${op}\u0000${protocol}\u0000${status}`;
      owed = this.requestCounts.open(id, { keyspace, op, status: String(status), protocol }, 0);
      s.statuses.set(status, owed);
    }
    owed.n++;
    s.duration.observe(seconds);
  }

  hitRatio(keyspace: string): number | null {
    const h = this.hits.get(keyspace);
    if (!h || h.hit + h.miss === 0) return null;
    return h.hit / (h.hit + h.miss);
  }

  /** The telemetry sink. */
  readonly onEvent = (e: TelemetryEvent): void => {
    switch (e.type) {
      case "keyspace_started":
        this.zero(e);
        break;
      case "cache_hit":
        if (!this.hitCounts.add(e.keyspace, e.n ?? 1))
          this.hitCounts.open(e.keyspace, { keyspace: e.keyspace }, e.n ?? 1);
        this.ratio(e.keyspace).hit += e.n ?? 1;
        break;
      case "cache_miss":
        this.cacheMisses.inc({ keyspace: e.keyspace }, e.n ?? 1);
        this.ratio(e.keyspace).miss += e.n ?? 1;
        break;
      case "cache_stale":
        this.cacheStale.inc({ keyspace: e.keyspace }, e.n ?? 1);
        break;
      case "coalesced":
        this.coalesced.inc({ keyspace: e.keyspace }, e.n ?? 1);
        break;
      case "refresh_ahead":
        this.refreshes.inc({ keyspace: e.keyspace }, e.n ?? 1);
        break;
      case "store_read":
        this.storeReads.inc({ keyspace: e.keyspace }, e.n ?? 1);
        break;
      case "store_write":
        this.storeWrites.inc({ keyspace: e.keyspace }, e.n ?? 1);
        break;
      case "backend_error":
        this.backendErrors.inc({ backend: e.backend, code: e.code });
        break;
      case "breaker":
        this.breakerState.set({ backend: e.backend }, BREAKER_LEVEL[e.state]);
        break;
      case "cache_repair":
        this.repairs.inc({ keyspace: e.keyspace, outcome: e.outcome });
        this.staleWindow.observe({ keyspace: e.keyspace }, e.staleSeconds);
        break;
      case "wb_flush":
        this.storeWrites.inc({ keyspace: e.keyspace }, e.writes);
        this.storeStatements.inc({ keyspace: e.keyspace }, e.statements);
        break;
      case "wb_dead_letter":
        this.deadLetterEvents.inc({ keyspace: e.keyspace });
        break;
      case "wb_superseded":
        this.superseded.inc({ keyspace: e.keyspace });
        break;
      case "near_hit":
        if (!this.nearHitCounts.add(e.keyspace, e.n ?? 1)) {
          this.nearHitCounts.open(e.keyspace, { keyspace: e.keyspace }, e.n ?? 1);
        }
        break;
      case "near_miss":
        this.nearMisses.inc({ keyspace: e.keyspace }, e.n ?? 1);
        break;
      case "near_invalidation":
        this.nearInvalidations.inc({ keyspace: e.keyspace });
        this.nearInvalidationSeconds.observe({ keyspace: e.keyspace }, e.seconds);
        break;
      case "consistency_check":
        this.checked.add(e.keyspace);
        for (const [kind, n] of Object.entries(e.checked)) {
          this.consistencyChecked.inc({ keyspace: e.keyspace, kind }, n);
          if (kind !== "consistent") this.consistencyInconsistent.inc({ keyspace: e.keyspace, kind }, n);
        }
        for (const [kind, n] of Object.entries(e.repaired)) {
          this.consistencyRepaired.inc({ keyspace: e.keyspace, kind }, n);
        }
        this.consistencySkipped.inc({ keyspace: e.keyspace }, e.skipped);
        this.consistencyRatio.set({ keyspace: e.keyspace }, e.ratio);
        this.consistencyUpper.set({ keyspace: e.keyspace }, e.ratioUpper);
        this.consistencyAlertRatio.set({ keyspace: e.keyspace }, e.alertRatio);
        this.consistencyLastRun.set({ keyspace: e.keyspace }, e.finishedAt / 1000);
        this.consistencyDuration.set({ keyspace: e.keyspace }, e.seconds);
        break;
      case "consistency_alert":
        this.consistencyAlerts.inc({ keyspace: e.keyspace, state: e.state, outcome: e.outcome });
        break;
    }
  };

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Exports the keyspace's series at 0 (initial-series.ts says why); values already counted stay. */
  private zero(e: Extract<TelemetryEvent, { type: "keyspace_started" }>): void {
    const keyspace = e.keyspace;
    for (const protocol of e.protocols ?? ["http"]) {
      for (const { op, status } of requestSeries(e.strategy)) {
        this.requests.inc({ keyspace, op, status, protocol }, 0);
        this.duration.series({ keyspace, op, protocol });
      }
    }
    for (const c of [
      this.cacheHits,
      this.cacheMisses,
      this.cacheStale,
      this.coalesced,
      this.storeReads,
      this.storeWrites,
      this.consistencySkipped,
    ]) {
      c.inc({ keyspace }, 0);
    }
    if (e.strategy === "read-through") this.refreshes.inc({ keyspace }, 0);
    for (const outcome of REPAIR_OUTCOMES) this.repairs.inc({ keyspace, outcome }, 0);
    this.staleWindow.zero({ keyspace });
    for (const kind of CHECK_KINDS) {
      this.consistencyChecked.inc({ keyspace, kind }, 0);
      this.consistencyRepaired.inc({ keyspace, kind }, 0);
    }
    for (const kind of INCONSISTENT_KINDS) this.consistencyInconsistent.inc({ keyspace, kind }, 0);
    for (const state of ALERT_STATES) {
      for (const outcome of ALERT_OUTCOMES) this.consistencyAlerts.inc({ keyspace, state, outcome }, 0);
    }
    this.consistencyAlertRatio.set({ keyspace }, e.alertRatio);
    // A checker that never runs must show its age too: until the first check, the keyspace's start time.
    if (e.checkerEnabled && !this.checked.has(keyspace))
      this.consistencyLastRun.set({ keyspace }, e.at / 1000);
    if (e.strategy === "write-behind") {
      this.storeStatements.inc({ keyspace }, 0);
      this.deadLetterEvents.inc({ keyspace }, 0);
      this.superseded.inc({ keyspace }, 0);
      if (!this.queues.has(keyspace)) {
        this.queues.add(keyspace);
        for (const g of [this.queueDepth, this.queueOldest, this.deadLetters]) g.set({ keyspace }, 0);
      }
    }
  }

  private ratio(keyspace: string): { hit: number; miss: number } {
    let h = this.hits.get(keyspace);
    if (!h) this.hits.set(keyspace, (h = { hit: 0, miss: 0 }));
    return h;
  }

  private counter(name: string, help: string, collect?: () => void): Counter<"keyspace"> {
    return new Counter({ name, help, labelNames: ["keyspace"], registers: [this.registry], collect });
  }

  private byKind(name: string, help: string): Counter<"keyspace" | "kind"> {
    return new Counter({ name, help, labelNames: ["keyspace", "kind"], registers: [this.registry] });
  }

  private gauge(name: string, help: string): Gauge<"keyspace"> {
    return new Gauge({ name, help, labelNames: ["keyspace"], registers: [this.registry] });
  }
}

interface RequestSeries {
  labels: { keyspace: string; op: string; protocol: string };
  /** each status's count in requestCounts */
  statuses: Map<number, Owed<"keyspace" | "op" | "status" | "protocol">>;
  duration: DurationSeries;
}
