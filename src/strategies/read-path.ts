/**
 * The read side every strategy shares: cache first; on a miss one load per key however many requests
 * wait for it (single flight), then a version-guarded fill; negative caching of absent keys; a stale
 * entry served (X-Cache: STALE) when the load fails within the grace period; optional refresh ahead of
 * expiry. The loader is PostgreSQL by default; write-behind puts its pending writes in front of it.
 */
import type { CacheAdapter, CacheEntry } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import { BackendUnavailableError, SidecacheError } from "../errors.js";
import type { StoredRow } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";
import { observeVersion } from "../version.js";
import type { ReadResult } from "./strategy.js";

export type Loader = (key: string) => Promise<StoredRow | null>;
export type ManyLoader = (keys: string[]) => Promise<Map<string, StoredRow>>;

interface Flight {
  promise: Promise<StoredRow | null>;
  started: number;
}

const notFound = (cache: ReadResult["cache"]): ReadResult => ({ found: false, version: 0, cache });
const fromRow = (row: StoredRow, cache: ReadResult["cache"]): ReadResult => ({
  found: true,
  value: row.value,
  version: row.version,
  cache,
});

export interface ReadPathOptions {
  refreshAhead: boolean;
  /** keys whose cache entry must not be trusted right now (a cache repair is pending, the cache is suspect) */
  bypass?: (key: string) => boolean;
}

export class ReadPath {
  private readonly flights = new Map<string, Flight>();

  constructor(
    private readonly ks: KeyspaceConfig,
    private readonly cache: CacheAdapter,
    private readonly telemetry: Telemetry,
    private readonly load: Loader,
    private readonly loadMany: ManyLoader,
    private readonly options: ReadPathOptions,
  ) {}

  async get(key: string): Promise<ReadResult> {
    const entry = this.options.bypass?.(key) ? null : await this.cached(key);
    const now = Date.now();
    if (entry && entry.kind !== "tombstone" && entry.freshUntil > now) {
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
      const row = await this.flight(key, entry?.version ?? 0);
      this.telemetry.emit({ type: "cache_miss", keyspace: this.ks.name });
      return row ? fromRow(row, "MISS") : notFound("MISS");
    } catch (err) {
      if (
        entry &&
        entry.kind !== "tombstone" &&
        isStoreDown(err) &&
        now < entry.freshUntil + this.ks.staleGraceMs
      ) {
        this.telemetry.emit({ type: "cache_stale", keyspace: this.ks.name });
        return entryResult(entry, "STALE");
      }
      throw err;
    }
  }

  async getMany(keys: string[]): Promise<Map<string, ReadResult>> {
    const unique = [...new Set(keys)];
    const out = new Map<string, ReadResult>();
    // Keys whose entries can not be trusted are not asked for (the cache may be hung).
    const asked = this.options.bypass ? unique.filter((k) => !this.options.bypass!(k)) : unique;
    const got = asked.length > 0 ? await this.cachedMany(asked) : [];
    const entries = new Map(asked.map((k, i) => [k, got[i] ?? null]));
    const now = Date.now();
    const misses: { key: string; entry: CacheEntry | null }[] = [];
    unique.forEach((key) => {
      const entry = entries.get(key) ?? null;
      if (entry && entry.kind !== "tombstone" && entry.freshUntil > now) {
        out.set(key, entryResult(entry, "HIT"));
      } else {
        misses.push({ key, entry });
      }
    });
    if (out.size > 0) this.telemetry.emit({ type: "cache_hit", keyspace: this.ks.name, n: out.size });
    if (misses.length === 0) return out;

    // Keys already being loaded join their flight; the rest are loaded in one query.
    const joined = misses.filter((m) => this.joinable(m.key, m.entry?.version ?? 0));
    const fresh = misses.filter((m) => !joined.includes(m));
    let batch: Promise<Map<string, StoredRow>> | undefined;
    if (fresh.length > 0) {
      batch = this.loadMany(fresh.map((m) => m.key));
      this.telemetry.emit({ type: "store_read", keyspace: this.ks.name, n: fresh.length, statements: 1 });
      for (const m of fresh) {
        this.startFlight(
          m.key,
          batch.then((rows) => rows.get(m.key) ?? null),
        );
      }
    }
    if (joined.length > 0)
      this.telemetry.emit({ type: "coalesced", keyspace: this.ks.name, n: joined.length });
    this.telemetry.emit({ type: "cache_miss", keyspace: this.ks.name, n: misses.length });
    const results = await Promise.allSettled(
      misses.map((m) => this.flights.get(m.key)?.promise ?? this.flight(m.key, 0)),
    );
    results.forEach((r, i) => {
      const m = misses[i]!;
      if (r.status === "fulfilled") {
        out.set(m.key, r.value ? fromRow(r.value, "MISS") : notFound("MISS"));
      } else if (
        m.entry &&
        m.entry.kind !== "tombstone" &&
        isStoreDown(r.reason) &&
        now < m.entry.freshUntil + this.ks.staleGraceMs
      ) {
        out.set(m.key, entryResult(m.entry, "STALE"));
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

  private refresh(key: string): void {
    if (this.flights.has(key)) return;
    this.telemetry.emit({ type: "refresh_ahead", keyspace: this.ks.name });
    this.flight(key, 0).catch(() => {
      // the entry is still served until it expires; the next read retries
    });
  }

  /** Joins the load in flight when one exists and can not be older than what the cache already knew. */
  private joinable(key: string, atLeast: number): boolean {
    const f = this.flights.get(key);
    return f !== undefined && atLeast === 0;
  }

  private flight(key: string, knownVersion: number): Promise<StoredRow | null> {
    const existing = this.flights.get(key);
    // A tombstone at version v means a write at v committed; a flight may have started before it.
    if (existing && knownVersion === 0) {
      this.telemetry.emit({ type: "coalesced", keyspace: this.ks.name });
      return existing.promise;
    }
    this.telemetry.emit({ type: "store_read", keyspace: this.ks.name, statements: 1 });
    return this.startFlight(key, this.load(key));
  }

  private startFlight(key: string, loading: Promise<StoredRow | null>): Promise<StoredRow | null> {
    const flight: Flight = { promise: loading, started: Date.now() };
    flight.promise = loading
      .then(async (row) => {
        if (row) observeVersion(row.version);
        if (this.flights.get(key) === flight) await this.fill(key, row);
        return row;
      })
      .finally(() => {
        if (this.flights.get(key) === flight) this.flights.delete(key);
      });
    this.flights.set(key, flight);
    return flight.promise;
  }

  private async fill(key: string, row: StoredRow | null): Promise<void> {
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
      await this.cache.setIfNewer(this.ks.name, key, entry, keep);
    } catch {
      // the cache is down: the read is served from PostgreSQL all the same
    }
  }

  private jittered(ms: number): number {
    const j = this.ks.ttlJitter;
    return Math.max(1, Math.round(ms * (1 + (Math.random() * 2 - 1) * j)));
  }

  private async cached(key: string): Promise<CacheEntry | null> {
    try {
      return await this.cache.get(this.ks.name, key);
    } catch {
      // counted and logged by the backend guard; the read goes on against PostgreSQL
      return null;
    }
  }

  private async cachedMany(keys: string[]): Promise<(CacheEntry | null)[]> {
    try {
      return await this.cache.getMany(this.ks.name, keys);
    } catch {
      return keys.map(() => null);
    }
  }
}

function entryResult(entry: CacheEntry, cache: ReadResult["cache"]): ReadResult {
  return entry.kind === "value"
    ? { found: true, value: entry.value, version: entry.version, cache }
    : { found: false, version: entry.version, cache };
}

function isStoreDown(err: unknown): boolean {
  return (
    (err instanceof BackendUnavailableError && err.backend === "store") ||
    (err instanceof SidecacheError && err.code === "timeout")
  );
}
