/** A CacheAdapter that sends every call of the one it wraps through a BackendGuard. */
import type { CacheAdapter, CacheEntry } from "../cache/adapter.js";
import type { BackendGuard } from "./guard.js";

export class GuardedCache implements CacheAdapter {
  constructor(
    private readonly inner: CacheAdapter,
    readonly guard: BackendGuard,
  ) {}

  get kind(): string {
    return this.inner.kind;
  }

  /** The adapter underneath, for code that needs its own connection details (write-behind). */
  get unguarded(): CacheAdapter {
    return this.inner;
  }

  get(keyspace: string, key: string): Promise<CacheEntry | null> {
    return this.guard.run("get", () => this.inner.get(keyspace, key));
  }

  getMany(keyspace: string, keys: string[]): Promise<(CacheEntry | null)[]> {
    return this.guard.run("get_many", () => this.inner.getMany(keyspace, keys));
  }

  setIfNewer(keyspace: string, key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    return this.guard.run("set", () => this.inner.setIfNewer(keyspace, key, entry, ttlMs));
  }

  delete(keyspace: string, key: string): Promise<void> {
    return this.guard.run("delete", () => this.inner.delete(keyspace, key));
  }

  sampleKeys(keyspace: string, n: number): Promise<string[]> {
    return this.guard.run("sample", () => this.inner.sampleKeys(keyspace, n));
  }

  ping(): Promise<void> {
    return this.guard.run("ping", () => this.inner.ping());
  }

  async close(): Promise<void> {
    this.guard.stop();
    await this.inner.close();
  }
}
