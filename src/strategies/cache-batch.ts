/**
 * The cache writes of a keyspace's writers, gathered over one turn of the event loop and sent as one
 * setManyIfNewer at its end (setImmediate): the requests read from many sockets in one turn, and the
 * writes answered by one group commit, cost one script call and one socket write instead of one each.
 * Each entry is still taken or refused on its own; a call that fails fails every entry it carried, as it
 * would have failed each of them alone.
 */
import type { CacheAdapter, CacheEntry, CacheWrite } from "../cache/adapter.js";

/** Entries in one call at most; more go in the calls after it (the same turn). */
const MAX_BATCH = 256;

interface Queued extends CacheWrite {
  resolve(taken: boolean): void;
  reject(err: unknown): void;
}

export class CacheWriteBatch {
  private queue: Queued[] = [];

  constructor(
    private readonly cache: CacheAdapter,
    private readonly keyspace: string,
  ) {}

  /** setIfNewer of the entry, sent with the others of this turn. */
  set(key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(this.flush);
      this.queue.push({ key, entry, ttlMs, resolve, reject });
    });
  }

  private readonly flush = (): void => {
    const all = this.queue;
    this.queue = [];
    for (let from = 0; from < all.length; from += MAX_BATCH) this.send(all.slice(from, from + MAX_BATCH));
  };

  private send(items: Queued[]): void {
    this.cache.setManyIfNewer(this.keyspace, items).then(
      (taken) => items.forEach((it, i) => it.resolve(taken[i] === true)),
      (err: unknown) => items.forEach((it) => it.reject(err)),
    );
  }
}
