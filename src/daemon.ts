/**
 * The daemon: builds the backends, the keyspaces and the HTTP listener from a Config; reloads keyspaces and
 * access rules in place; stops gracefully (requests in flight finished, write-behind drained, pools closed).
 */
import type { AddressInfo } from "node:net";
import { guardCache, guardStore, type GuardedCache, type GuardedStore } from "./backend/index.js";
import { createCache } from "./cache/index.js";
import { CdcReader, type CdcTiming } from "./cdc/index.js";
import { createChecker, type Checker, type CreateCheckerOptions } from "./checker/index.js";
import type { Config, KeyspaceConfig } from "./config/types.js";
import { KeyspaceRegistry, type Keyspace } from "./keyspaces.js";
import { createLogger, type Logger } from "./log.js";
import { CdcMetrics } from "./metrics/cdc-metrics.js";
import { Metrics } from "./metrics/metrics.js";
import { Authorizer } from "./proxy/auth.js";
import type { CheckRunner, Health, ProxyContext } from "./proxy/context.js";
import { HttpServer } from "./proxy/server.js";
import { RespServer } from "./resp/server.js";
import { createStore } from "./store/index.js";
import { Presence } from "./store/presence.js";
import type { CacheAdapter } from "./cache/adapter.js";
import { createNearCache, type NearCache } from "./near/index.js";
import { createStrategy } from "./strategies/index.js";
import { CacheTrust } from "./trust/cache-trust.js";
import { TelemetryHub } from "./telemetry.js";
import { StatusHistory } from "./ui/history.js";
import { Warming } from "./warm/warming.js";
import { AuditRetention } from "./audit/retention.js";

export interface DaemonOptions {
  log?: Logger;
  /** the consistency checker's tuning (tests: a fake tick source, short pauses and retries) */
  checker?: Omit<CreateCheckerOptions, "keyspaces" | "cache" | "store" | "telemetry" | "log">;
  /** the cache trust lease, and how often repair intents are swept while trusted and while not */
  repairs?: { leaseMs?: number; intervalMs?: number; retryMs?: number };
  /** the status page's history: length of a point (tests: short) */
  status?: { intervalMs?: number };
  /** how often hot keys are saved for warming (tests: short) */
  warm?: { saveEveryMs?: number };
  /** change data capture's timings (tests: quicker lease tries) */
  cdc?: Partial<CdcTiming>;
  /** how often old audit records are pruned (tests: short) */
  auditRetention?: { everyMs?: number };
}

export class Daemon implements Health {
  readonly metrics = new Metrics();
  readonly keyspaces = new KeyspaceRegistry();
  readonly log: Logger;
  private readonly ctx: ProxyContext;
  private http?: HttpServer;
  private address?: AddressInfo;
  private resp?: RespServer;
  private respAddress?: AddressInfo;
  private stopping?: Promise<void>;
  checker?: Checker;
  private presence?: Presence;
  /** applies the repair intents PostgreSQL holds; says whether cache entries may be served */
  readonly trust: CacheTrust;
  /** the keyspaces' near caches in front of Redis (also with none: writes reach other daemons' near caches) */
  readonly near?: NearCache;
  /** the cache every component uses: the near caches in front of the guarded Redis, or that alone */
  readonly view: CacheAdapter;
  /** the last minutes of each keyspace, for GET /ui */
  readonly status: StatusHistory;
  /** cache warming runs and the hot keys they start from */
  readonly warming: Warming;
  /** with store.cdc: reads changes made outside sidecache; its invalidations go through `view` */
  cdc?: CdcReader;
  /** deletes audit records past their keyspace's retention */
  readonly auditRetention?: AuditRetention;

  private constructor(
    public config: Config,
    readonly cache: GuardedCache,
    readonly store: GuardedStore,
    log: Logger,
    readonly telemetry: TelemetryHub,
    repairs: DaemonOptions["repairs"] = {},
    status: DaemonOptions["status"] = {},
    warm: DaemonOptions["warm"] = {},
    retention: DaemonOptions["auditRetention"] = {},
  ) {
    this.log = log;
    if (store.auditLog) {
      this.auditRetention = new AuditRetention({
        keyspaces: () => this.keyspaces.all().map((ks) => ks.config),
        audit: store.auditLog,
        log: log.child({ component: "audit" }),
        everyMs: retention.everyMs,
      });
    }
    this.telemetry.subscribe(this.metrics.onEvent);
    this.near = createNearCache(config, cache, telemetry, log.child({ component: "near-cache" }));
    this.view = this.near ?? cache;
    this.status = new StatusHistory({ ...status, keyspaces: () => this.keyspaces.all() });
    this.telemetry.subscribe(this.status.onEvent);
    this.warming = new Warming({
      keyspaces: this.keyspaces,
      source: store.warmSource,
      log,
      saveEveryMs: warm.saveEveryMs,
    });
    this.trust = new CacheTrust({
      leaseMs: config.cache.trustLeaseMs,
      ...repairs,
      cache: this.view,
      store,
      keyspaces: () => this.keyspaces.all().map((ks) => ks.config),
      telemetry,
      log: log.child({ component: "repairs" }),
    });
    this.ctx = {
      server: config.server,
      keyspaces: this.keyspaces,
      auth: new Authorizer(config.auth),
      accessLog: config.log.access,
      observer: this.metrics,
      health: this,
      status: this.status,
      warm: this.warming,
      audit: store.auditLog,
      log,
    };
  }

  /** Connects to the backends, prepares every keyspace's table and strategy, and listens. */
  static async start(config: Config, options: DaemonOptions = {}): Promise<Daemon> {
    const log = options.log ?? createLogger(config.log.level);
    const telemetry = new TelemetryHub();
    // Every call to Redis and PostgreSQL passes one guard: timeout, circuit breaker, typed error, metric, log.
    const store = guardStore(await createStore(config.store, log), config.store, telemetry, log);
    const cache = guardCache(createCache(config.cache, log), config.cache, telemetry, log);
    const daemon = new Daemon(
      config,
      cache,
      store,
      log,
      telemetry,
      options.repairs,
      options.status,
      options.warm,
      options.auditRetention,
    );
    try {
      // PostgreSQL is asked first: a server that can not stream changes gets nothing created in it.
      if (config.store.cdc) await daemon.createCdc(options.cdc).check();
      for (const ks of config.keyspaces.values()) daemon.keyspaces.set(await daemon.build(ks));
      daemon.checker = await createChecker(config, {
        ...options.checker,
        keyspaces: daemon.keyspaces,
        cache: daemon.view,
        store,
        telemetry,
        log,
      });
      daemon.setChecker(daemon.checker);
      daemon.checker.start();
      await daemon.cdc?.start();
      // Repairs a daemon that died left behind are applied before the first request is served.
      await daemon.trust.start();
      // Behind a pooler in transaction mode no session lock holds (and memory: is refused with it).
      const direct = config.store.pooler !== "transaction";
      if (/^postgres(ql)?:/.test(config.store.url) && direct && config.keyspaces.size > 0) {
        daemon.presence = await Presence.acquire(
          config.store.url,
          config.cache.url === "memory:",
          [...config.keyspaces.values()].map((ks) => ks.table),
          log.child({ component: "presence" }),
        );
      }
      daemon.status.start();
      daemon.auditRetention?.start();
      daemon.http = new HttpServer(daemon.ctx);
      daemon.address = await daemon.http.listen(config.server.host, config.server.port);
      if (config.server.resp) {
        daemon.resp = new RespServer(daemon.ctx);
        daemon.respAddress = await daemon.resp.listen(config.server.resp.host, config.server.resp.port);
      }
      // In the background: the daemon serves (misses) while its cache fills.
      daemon.warming.begin();
    } catch (err) {
      await daemon.stop().catch(() => {});
      throw err;
    }
    if (!isLoopback(config.server.host) && !daemon.ctx.auth.enabled) {
      log.warn(
        { host: config.server.host },
        "listening beyond loopback without auth: anyone who can reach it can read and write",
      );
    }
    log.info(
      { host: daemon.address.address, port: daemon.address.port, keyspaces: daemon.keyspaces.names() },
      "sidecache listening",
    );
    if (daemon.respAddress) {
      const { address, port } = daemon.respAddress;
      log.info({ host: address, port }, "redis protocol listening");
      if (!isLoopback(address) && !daemon.ctx.auth.enabled) {
        log.warn(
          { host: address },
          "redis protocol beyond loopback without auth: anyone who can reach it can read and write",
        );
      }
    }
    return daemon;
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  /** the port of the Redis protocol listener; undefined when server.resp is not configured */
  get respPort(): number | undefined {
    return this.respAddress?.port;
  }

  get url(): string {
    const host =
      this.address?.family === "IPv6" ? `[${this.address.address}]` : (this.address?.address ?? "127.0.0.1");
    return `${this.config.server.tls ? "https" : "http"}://${host}:${this.port}`;
  }

  setChecker(checker: CheckRunner): void {
    this.ctx.checker = checker;
  }

  /**
   * Applies a new configuration: keyspaces added, changed or removed, access rules replaced; connections
   * stay up. Changes to server, cache or store need a restart and are reported, not applied.
   */
  async reload(
    next: Config,
  ): Promise<{ added: string[]; changed: string[]; removed: string[]; ignored: string[] }> {
    const ignored = (["server", "cache", "store"] as const).filter(
      (s) => JSON.stringify(next[s]) !== JSON.stringify(this.config[s]),
    );
    const added: string[] = [];
    const changed: string[] = [];
    const removed: string[] = [];
    const built = new Map<string, Keyspace>();
    // Build everything first: if one table is missing, nothing changes.
    for (const ks of next.keyspaces.values()) {
      const old = this.keyspaces.get(ks.name);
      if (old && JSON.stringify(old.config) === JSON.stringify(ks)) continue;
      built.set(ks.name, await this.build(ks));
      (old ? changed : added).push(ks.name);
    }
    const retired: Keyspace[] = [];
    for (const ks of built.values()) {
      const old = this.keyspaces.get(ks.config.name);
      if (old) retired.push(old);
      this.keyspaces.set(ks);
    }
    for (const name of this.keyspaces.names()) {
      if (!next.keyspaces.has(name)) {
        retired.push(this.keyspaces.get(name)!);
        this.keyspaces.delete(name);
        removed.push(name);
      }
    }
    this.ctx.auth = new Authorizer(next.auth);
    this.ctx.accessLog = next.log.access;
    this.config = { ...next, server: this.config.server, cache: this.config.cache, store: this.config.store };
    this.near?.configure([...next.keyspaces.values()]);
    this.checker?.reload();
    if (built.size > 0) this.trust.wake();
    if (built.size > 0 || removed.length > 0) await this.cdc?.sync();
    await Promise.all(retired.map((ks) => ks.strategy.stop(this.config.server.shutdownTimeoutMs)));
    this.log.info({ added, changed, removed, ignored }, "configuration reloaded");
    if (ignored.length > 0) this.log.warn({ sections: ignored }, "these sections change only on restart");
    return { added, changed, removed, ignored };
  }

  /** Stops accepting, finishes requests in flight, drains write-behind, closes pools. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const deadline = this.config.server.shutdownTimeoutMs;
      await Promise.all([this.http?.close(deadline), this.resp?.close(deadline)]);
      this.status.stop();
      await this.auditRetention?.stop();
      await this.warming.stop();
      await this.checker?.stop();
      await Promise.allSettled(this.keyspaces.all().map((ks) => ks.strategy.stop(deadline)));
      await this.cdc?.stop().catch((err: unknown) => this.log.warn({ err: String(err) }, "cdc stop failed"));
      this.trust.stop();
      await Promise.allSettled([this.view.close(), this.store.close(), this.presence?.close()]);
      this.log.info("sidecache stopped");
    })();
    return this.stopping;
  }

  async readiness(): Promise<Record<string, "up" | "down">> {
    const [cache, store] = await Promise.all([
      probe(() => this.cache.ping()),
      probe(() => this.store.ping()),
    ]);
    // Both answer: earn the cache's trust back now rather than at the next sweep, so "ready" means hits.
    if (cache === "up" && store === "up" && !this.trust.trusted) await probe(() => this.trust.sweep());
    return { cache, store };
  }

  breakers(): Record<string, string> {
    return { cache: this.cache.guard.state, store: this.store.guard.state };
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    await Promise.all(
      this.keyspaces.all().map(async (ks) => {
        const q = await ks.strategy.queueStatus?.().catch(() => undefined);
        if (!q) return;
        this.metrics.queueDepth.set({ keyspace: ks.config.name }, q.depth);
        this.metrics.queueOldest.set({ keyspace: ks.config.name }, q.oldestSeconds);
        this.metrics.deadLetters.set({ keyspace: ks.config.name }, q.deadLetters);
      }),
    );
    for (const n of this.near?.sizes() ?? []) {
      this.metrics.nearEntries.set({ keyspace: n.keyspace }, n.entries);
      this.metrics.nearBytes.set({ keyspace: n.keyspace }, n.bytes);
    }
    return this.metrics.text();
  }

  hitRatio(keyspace: string): number | null {
    return this.metrics.hitRatio(keyspace);
  }

  /** Reads the replication slot when this daemon holds its lease (start() catches up before listening). */
  private createCdc(timing?: Partial<CdcTiming>): CdcReader {
    const metrics = new CdcMetrics(this.metrics.registry);
    this.telemetry.subscribe(metrics.onEvent);
    this.cdc = new CdcReader({
      config: this.config.store.cdc!,
      storeUrl: this.config.store.url,
      storeTimeoutMs: this.config.store.timeoutMs,
      cacheTimeoutMs: this.config.cache.timeoutMs,
      // through the near caches: every daemon's copies of a changed row go too
      cache: this.view,
      keyspaces: () => this.keyspaces.all().map((ks) => ks.config),
      telemetry: this.telemetry,
      log: this.log,
      timing,
    });
    return this.cdc;
  }

  private async build(config: KeyspaceConfig): Promise<Keyspace> {
    const table = await this.store.table({
      table: config.table,
      mapped: config.mapped,
      ...(config.audit ? { audit: { keyspace: config.name, table: config.audit.table } } : {}),
    });
    // also without a near cache here: another daemon may keep one of this keyspace
    const near = this.near;
    const strategy = createStrategy({
      keyspace: config,
      cache: this.view,
      nearInvalidate: near ? (key, version) => near.invalidate(config.name, key, version) : undefined,
      store: table,
      telemetry: this.telemetry,
      log: this.log.child({ keyspace: config.name }),
      redis: this.config.cache.redis,
      cachePrefix: this.config.cache.prefix,
      cacheTrust: this.trust,
    });
    await strategy.start();
    const hot = this.warming.tracker(config);
    this.telemetry.emit({
      type: "keyspace_started",
      keyspace: config.name,
      strategy: config.strategy,
      checkerEnabled: config.checker.enabled,
      alertRatio: config.checker.alertRatio,
      at: Date.now(),
      protocols: this.config.server.resp ? ["http", "resp"] : ["http"],
    });
    return { config, strategy, ...(hot ? { hot } : {}) };
  }
}

async function probe(fn: () => Promise<void>): Promise<"up" | "down"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timeout")), 2_000);
  });
  try {
    await Promise.race([fn(), timeout]);
    return "up";
  } catch {
    return "down";
  } finally {
    clearTimeout(timer);
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
