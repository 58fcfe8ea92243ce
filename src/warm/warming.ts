/**
 * Cache warming: a keyspace's cache is filled before its clients ask, from the keys an operator's SELECT
 * returns or from the keys read most before the last shutdown, at a bounded rate so that PostgreSQL is
 * not flooded. Keys are read through the keyspace's own read path (strategy.getMany): the same version
 * guard, single flight and cache trust as any read, so warming can never put an older value over a newer.
 *
 * Per keyspace one run at a time; its progress is kept for GET /v1/keyspaces/{ks}/warm and the status page.
 * Hot keys are counted per read (HotKeys) for keyspaces warmed `from: hot`, saved to PostgreSQL every
 * minute and at shutdown.
 */
import type { KeyspaceConfig, WarmConfig } from "../config/types.js";
import { InvalidRequestError, NotFoundError } from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import type { Logger } from "../log.js";
import type { WarmSource } from "../store/adapter.js";
import { HotKeys } from "./hot-keys.js";

export interface WarmProgress {
  keyspace: string;
  from: "query" | "hot";
  state: "running" | "done" | "failed" | "stopped";
  /** keys to warm, once the source answered */
  total: number | null;
  /** keys read so far */
  warmed: number;
  /** of those, keys PostgreSQL had a row for (the others are cached as absent) */
  found: number;
  /** keys per second at most */
  rate: number;
  started_at: string;
  finished_at?: string;
  error?: string;
}

export interface WarmRequest {
  from?: "query" | "hot";
  limit?: number;
}

export interface WarmingOptions {
  keyspaces: { get(name: string): Keyspace | undefined; all(): Keyspace[] };
  source?: WarmSource;
  log: Logger;
  /** how often hot keys are saved [60 s] */
  saveEveryMs?: number;
}

export class Warming {
  private readonly trackers = new Map<string, HotKeys>();
  private readonly runs = new Map<string, { progress: WarmProgress; done: Promise<void> }>();
  private readonly sleepers = new Set<() => void>();
  private saver?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly o: WarmingOptions) {}

  /** The hot-key counter of a keyspace warmed from hot keys (kept across reloads); undefined otherwise. */
  tracker(config: KeyspaceConfig): HotKeys | undefined {
    if (config.warm?.from !== "hot") {
      this.trackers.delete(config.name);
      return undefined;
    }
    let t = this.trackers.get(config.name);
    if (!t || t.capacity !== config.warm.limit)
      this.trackers.set(config.name, (t = new HotKeys(config.warm.limit)));
    return t;
  }

  /** Starts the on-start runs and the periodic saving of hot keys. */
  begin(): void {
    for (const ks of this.o.keyspaces.all()) {
      if (ks.config.warm?.onStart) this.start(ks.config.name);
    }
    this.saver = setInterval(() => void this.saveHot(), this.o.saveEveryMs ?? 60_000);
    this.saver.unref();
  }

  progress(keyspace: string): WarmProgress | undefined {
    const run = this.runs.get(keyspace);
    return run ? { ...run.progress } : undefined;
  }

  /** Starts a run, or answers the one going on. */
  start(keyspace: string, request: WarmRequest = {}): WarmProgress {
    const ks = this.o.keyspaces.get(keyspace);
    if (!ks) throw new NotFoundError(`No keyspace named ${JSON.stringify(keyspace)}.`);
    const current = this.runs.get(keyspace);
    if (current?.progress.state === "running") return { ...current.progress };
    const warm = this.settings(ks.config, request);
    if (!this.o.source) throw new InvalidRequestError("This store can not be queried for keys to warm.");
    const progress: WarmProgress = {
      keyspace,
      from: warm.from,
      state: "running",
      total: null,
      warmed: 0,
      found: 0,
      rate: warm.rate,
      started_at: new Date().toISOString(),
    };
    const done = this.run(keyspace, warm, progress, this.o.source);
    this.runs.set(keyspace, { progress, done });
    return { ...progress };
  }

  /** Saves every tracked keyspace's hottest keys; failures are logged (the next save tries again). */
  async saveHot(): Promise<void> {
    const source = this.o.source;
    if (!source) return;
    await Promise.all(
      [...this.trackers].map(async ([name, t]) => {
        if (t.size === 0) return;
        try {
          await source.saveHotKeys(name, t.top());
        } catch (err) {
          this.o.log.warn({ keyspace: name, err: (err as Error).message }, "hot keys not saved");
        }
      }),
    );
  }

  /** Stops the runs where they are and saves the hot keys. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.saver);
    for (const wake of this.sleepers) wake();
    await Promise.allSettled([...this.runs.values()].map((r) => r.done));
    await this.saveHot();
  }

  private settings(config: KeyspaceConfig, request: WarmRequest): WarmConfig {
    const from = request.from ?? config.warm?.from;
    if (!from) {
      throw new InvalidRequestError(
        `Keyspace ${JSON.stringify(config.name)} has no warm: section; give {"from": "hot"} or configure one.`,
      );
    }
    if (from === "query" && !config.warm?.query) {
      throw new InvalidRequestError(
        `Keyspace ${JSON.stringify(config.name)} has no warm.query to warm from.`,
      );
    }
    return {
      from,
      query: config.warm?.query,
      onStart: false,
      limit: request.limit ?? config.warm?.limit ?? 10_000,
      rate: config.warm?.rate ?? 1_000,
      batch: config.warm?.batch ?? 100,
    };
  }

  private async run(keyspace: string, w: WarmConfig, p: WarmProgress, source: WarmSource): Promise<void> {
    const log = this.o.log.child({ keyspace, component: "warm" });
    try {
      const keys =
        w.from === "query"
          ? await source.queryKeys(w.query!, w.limit)
          : await source.hotKeys(keyspace, w.limit);
      p.total = keys.length;
      log.info({ from: w.from, keys: keys.length, rate: w.rate }, "warming the cache");
      const started = Date.now();
      for (let i = 0; i < keys.length; i += w.batch) {
        // The keyspace as it is now: a reload may have replaced or removed it.
        const ks = this.o.keyspaces.get(keyspace);
        if (this.stopped || !ks) {
          p.state = "stopped";
          break;
        }
        const batch = keys.slice(i, i + w.batch);
        const results = await ks.strategy.getMany(batch);
        p.warmed += batch.length;
        for (const r of results.values()) if (r.found) p.found++;
        // No more than `rate` keys per second on average: wait until this many keys are due.
        await this.sleep(started + (p.warmed / w.rate) * 1000 - Date.now());
      }
      if (p.state === "running") p.state = "done";
      log.info({ warmed: p.warmed, found: p.found, state: p.state }, "cache warming finished");
    } catch (err) {
      p.state = "failed";
      p.error = (err as Error).message;
      log.warn({ err: p.error, warmed: p.warmed }, "cache warming failed");
    } finally {
      p.finished_at = new Date().toISOString();
    }
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}
