/**
 * Applies what committed transactions invalidate, through the CacheAdapter only: a tombstone per key
 * (setIfNewer: it replaces any older entry, lets a fill of exactly that version in and refuses older
 * fills), or every entry of a keyspace (deleteKeyspace), dropped a second time after `redropDelayMs` in
 * case a fill that read the table before the change lands after the first drop. Then every subscriber
 * (a near cache) gets the same invalidations; the batch counts as applied once all of them returned.
 * Applying again is harmless: a tombstone never replaces a newer entry.
 */
import type { CacheAdapter, CacheEntry } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { Telemetry } from "../telemetry.js";
import type { DropReason, Transaction } from "./changes.js";

/** A tombstone is kept at least this long (as the strategies' own), so a slow fill can not outlive it. */
const MIN_TOMBSTONE_TTL_MS = 60_000;
/** setIfNewer calls in flight at once. */
const CONCURRENCY = 256;

/** One invalidation, as subscribers see it. */
export type Invalidation =
  { keyspace: string; key: string; version: number } | { keyspace: string; all: true; reason: DropReason };

/** Called with every applied batch; the stream's position moves on only after it resolves. */
export type InvalidationListener = (batch: Invalidation[]) => void | Promise<void>;

export interface InvalidatorOptions {
  cache: CacheAdapter;
  keyspaces: () => KeyspaceConfig[];
  telemetry: Telemetry;
  log: Logger;
  /** the second drop of a keyspace: longer than a load plus a fill can take */
  redropDelayMs: number;
}

export class Invalidator {
  private readonly listeners = new Set<InvalidationListener>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: InvalidatorOptions) {}

  /** Subscribes to every batch of invalidations; returns the unsubscribe function. */
  subscribe(listener: InvalidationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Applies the transactions, in order where it matters (a keyspace dropped by one transaction is dropped
   * after the keys of the ones before it); throws when the cache or a subscriber fails, applying nothing
   * that must be applied again.
   */
  async apply(transactions: Transaction[]): Promise<void> {
    let keys = new Map<string, Map<string, number>>();
    const out: Invalidation[] = [];
    for (const t of transactions) {
      if (t.dropped.size > 0) {
        out.push(...(await this.tombstones(keys)));
        keys = new Map();
        for (const [keyspace, reason] of t.dropped) {
          await this.dropKeyspace(keyspace, reason);
          out.push({ keyspace, all: true, reason });
        }
      }
      for (const [keyspace, byKey] of t.keys) {
        let merged = keys.get(keyspace);
        if (!merged) keys.set(keyspace, (merged = new Map()));
        for (const [key, version] of byKey) merged.set(key, Math.max(merged.get(key) ?? 0, version));
      }
    }
    out.push(...(await this.tombstones(keys)));
    for (const listener of this.listeners) await listener(out);
  }

  /** Drops every entry of the keyspace now and once more after redropDelayMs. */
  async dropKeyspace(keyspace: string, reason: DropReason): Promise<void> {
    const n = await this.o.cache.deleteKeyspace(keyspace);
    this.o.log.info({ keyspace, reason, entries: n }, "cdc: dropped every cached entry of the keyspace");
    this.o.telemetry.emit({ type: "cdc_dropped", keyspace, reason });
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.o.cache.deleteKeyspace(keyspace).catch((err: unknown) => {
        this.o.log.warn({ keyspace, err: String(err) }, "cdc: second drop of the keyspace failed");
      });
    }, this.o.redropDelayMs);
    timer.unref();
    this.timers.add(timer);
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async tombstones(keys: Map<string, Map<string, number>>): Promise<Invalidation[]> {
    if (keys.size === 0) return [];
    const byName = new Map(this.o.keyspaces().map((k) => [k.name, k]));
    const calls: (() => Promise<boolean>)[] = [];
    const out: Invalidation[] = [];
    const counts: [string, number][] = [];
    for (const [keyspace, byKey] of keys) {
      const ks = byName.get(keyspace);
      if (!ks) continue; // removed by a reload meanwhile
      const ttl = Math.max(ks.ttlMs, MIN_TOMBSTONE_TTL_MS);
      for (const [key, version] of byKey) {
        const entry: CacheEntry = { kind: "tombstone", version, freshUntil: 0 };
        calls.push(() => this.o.cache.setIfNewer(keyspace, key, entry, ttl));
        out.push({ keyspace, key, version });
      }
      counts.push([keyspace, byKey.size]);
    }
    for (let i = 0; i < calls.length; i += CONCURRENCY) {
      await Promise.all(calls.slice(i, i + CONCURRENCY).map((call) => call()));
    }
    for (const [keyspace, n] of counts) this.o.telemetry.emit({ type: "cdc_invalidated", keyspace, n });
    return out;
  }
}
