/**
 * Where every sidecache key lives in Redis: the one place that knows the key layout.
 *
 * A key of a keyspace belongs to a bucket, and everything that must be touched together with it (its cache
 * entry, its fill lease, the incarnation marker that guards it, the write-behind queue it is queued in)
 * carries the bucket's hash tag, so one Lua script may touch them all on a Cluster. On one server (or
 * through Sentinel) a keyspace is one bucket, tagged `{<keyspace>}`. On a Cluster it is CLUSTER_BUCKETS
 * buckets tagged `{<keyspace>:<n>}`, whose slots spread the keyspace over the shards.
 */
import calculateSlot from "cluster-key-slot";

/** Buckets per keyspace on a Cluster: each is a slot, so a keyspace reaches up to this many shards. */
export const CLUSTER_BUCKETS = 16;

export class KeyLayout {
  constructor(
    readonly prefix: string,
    /** 1: one server; CLUSTER_BUCKETS on a Cluster */
    readonly buckets: number,
  ) {}

  static single(prefix: string): KeyLayout {
    return new KeyLayout(prefix, 1);
  }

  static cluster(prefix: string): KeyLayout {
    return new KeyLayout(prefix, CLUSTER_BUCKETS);
  }

  /** The bucket of a key: 0 on one server. */
  bucketOf(key: string): number {
    return this.buckets === 1 ? 0 : calculateSlot(key) % this.buckets;
  }

  /** The hash tag (without braces) of a bucket of the keyspace. */
  tag(keyspace: string, bucket: number): string {
    return this.buckets === 1 ? keyspace : `${keyspace}:${bucket}`;
  }

  /** The hash tag of the key's bucket. */
  tagOf(keyspace: string, key: string): string {
    return this.tag(keyspace, this.bucketOf(key));
  }

  /** Every tag of the keyspace, bucket 0 first. */
  tags(keyspace: string): string[] {
    return Array.from({ length: this.buckets }, (_, b) => this.tag(keyspace, b));
  }

  /** The cache entry of a key. */
  entry(keyspace: string, key: string): string {
    return `${this.entryBase(this.tagOf(keyspace, key))}${key}`;
  }

  /** What every entry of a bucket starts with. */
  entryBase(tag: string): string {
    return `${this.prefix}:kv:{${tag}}:`;
  }

  /** A SCAN MATCH pattern for every entry of the keyspace, in any bucket. */
  entryPattern(keyspace: string): string {
    const ks = escapeGlob(keyspace);
    const p = escapeGlob(this.prefix);
    return this.buckets === 1 ? `${p}:kv:{${ks}}:*` : `${p}:kv:{${ks}:*}:*`;
  }

  /** The key of a Redis key found by entryPattern. */
  keyOfEntry(redisKey: string): string {
    return redisKey.slice(redisKey.indexOf("}:", this.prefix.length + 4) + 2);
  }

  /** The key's fill lease: in the entry's slot. */
  fillLease(keyspace: string, key: string): string {
    return `${this.prefix}:fl:{${this.tagOf(keyspace, key)}}:${key}`;
  }

  /** The incarnation marker that guards a bucket (src/cache/incarnation.ts). */
  marker(tag: string): string {
    return `${this.prefix}:inc:{${tag}}`;
  }

  /** What the write-behind queue of a bucket's keys starts with (src/writebehind/keys.ts). */
  queueBase(tag: string): string {
    return `${this.prefix}:wb:{${tag}}:`;
  }
}

export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}
