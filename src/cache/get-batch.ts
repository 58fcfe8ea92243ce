/**
 * The GETs of one turn of the event loop, sent at its end (setImmediate) as one MGET per bucket (its keys
 * share a hash slot, so a Cluster takes them in one command too): the cache reads of every request read
 * from the sockets in that turn cost one command and one socket write.
 *
 * Instead of ioredis' auto-pipelining, which gathers the same way but keeps each finished pipeline
 * reachable from the old generation until a full collection (ioredis gives every pipeline a hidden class
 * of its own): its commands, replies and the requests waiting on them were copied by every young
 * collection and promoted, a few megabytes per collection under a load of Redis hits.
 */
import type { Redis } from "ioredis";

/** Keys in one MGET at most; more go in the next ones (the same turn). */
const MAX_KEYS = 512;

interface Waiting {
  resolve(text: string | null): void;
  reject(err: unknown): void;
}

/** A bucket as adopted on its connection (src/cache/incarnation.ts). */
export interface Bucket {
  readonly node: Redis;
}

interface Group {
  node: Redis;
  keys: string[];
  waiting: Waiting[];
}

export class GetBatch {
  private groups = new Map<Bucket, Group>();
  private scheduled = false;

  /** The text of a Redis key of the bucket, read with the bucket's other GETs of this turn. */
  get(bucket: Bucket, redisKey: string): Promise<string | null> {
    return new Promise<string | null>((resolve, reject) => {
      let group = this.groups.get(bucket);
      if (!group) this.groups.set(bucket, (group = { node: bucket.node, keys: [], waiting: [] }));
      group.keys.push(redisKey);
      group.waiting.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const groups = this.groups;
    this.groups = new Map();
    for (const { node, keys, waiting } of groups.values()) {
      for (let from = 0; from < keys.length; from += MAX_KEYS) {
        send(node, keys.slice(from, from + MAX_KEYS), waiting.slice(from, from + MAX_KEYS));
      }
    }
  };
}

function send(node: Redis, keys: string[], waiting: Waiting[]): void {
  const failed = (err: unknown) => {
    for (const w of waiting) w.reject(err);
  };
  if (keys.length === 1) {
    node.get(keys[0]!).then(waiting[0]!.resolve, failed);
    return;
  }
  node.mget(keys).then((texts) => {
    for (let i = 0; i < waiting.length; i++) waiting[i]!.resolve(texts[i] ?? null);
  }, failed);
}
