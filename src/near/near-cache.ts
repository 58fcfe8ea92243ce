/**
 * The cache as the daemon sees it when keyspaces have a near cache: a CacheAdapter in front of the Redis
 * one. Reads of such a keyspace are answered from the daemon's memory while that copy may be vouched for
 * (coherent: the daemon's lease runs; bounded: its channel was heard within max_staleness), and copied
 * there from Redis otherwise. Every change that is not a fill (a write's entry, a tombstone, a repair,
 * a removal) drops the local copy and is announced to the other daemons before the call returns (coherent:
 * once each dropped its copy or its lease ran out). A new Redis incarnation drops every copy.
 */
import type {
  CacheAdapter,
  CacheEntry,
  CacheWrite,
  ConnectionState,
  GetOptions,
  SetOptions,
} from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import type { Telemetry } from "../telemetry.js";
import type { Coherence } from "./coherence.js";
import { RegistryReader, REGISTRY_VIEW_MS } from "./registry.js";
import { NearStore } from "./store.js";

/** The longest a write waits for a channel opened for writing only to subscribe before it announces. */
const WRITER_READY_MS = 1_000;

export class NearCache implements CacheAdapter {
  private readonly stores = new Map<string, NearStore>();
  private generationSeen: number;
  private readonly registry: RegistryReader | undefined;

  /**
   * coherence: the channel of a daemon that near-caches keyspaces, or undefined: opened with `open` the
   * first time a write must be announced for another daemon's near cache (a writer only).
   */
  constructor(
    private readonly inner: CacheAdapter,
    private coherence: Coherence | undefined,
    private readonly open: () => Coherence,
    private readonly telemetry: Telemetry,
  ) {
    this.generationSeen = inner.generation();
    const read = inner.readNearRegistry;
    this.registry = read ? new RegistryReader(read) : undefined;
  }

  get kind(): string {
    return this.inner.kind;
  }

  /** Sets the keyspaces that keep a near cache (start-up and reload); others pass straight through. */
  configure(keyspaces: KeyspaceConfig[]): void {
    const next = new Map<string, NearStore>();
    for (const ks of keyspaces) {
      if (!ks.near) continue;
      const old = this.stores.get(ks.name);
      next.set(
        ks.name,
        old && JSON.stringify(old.config) === JSON.stringify(ks.near) ? old : new NearStore(ks.near),
      );
    }
    this.stores.clear();
    for (const [k, v] of next) this.stores.set(k, v);
    const names = (mode: string) => [...next].filter(([, s]) => s.config.mode === mode).map(([n]) => n);
    this.coherence?.setKeyspaces(names("coherent"), names("bounded"));
  }

  /** Entries and bytes per keyspace, for the gauges. */
  sizes(): { keyspace: string; entries: number; bytes: number }[] {
    return [...this.stores].map(([keyspace, s]) => ({ keyspace, entries: s.size, bytes: s.bytes }));
  }

  /** Another daemon's invalidation (the coherence channel). */
  dropped(keyspace: string, key: string | null, version: number, sentAt: number): void {
    const store = this.stores.get(keyspace);
    if (!store) return;
    if (key === null) store.clear();
    else store.invalidate(key, version);
    this.telemetry.emit({
      type: "near_invalidation",
      keyspace,
      seconds: Math.max(0, (Date.now() - sentAt) / 1000),
    });
  }

  /** Every copy of every keyspace goes (a lapsed lease, a lost channel, a new Redis incarnation). */
  dropAll(): void {
    for (const s of this.stores.values()) s.clear();
  }

  peek(keyspace: string, key: string, options?: GetOptions): CacheEntry | undefined {
    const store = this.storeFor(keyspace, options);
    return store && this.usable(store, keyspace) ? this.hit(store, keyspace, key) : undefined;
  }

  get(keyspace: string, key: string, options?: GetOptions): Promise<CacheEntry | null> {
    const store = this.storeFor(keyspace, options);
    // not near-cached: straight through, no async frame of its own
    if (!store) return this.inner.get(keyspace, key, options);
    return this.nearGet(store, keyspace, key, options);
  }

  private async nearGet(
    store: NearStore,
    keyspace: string,
    key: string,
    options: GetOptions | undefined,
  ): Promise<CacheEntry | null> {
    const usable = this.usable(store, keyspace);
    const near = usable ? this.hit(store, keyspace, key) : undefined;
    if (near) return near;
    this.telemetry.emit({ type: "near_miss", keyspace });
    const epoch = store.epoch;
    const entry = await this.inner.get(keyspace, key, options);
    if (entry && usable) store.put(key, entry, epoch);
    return entry;
  }

  async getMany(keyspace: string, keys: string[], options?: GetOptions): Promise<(CacheEntry | null)[]> {
    const store = this.storeFor(keyspace, options);
    if (!store) return this.inner.getMany(keyspace, keys, options);
    const usable = this.usable(store, keyspace);
    const out: (CacheEntry | null)[] = keys.map((k) => {
      const near = usable ? store.get(k) : undefined;
      return near ?? null;
    });
    const missing = keys.filter((_, i) => out[i] === null);
    const hits = keys.length - missing.length;
    if (hits > 0) this.telemetry.emit({ type: "near_hit", keyspace, n: hits });
    if (missing.length === 0) return out;
    this.telemetry.emit({ type: "near_miss", keyspace, n: missing.length });
    const epoch = store.epoch;
    const got = await this.inner.getMany(keyspace, missing, options);
    let j = 0;
    return out.map((e, i) => {
      if (e) return e;
      const entry = got[j++] ?? null;
      if (entry && usable) store.put(keys[i]!, entry, epoch);
      return entry;
    });
  }

  async setIfNewer(
    keyspace: string,
    key: string,
    entry: CacheEntry,
    ttlMs: number,
    options?: SetOptions,
  ): Promise<boolean> {
    const store = this.stores.get(keyspace);
    if (options?.fill) {
      const epoch = store?.epoch ?? 0;
      const taken = await this.inner.setIfNewer(keyspace, key, entry, ttlMs, options);
      if (taken && store && this.usable(store, keyspace)) store.put(key, entry, epoch);
      return taken;
    }
    try {
      return await this.inner.setIfNewer(keyspace, key, entry, ttlMs, options);
    } finally {
      // Also when Redis failed: the other daemons' copies may predate the write all the same.
      await this.invalidate(keyspace, key, entry.version);
    }
  }

  async setManyIfNewer(keyspace: string, items: readonly CacheWrite[]): Promise<boolean[]> {
    try {
      return await this.inner.setManyIfNewer(keyspace, items);
    } finally {
      await Promise.all(items.map((it) => this.invalidate(keyspace, it.key, it.entry.version)));
    }
  }

  async delete(keyspace: string, key: string): Promise<void> {
    try {
      await this.inner.delete(keyspace, key);
    } finally {
      await this.invalidate(keyspace, key, 0);
    }
  }

  async deleteKeyspace(keyspace: string): Promise<number> {
    try {
      return await this.inner.deleteKeyspace(keyspace);
    } finally {
      await this.invalidate(keyspace, null, 0);
    }
  }

  async deleteIf(
    keyspace: string,
    key: string,
    observed: Pick<CacheEntry, "kind" | "version">,
  ): Promise<boolean> {
    try {
      return await this.inner.deleteIf(keyspace, key, observed);
    } finally {
      await this.invalidate(keyspace, key, observed.version);
    }
  }

  /**
   * Drops the local copy and tells the other daemons (coherent: waits for them). A keyspace this daemon
   * does not near-cache is announced when another daemon registered a near cache of it; the
   * registry's reading must be younger than REGISTRY_VIEW_MS when the call returns (the write is then
   * acknowledged), so a slow or frozen turn reads it again. Write-behind, which writes Redis by its own
   * scripts, calls it directly.
   */
  async invalidate(keyspace: string, key: string | null, version: number): Promise<void> {
    const store = this.stores.get(keyspace);
    if (store) {
      if (key === null) store.clear();
      else store.invalidate(key, version);
      if (store.config.mode === "coherent") {
        await (await this.writer()).invalidate(keyspace, key, version, true, store.config.leaseMs);
        return;
      }
    }
    for (;;) {
      const view = this.registry ? await this.registry.current() : undefined;
      const leaseMs = view?.leases.get(keyspace);
      // a lease: some daemon's near cache of it is coherent (waited for); 0: only bounded ones
      if (leaseMs !== undefined) {
        await (await this.writer()).invalidate(keyspace, key, version, leaseMs > 0, leaseMs);
        return;
      }
      if (!view || performance.now() - view.sentAt < REGISTRY_VIEW_MS) break;
    }
    // bounded here, and the registry not read (no Redis registry): published, not waited for
    if (store) await (await this.writer()).invalidate(keyspace, key, version, false);
  }

  /** The channel for announcing writes: this daemon's own, or one opened for writing only. */
  private async writer(): Promise<Coherence> {
    if (!this.coherence) this.coherence = this.open();
    // Acknowledgements come through the subscription: without it the write would wait out every lease.
    await this.coherence.ready(WRITER_READY_MS);
    return this.coherence;
  }

  generation(): number {
    return this.inner.generation();
  }

  sampleKeys(keyspace: string, n: number): Promise<string[]> {
    return this.inner.sampleKeys(keyspace, n);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  get takeFillLease(): CacheAdapter["takeFillLease"] {
    return this.inner.takeFillLease?.bind(this.inner);
  }

  get watchFill(): CacheAdapter["watchFill"] {
    return this.inner.watchFill?.bind(this.inner);
  }

  get releaseFillLease(): CacheAdapter["releaseFillLease"] {
    return this.inner.releaseFillLease?.bind(this.inner);
  }

  get trustBoard(): CacheAdapter["trustBoard"] {
    return this.inner.trustBoard;
  }

  onConnectionChange(listener: (state: ConnectionState) => void): () => void {
    return this.inner.onConnectionChange?.(listener) ?? (() => {});
  }

  async close(): Promise<void> {
    await this.coherence?.stop();
    await this.inner.close();
  }

  private storeFor(keyspace: string, options?: GetOptions): NearStore | undefined {
    if (options?.skipNear) return undefined;
    const generation = this.inner.generation();
    if (generation !== this.generationSeen) {
      this.generationSeen = generation;
      this.dropAll();
    }
    return this.stores.get(keyspace);
  }

  /** The key's copy when it may be served, counted as a near hit. */
  private hit(store: NearStore, keyspace: string, key: string): CacheEntry | undefined {
    const near = store.get(key);
    if (near) this.telemetry.emit({ type: "near_hit", keyspace });
    return near;
  }

  private usable(store: NearStore, keyspace: string): boolean {
    const c = this.coherence;
    if (!c) return false;
    const vouched =
      store.config.mode === "coherent" ? c.leaseValid() : c.healthyWithin(store.config.maxStalenessMs);
    return vouched && c.registeredEverywhere(keyspace);
  }
}
