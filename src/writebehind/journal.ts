/**
 * A write of many keys (`_mset`) whose keys fall in several partitions of a queue (a Cluster): no script
 * can reach them all, so it is made all or nothing by a journal. The whole write is first recorded in the
 * journal of its first partition (one HSET: from then on it will be queued entirely); then each
 * partition's share is queued by one script that also leaves a done-marker, so queueing a share twice
 * queues it once and answers the same versions; then the record is removed and the write acknowledged.
 * A daemon that dies (or a Redis call that fails) between the record and its removal leaves the record:
 * any daemon finds it after RECOVER_AFTER_MS and queues the shares still missing. So the write ends up
 * queued whole, never in part; the call that failed answered 503, as a write whose outcome is unknown.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../log.js";
import { nextVersion } from "../version.js";
import type { EnqueueItem, WriteQueue } from "./queue.js";

/** A record older than this is taken for one whose writer died. */
export const RECOVER_AFTER_MS = 5_000;
/** The shares of a journaled write are queued whatever the queue's depth: it was checked before the record. */
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/** key, value (null: a delete), and the audit tag when the keyspace keeps an audit log */
type Item = [string, string | null, string?];

interface Record {
  at: number;
  items: Item[];
}

export class Journal {
  constructor(
    private readonly queues: WriteQueue[],
    private readonly partitionOf: (key: string) => number,
    private readonly log: Logger,
  ) {}

  /**
   * Queues the items, grouped by partition, all or nothing; the version of each item, in order. A full
   * queue is answered before anything is recorded.
   */
  async enqueue(
    items: EnqueueItem[],
  ): Promise<{ kind: "ok"; versions: number[] } | { kind: "full"; depth: number }> {
    const record: Record = { at: Date.now(), items: items.map((it) => itemOf(it)) };
    const groups = this.groups(record.items);
    for (const [p, group] of groups) {
      const { depth } = await this.queues[p]!.status();
      if (depth + group.length > this.queues[p]!.ks.writeBehind.maxQueue) return { kind: "full", depth };
    }
    const id = randomBytes(8).toString("hex");
    const home = this.queues[this.partitionOf(items[0]!.key)]!;
    await home.conn.call("HSET", (redis) => redis.hset(home.keys.journal, id, JSON.stringify(record)));
    const versions = await this.queueShares(id, groups);
    await home.conn.call("HDEL", (redis) => redis.hdel(home.keys.journal, id));
    return { kind: "ok", versions: items.map((it) => versions.get(it.key)!) };
  }

  /** Queues the missing shares of records left by writers that died; how many records were completed. */
  async recover(): Promise<number> {
    let done = 0;
    for (const q of this.queues) {
      const all = await q.conn.call("HGETALL", (redis) => redis.hgetall(q.keys.journal));
      for (const [id, text] of Object.entries(all)) {
        let record: Record;
        try {
          record = JSON.parse(text) as Record;
        } catch {
          await q.conn.call("HDEL", (redis) => redis.hdel(q.keys.journal, id));
          continue;
        }
        if (Date.now() - record.at < RECOVER_AFTER_MS) continue;
        await this.queueShares(id, this.groups(record.items));
        await q.conn.call("HDEL", (redis) => redis.hdel(q.keys.journal, id));
        this.log.warn(
          { writes: record.items.length },
          "write-behind: queued the rest of a write its daemon left half done",
        );
        done++;
      }
    }
    return done;
  }

  private async queueShares(id: string, groups: Map<number, Item[]>): Promise<Map<string, number>> {
    const versions = new Map<string, number>();
    for (const [p, group] of groups) {
      const q = this.queues[p]!;
      const items = group.map(([key, value, tag]) => ({ key, value, tag }));
      const r = await q.enqueue(items, nextVersion(), NO_LIMIT, `${q.keys.done}${id}`);
      if (r.kind !== "ok") throw new Error(`unexpected answer ${r.kind} to a journaled write`);
      group.forEach(([key], i) => versions.set(key, r.versions[i]!));
    }
    return versions;
  }

  private groups(items: Item[]): Map<number, Item[]> {
    const out = new Map<number, Item[]>();
    for (const it of items) {
      const p = this.partitionOf(it[0]);
      const g = out.get(p);
      if (g) g.push(it);
      else out.set(p, [it]);
    }
    return out;
  }
}

function itemOf(it: EnqueueItem): Item {
  return it.tag === undefined ? [it.key, it.value] : [it.key, it.value, it.tag];
}
