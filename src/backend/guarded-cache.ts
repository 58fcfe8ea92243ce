/**
 * A CacheAdapter that sends every call of the one it wraps through a BackendGuard. Its connection events
 * are those of the adapter underneath, plus "down" whenever a call fails for the cache's own reasons
 * (timeout, unreachable, breaker open): a hung Redis keeps its connection open.
 */
import type {
  CacheAdapter,
  CacheEntry,
  CacheWrite,
  ConnectionState,
  GetOptions,
  SetOptions,
  TrustBoard,
} from "../cache/adapter.js";
import { BackendUnavailableError } from "../errors.js";
import { BackendTimeoutError, type BackendGuard } from "./guard.js";
import type { RequestContext } from "./request-context.js";

export class GuardedCache implements CacheAdapter {
  private readonly listeners = new Set<(state: ConnectionState) => void>();

  constructor(
    private readonly inner: CacheAdapter,
    readonly guard: BackendGuard,
  ) {}

  onConnectionChange(listener: (state: ConnectionState) => void): () => void {
    this.listeners.add(listener);
    const off = this.inner.onConnectionChange?.(listener);
    return () => {
      this.listeners.delete(listener);
      off?.();
    };
  }

  get kind(): string {
    return this.inner.kind;
  }

  /** The adapter underneath, for code that needs its own connection details (write-behind). */
  get unguarded(): CacheAdapter {
    return this.inner;
  }

  get(keyspace: string, key: string, options?: GetOptions): Promise<CacheEntry | null> {
    return this.run("get", () => this.inner.get(keyspace, key, options), options?.request);
  }

  getMany(keyspace: string, keys: string[], options?: GetOptions): Promise<(CacheEntry | null)[]> {
    return this.run("get_many", () => this.inner.getMany(keyspace, keys, options), options?.request);
  }

  setIfNewer(
    keyspace: string,
    key: string,
    entry: CacheEntry,
    ttlMs: number,
    options?: SetOptions,
  ): Promise<boolean> {
    return this.run(
      "set",
      () => this.inner.setIfNewer(keyspace, key, entry, ttlMs, options),
      options?.request,
    );
  }

  setManyIfNewer(keyspace: string, items: readonly CacheWrite[]): Promise<boolean[]> {
    return this.run("set", () => this.inner.setManyIfNewer(keyspace, items));
  }

  generation(): number {
    return this.inner.generation();
  }

  delete(keyspace: string, key: string): Promise<void> {
    return this.run("delete", () => this.inner.delete(keyspace, key));
  }

  deleteIf(keyspace: string, key: string, observed: Pick<CacheEntry, "kind" | "version">): Promise<boolean> {
    return this.run("delete", () => this.inner.deleteIf(keyspace, key, observed));
  }

  deleteKeyspace(keyspace: string): Promise<number> {
    return this.run("delete_keyspace", () => this.inner.deleteKeyspace(keyspace));
  }

  sampleKeys(keyspace: string, n: number): Promise<string[]> {
    return this.run("sample", () => this.inner.sampleKeys(keyspace, n));
  }

  ping(): Promise<void> {
    return this.run("ping", () => this.inner.ping());
  }

  get takeFillLease(): CacheAdapter["takeFillLease"] {
    const inner = this.inner;
    if (!inner.takeFillLease) return undefined;
    return (ks, key, ms) => this.run("fill_lease", () => inner.takeFillLease!(ks, key, ms));
  }

  get watchFill(): CacheAdapter["watchFill"] {
    const inner = this.inner;
    if (!inner.watchFill) return undefined;
    return (ks, key) => this.run("get", () => inner.watchFill!(ks, key));
  }

  get releaseFillLease(): CacheAdapter["releaseFillLease"] {
    const inner = this.inner;
    if (!inner.releaseFillLease) return undefined;
    return (ks, key, token) => this.run("fill_lease", () => inner.releaseFillLease!(ks, key, token));
  }

  get readNearRegistry(): CacheAdapter["readNearRegistry"] {
    const inner = this.inner.readNearRegistry;
    if (!inner) return undefined;
    return () => this.run("near_registry", inner);
  }

  get trustBoard(): TrustBoard | undefined {
    const inner = this.inner.trustBoard;
    if (!inner) return undefined;
    return {
      read: (board, readerMs) => this.run("trust", () => inner.read(board, readerMs)),
      claim: (board, me, ttlMs, failing) => this.run("trust", () => inner.claim(board, me, ttlMs, failing)),
      swept: (board, ticket) => this.run("trust", () => inner.swept(board, ticket)),
      release: (board, me) => this.run("trust", () => inner.release(board, me)),
    };
  }

  private run<T>(op: string, call: () => Promise<T>, request?: RequestContext): Promise<T> {
    return this.guard.run(op, call, undefined, request).catch(this.down);
  }

  /** A failure of the cache's own tells the listeners it is down; every error goes on to the caller. */
  private readonly down = (err: unknown): never => {
    if (
      this.listeners.size > 0 &&
      (err instanceof BackendUnavailableError || err instanceof BackendTimeoutError) &&
      err.backend === "cache"
    ) {
      for (const listener of this.listeners) listener("down");
    }
    throw err;
  };

  async close(): Promise<void> {
    this.guard.stop();
    await this.inner.close();
  }
}
