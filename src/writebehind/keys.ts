/**
 * Where write-behind keeps its state in Redis, and how one write is written down there. The queue is
 * partitioned like the cache (src/cache/layout.ts): one partition per bucket, whose keys carry the bucket's
 * hash tag like the cache entries of its keys, so one Lua script may touch them all. On one server a
 * keyspace is one bucket, `{keyspace}`; on a Cluster the partitions spread over the shards.
 */
import { KeyLayout } from "../cache/layout.js";

/** The consumer group every daemon's flusher reads the stream through. */
export const GROUP = "flushers";

export interface WbKeys {
  /** the queue: a stream of writes (fields k, n, and v for a put) */
  stream: string;
  /** key → the newest write not yet in PostgreSQL: `<version>:p:<value>` or `<version>:d:` */
  pending: string;
  /** the highest version the keyspace ever issued: versions grow past it whatever the daemon's clock */
  clock: string;
  /** stream entry id → how many times PostgreSQL refused it */
  attempts: string;
  /** writes PostgreSQL refused for good (fields id, k, n, op, v, reason, attempts) */
  dead: string;
  /** the prefix of each consumer's heartbeat key (`<alive><consumer>`, with a TTL) */
  alive: string;
  /** writes that span partitions, kept here (in their first partition) until every share is queued */
  journal: string;
  /** the prefix of the done-marker of a share of such a write (`<done><id>`) */
  done: string;
  /** the consumer that looks for writes to take over (dead consumers', idle ones), with a TTL */
  claimer: string;
}

/** The keys of one partition: the bucket of the tag. */
export function partitionKeys(layout: KeyLayout, tag: string): WbKeys {
  const base = layout.queueBase(tag);
  return {
    stream: `${base}stream`,
    pending: `${base}pending`,
    clock: `${base}clock`,
    attempts: `${base}attempts`,
    dead: `${base}dead`,
    alive: `${base}alive:`,
    journal: `${base}journal`,
    done: `${base}done:`,
    claimer: `${base}claimer`,
  };
}

/** The keys of a keyspace's queue on one server (a single partition). */
export function wbKeys(prefix: string, keyspace: string): WbKeys {
  const layout = KeyLayout.single(prefix);
  return partitionKeys(layout, layout.tag(keyspace, 0));
}

/** One queued write. */
export interface QueuedWrite {
  /** the stream entry id */
  id: string;
  key: string;
  version: number;
  /** raw JSON text; null for a delete */
  value: string | null;
  /** who asked, for the audit log (audit-tags.ts); absent when the keyspace kept no audit log then */
  tag?: string;
}

/** The write of one stream entry; null when the entry is not one of ours (or was deleted). */
export function parseEntry(id: string, fields: string[] | null): QueuedWrite | null {
  if (!fields) return null;
  let key: string | undefined;
  let version: number | undefined;
  let value: string | null = null;
  let tag: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const f = fields[i];
    const v = fields[i + 1]!;
    if (f === "k") key = v;
    else if (f === "n") version = Number(v);
    else if (f === "v") value = v;
    else if (f === "a") tag = v;
  }
  if (key === undefined || version === undefined || !Number.isSafeInteger(version)) return null;
  return tag === undefined ? { id, key, version, value } : { id, key, version, value, tag };
}

export interface PendingWrite {
  version: number;
  /** raw JSON text; null for a delete */
  value: string | null;
}

/** Decodes a pending-hash field; null when it is not one. */
export function parsePending(text: string | null): PendingWrite | null {
  if (text === null) return null;
  const m = /^(\d+):([pd]):/.exec(text);
  if (!m) return null;
  const version = Number(m[1]);
  return { version, value: m[2] === "p" ? text.slice(m[0].length) : null };
}

/** Milliseconds since the epoch a stream id was made at. */
export function idTime(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}
