/**
 * The read side every strategy shares: cache first; on a miss one load per key however many requests
 * wait for it (single flight), then a version-guarded fill; negative caching of absent keys; a stale
 * entry served (X-Cache: STALE) when the load fails within the grace period; optional refresh ahead of
 * expiry. The loader is PostgreSQL by default; write-behind puts its pending writes in front of it.
 *
 * Single flight, and why it never serves a value older than an acknowledged write (docs/design.md):
 * a reader joins a load in flight when that load began after the reader did (it sees every write
 * acknowledged before the reader began), or when what the reader found in the cache vouches for it: every
 * write leaves an entry at its version that lives at least WRITE_MARKER_MIN_MS, so a reader that found
 * nothing, an expired entry or a tombstone knows the newest version acknowledged so far, and takes the
 * load's row only when it is at least that version. Otherwise it waits for the load under way to end and
 * shares the next one: at most one load per key at a time, however the key's entry looks.
 */
import { WRITE_MARKER_MIN_MS, type CacheAdapter, type CacheEntry } from "../cache/adapter.js";
import type { RequestContext } from "../backend/request-context.js";
import type { KeyspaceConfig } from "../config/types.js";
import { BackendUnavailableError, SidecacheError } from "../errors.js";
import type { StoredRow } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";
import { observeVersion } from "../version.js";
import type { ReadOptions, ReadResult } from "./strategy.js";

/** `request`: the read that starts the load (its deadline cuts the call's timeout) */
export type Loader = (key: string, request?: RequestContext) => Promise<StoredRow | null>;
export type ManyLoader = (keys: string[], request?: RequestContext) => Promise<Map<string, StoredRow>>;

interface Flight {
  promise: Promise<StoredRow | null>;
  /** from the same counter as readers' starts: a flight with a greater seq began after the reader */
  seq: number;
  at: number;
  /** the cache's generation when the load began: a fill is dropped if the cache changed incarnation */
  generation: number;
  /** the load ended (its fill done): kept until the next turn of the event loop for readers whose
   * cache read was answered before the fill and who join after it, in the same burst of replies */
  done: boolean;
}

/** What a reader found in the cache: the newest write it knows of. */
interface Seen {
  version: number;
  kind: CacheEntry["kind"] | null;
}

/** What a load brings: the row, whether it came from another daemon's fill, the fill lease to give back. */
interface Loaded {
  row: StoredRow | null;
  fromCache?: boolean;
  release?: () => Promise<void>;
}

/** How often a daemon waiting for another's fill looks at the cache. */
const FILL_POLL_MS = 5;

/** A load older than this is not joined on the strength of the cache's word (half the markers' life). */
const JOIN_WINDOW_MS = WRITE_MARKER_MIN_MS / 2;

const notFound = (cache: ReadResult["cache"]): ReadResult => ({
  found: false,
  version: 0,
  cache,
  tier: "DB",
});
const fromRow = (row: StoredRow, cache: ReadResult["cache"]): ReadResult => ({
  found: true,
  value: row.value,
  version: row.version,
  cache,
  tier: "DB",
});

export interface ReadPathOptions {
  refreshAhead: boolean;
  /** whether cache entries may be served at all right now (the daemon's cache trust); absent: always */
  trusted?: () => boolean;
  /** the daemon is not trusted because PostgreSQL does not answer: entries are served as STALE at once */
  storeDown?: () => boolean;
  /** keys whose entry must not be served: a cache update of a write of this daemon is still owed */
  repairing?: (key: string) => boolean;
}

export class ReadPath {
  private readonly flights = new Map<string, Flight>();
  private seq = 0;

  constructor(
    private readonly ks: KeyspaceConfig,
    private readonly cache: CacheAdapter,
    private readonly telemetry: Telemetry,
    private readonly load: Loader,
    private readonly loadMany: ManyLoader,
    private readonly options: ReadPathOptions,
  ) {}

  /**
   * A hit answered at once from the daemon's memory (the near cache), under the same rules as get(): no
   * await, no Redis. Undefined when get() must decide (not held there, a repair owed, trust lost, due for
   * a refresh ahead).
   */
  peek(key: string, options?: ReadOptions): ReadResult | undefined {
    const entry = this.cache.peek?.(this.ks.name, key, options);
    const now = Date.now();
    if (!servable(entry, now)) return undefined;
    if (this.options.repairing?.(key) || !(this.options.trusted?.() ?? true)) return undefined;
    if (this.options.refreshAhead && entry.freshUntil - now < this.ks.refreshAheadMs) return undefined;
    this.telemetry.emit({ type: "cache_hit", keyspace: this.ks.name });
    return entryResult(entry, "HIT");
  }

  async get(key: string, options?: ReadOptions): Promise<ReadResult> {
    const since = ++this.seq;
    const repairing = this.options.repairing?.(key) ?? false;
    const trusted = this.options.trusted?.() ?? true;
    const request = options?.request;
    if (repairing || !trusted) return this.unvouched(key, since, repairing, request);
    const entry = await this.cached(key, options);
    const now = Date.now();
    // The cache did not answer: it vouches for nothing (a failed read is not "nothing cached").
    if (entry === undefined) return this.unvouched(key, since, true, request);
    if (servable(entry, now)) {
      this.telemetry.emit({ type: "cache_hit", keyspace: this.ks.name });
      if (
        this.options.refreshAhead &&
        entry.kind === "value" &&
        entry.freshUntil - now < this.ks.refreshAheadMs
      ) {
        this.refresh(key);
      }
      return entryResult(entry, "HIT");
    }
    try {
      const row = await this.loadFor(key, since, seenOf(entry), request);
      this.telemetry.emit({ type: "cache_miss", keyspace: this.ks.name });
      return row ? fromRow(row, "MISS") : notFound("MISS");
    } catch (err) {
      if (this.servableStale(entry, err, now)) {
        this.telemetry.emit({ type: "cache_stale", keyspace: this.ks.name });
        return entryResult(entry!, "STALE");
      }
      throw err;
    }
  }

  /**
   * A read whose cache entry can not be vouched for: PostgreSQL answers. When the daemon's trust lapsed
   * (not a repair owed for this key), the entry is fetched meanwhile, and served as STALE if PostgreSQL
   * fails: it is labelled for what it is.
   */
  private async unvouched(
    key: string,
    since: number,
    repairing: boolean,
    request: RequestContext | undefined,
  ): Promise<ReadResult> {
    const now = Date.now();
    const fallback = repairing ? undefined : this.cached(key, request && { request });
    if (fallback && this.options.storeDown?.()) {
      // PostgreSQL did not answer the last sweep: do not wait for it to fail again.
      const entry = await fallback;
      if (entry && entry.kind !== "tombstone" && now < entry.freshUntil + this.ks.staleGraceMs) {
        this.telemetry.emit({ type: "cache_stale", keyspace: this.ks.name });
        return entryResult(entry, "STALE");
      }
    }
    try {
      const row = await this.loadFor(key, since, undefined, request);
      this.telemetry.emit({ type: "cache_miss", keyspace: this.ks.name });
      return row ? fromRow(row, "MISS") : notFound("MISS");
    } catch (err) {
      const entry = fallback ? await fallback : undefined;
      if (this.servableStale(entry, err, now)) {
        this.telemetry.emit({ type: "cache_stale", keyspace: this.ks.name });
        return entryResult(entry!, "STALE");
      }
      throw err;
    }
  }

  async getMany(keys: string[], options?: ReadOptions): Promise<Map<string, ReadResult>> {
    const since = ++this.seq;
    const unique = [...new Set(keys)];
    const out = new Map<string, ReadResult>();
    const trusted = this.options.trusted?.() ?? true;
    // Keys whose entries can not be trusted are not asked for (the cache may be hung).
    const asked = trusted ? unique.filter((k) => !this.options.repairing?.(k)) : [];
    const got = asked.length > 0 ? await this.cachedMany(asked, options) : [];
    // undefined: not asked, or the cache did not answer (it vouches for nothing)
    const entries = new Map(asked.map((k, i) => [k, got[i]]));
    const now = Date.now();
    const misses: { key: string; entry: CacheEntry | null | undefined }[] = [];
    for (const key of unique) {
      const entry = entries.get(key);
      if (servable(entry, now)) {
        out.set(key, entryResult(entry, "HIT"));
      } else {
        misses.push({ key, entry });
      }
    }
    if (out.size > 0) this.telemetry.emit({ type: "cache_hit", keyspace: this.ks.name, n: out.size });
    if (misses.length === 0) return out;

    // Keys nobody is loading are loaded in one query; the others go through loadFor one by one.
    const fresh = misses.filter((m) => !this.flights.has(m.key));
    if (fresh.length > 0) {
      const batch = this.loadMany(
        fresh.map((m) => m.key),
        options?.request,
      );
      this.telemetry.emit({ type: "store_read", keyspace: this.ks.name, n: fresh.length, statements: 1 });
      for (const m of fresh)
        this.startFlight(
          m.key,
          batch.then((rows) => ({ row: rows.get(m.key) ?? null })),
        );
    }
    this.telemetry.emit({ type: "cache_miss", keyspace: this.ks.name, n: misses.length });
    const results = await Promise.allSettled(
      misses.map((m) =>
        this.loadFor(m.key, since, m.entry === undefined ? undefined : seenOf(m.entry), options?.request),
      ),
    );
    results.forEach((r, i) => {
      const m = misses[i]!;
      if (r.status === "fulfilled") {
        out.set(m.key, r.value ? fromRow(r.value, "MISS") : notFound("MISS"));
      } else if (this.servableStale(m.entry, r.reason, now)) {
        out.set(m.key, entryResult(m.entry!, "STALE"));
      } else {
        throw r.reason;
      }
    });
    return out;
  }

  /** A write changed the key: loads already in flight may carry the old value, so later reads start anew. */
  forget(key: string): void {
    this.flights.delete(key);
  }

  private servableStale(entry: CacheEntry | null | undefined, err: unknown, now: number): boolean {
    return (
      entry !== null &&
      entry !== undefined &&
      entry.kind !== "tombstone" &&
      isStoreDown(err) &&
      now < entry.freshUntil + this.ks.staleGraceMs
    );
  }

  private refresh(key: string): void {
    const f = this.flights.get(key);
    if (f && !f.done) return;
    this.telemetry.emit({ type: "refresh_ahead", keyspace: this.ks.name });
    this.startLoad(key, true, undefined, true).catch(() => {
      // the entry is still served until it expires; the next read retries
    });
  }

  /**
   * The row for a reader that began at `since` and found `seen` in the cache (undefined: it did not look).
   * Joins a load that began after the reader; or one that began before, when the cache vouches for its
   * result; otherwise waits for the load under way and shares the next one.
   */
  private async loadFor(
    key: string,
    since: number,
    seen: Seen | undefined,
    request: RequestContext | undefined,
  ): Promise<StoredRow | null> {
    let vouched = seen !== undefined;
    for (;;) {
      const f = this.flights.get(key);
      if (!f) return this.startLoad(key, seen !== undefined, request);
      if (f.seq > since) {
        this.telemetry.emit({ type: "coalesced", keyspace: this.ks.name });
        return f.promise;
      }
      if (vouched && f.generation === this.cache.generation() && Date.now() - f.at < JOIN_WINDOW_MS) {
        this.telemetry.emit({ type: "coalesced", keyspace: this.ks.name });
        const row = await f.promise;
        if (covers(row, seen!)) return row;
        vouched = false;
        continue;
      }
      // Its result may predate a write acknowledged before this reader began: wait it out, then share
      // the load that starts after it (the first waiter to wake starts it; every later one joins).
      if (f.done) this.flights.delete(key);
      else await f.promise.catch(() => {});
    }
  }

  /** fleet: the cache vouches for what it holds, so another daemon's load may serve (a fill lease). */
  private startLoad(
    key: string,
    fleet: boolean,
    request: RequestContext | undefined,
    refresh = false,
  ): Promise<StoredRow | null> {
    return this.startFlight(
      key,
      fleet ? this.fleetLoad(key, request, refresh) : this.storeLoad(key, request),
    );
  }

  private async storeLoad(key: string, request: RequestContext | undefined): Promise<Loaded> {
    this.telemetry.emit({ type: "store_read", keyspace: this.ks.name, statements: 1 });
    return { row: await this.load(key, request) };
  }

  /**
   * One PostgreSQL load per key across every daemon that shares the cache: the daemon that takes the key's
   * fill lease loads and fills; the others watch the cache for that fill and use it, or load themselves
   * once the lease is gone without one (a loader that died costs them at most `fill_lease`). A fill found
   * in the cache landed after every write acknowledged before this load began (a write's marker refuses an
   * older fill), so it serves the readers of this flight as a load would.
   */
  private async fleetLoad(
    key: string,
    request: RequestContext | undefined,
    refresh: boolean,
  ): Promise<Loaded> {
    const c = this.cache;
    if (!c.takeFillLease || !c.watchFill || !c.releaseFillLease) return this.storeLoad(key, request);
    const ks = this.ks.name;
    const generation = c.generation();
    let token: string | null;
    try {
      token = await c.takeFillLease(ks, key, this.ks.fillLeaseMs);
    } catch {
      return this.storeLoad(key, request);
    }
    if (token !== null) {
      const release = () => c.releaseFillLease!(ks, key, token!).catch(() => {});
      try {
        // A reader that missed before the lease was free: the load that freed it may have filled since.
        // (A refresh ahead finds the entry it renews there.)
        const landed = refresh ? undefined : await this.landedFill(key, generation);
        if (landed) {
          await release();
          return landed;
        }
        return { ...(await this.storeLoad(key, request)), release };
      } catch (err) {
        await release();
        throw err;
      }
    }
    const deadline = Date.now() + this.ks.fillLeaseMs;
    while (Date.now() < deadline && c.generation() === generation && (this.options.trusted?.() ?? true)) {
      await new Promise((r) => setTimeout(r, FILL_POLL_MS));
      let seen: { entry: CacheEntry | null; leased: boolean };
      try {
        seen = await c.watchFill(ks, key);
      } catch {
        break;
      }
      const filled = this.fillOf(key, seen.entry, generation);
      if (filled) return filled;
      if (!seen.leased) break;
    }
    return this.storeLoad(key, request);
  }

  /** A fill already in the cache (read after taking the fill lease), or undefined. */
  private async landedFill(key: string, generation: number): Promise<Loaded | undefined> {
    let entry: CacheEntry | null;
    try {
      entry = (await this.cache.watchFill!(this.ks.name, key)).entry;
    } catch {
      return undefined;
    }
    return this.fillOf(key, entry, generation);
  }

  /**
   * Another daemon's fill, when the entry is one: it landed after every write acknowledged before it was
   * read (a write's marker refuses an older fill), so it serves as a load begun now would.
   */
  private fillOf(key: string, e: CacheEntry | null, generation: number): Loaded | undefined {
    if (!e || e.kind === "tombstone" || e.freshUntil <= Date.now()) return undefined;
    if (this.cache.generation() !== generation) return undefined;
    this.telemetry.emit({ type: "coalesced", keyspace: this.ks.name });
    return {
      row: e.kind === "value" ? { key, value: e.value!, version: e.version } : null,
      fromCache: true,
    };
  }

  private startFlight(key: string, loading: Promise<Loaded>): Promise<StoredRow | null> {
    const flight: Flight = {
      promise: Promise.resolve(null),
      seq: ++this.seq,
      at: Date.now(),
      generation: this.cache.generation(),
      done: false,
    };
    flight.promise = loading
      .then(async ({ row, fromCache, release }) => {
        if (row) observeVersion(row.version);
        try {
          if (!fromCache && this.flights.get(key) === flight) await this.fill(key, row, flight.generation);
        } finally {
          // after the fill: the daemons watching for it see it before the lease goes
          await release?.();
        }
        return row;
      })
      .finally(() => {
        flight.done = true;
        setImmediate(() => {
          if (this.flights.get(key) === flight) this.flights.delete(key);
        });
      });
    this.flights.set(key, flight);
    return flight.promise;
  }

  private async fill(key: string, row: StoredRow | null, generation: number): Promise<void> {
    const now = Date.now();
    const entry: CacheEntry = row
      ? {
          kind: "value",
          version: row.version,
          value: row.value,
          freshUntil: now + this.jittered(this.ks.ttlMs),
        }
      : { kind: "absent", version: 0, freshUntil: now + this.ks.negativeTtlMs };
    const keep = row ? entry.freshUntil - now + this.ks.staleGraceMs : this.ks.negativeTtlMs;
    if (keep <= 0) return;
    try {
      await this.cache.setIfNewer(this.ks.name, key, entry, keep, { generation, fill: true });
    } catch {
      // the cache is down: the read is served from PostgreSQL all the same
    }
  }

  private jittered(ms: number): number {
    const j = this.ks.ttlJitter;
    return Math.max(1, Math.round(ms * (1 + (Math.random() * 2 - 1) * j)));
  }

  /** The key's entry, null when nothing is cached, undefined when the cache did not answer. */
  private cached(key: string, options?: ReadOptions): Promise<CacheEntry | null | undefined> {
    // a failure is counted and logged by the backend guard; the read goes on against PostgreSQL
    return this.cache.get(this.ks.name, key, options).catch(() => undefined);
  }

  private async cachedMany(
    keys: string[],
    options?: ReadOptions,
  ): Promise<(CacheEntry | null | undefined)[]> {
    try {
      return await this.cache.getMany(this.ks.name, keys, options);
    } catch {
      return keys.map(() => undefined);
    }
  }
}

/** An entry a hit may answer with: a value or an absent marker, still fresh. */
function servable(entry: CacheEntry | null | undefined, now: number): entry is CacheEntry {
  return entry != null && entry.kind !== "tombstone" && entry.freshUntil > now;
}

function seenOf(entry: CacheEntry | null): Seen {
  return entry ? { version: entry.version, kind: entry.kind } : { version: 0, kind: null };
}

/** Whether a row loaded by an earlier load is at least as new as what the reader found in the cache. */
function covers(row: StoredRow | null, seen: Seen): boolean {
  if (seen.version === 0) return true;
  if (row) return row.version >= seen.version;
  // a delete's marker: absent is what the reader would have been told
  return seen.kind === "absent";
}

function entryResult(entry: CacheEntry, cache: ReadResult["cache"]): ReadResult {
  const tier = entry.near ? "L1" : "L2";
  return entry.kind === "value"
    ? { found: true, value: entry.value, version: entry.version, cache, tier }
    : { found: false, version: entry.version, cache, tier };
}

function isStoreDown(err: unknown): boolean {
  return (
    (err instanceof BackendUnavailableError && err.backend === "store") ||
    (err instanceof SidecacheError && err.code === "timeout")
  );
}
