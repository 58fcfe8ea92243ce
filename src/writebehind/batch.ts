/**
 * Applying one batch of queued writes to PostgreSQL: coalesced per key (the newest version wins, so the
 * whole batch is one statement), settled in Redis once PostgreSQL holds it. When PostgreSQL refuses the
 * batch for good, it is split in halves until the refused key is alone; that key's write counts an attempt
 * and waits in the pending entries list for its next try, or after max attempts goes to the dead letters,
 * and the key's older writes of the batch are tried in its place. Other errors (PostgreSQL or Redis
 * unreachable) are thrown: the caller retries the writes still left in the batch.
 */
import { StoreRejectedError } from "../errors.js";
import type { Logger } from "../log.js";
import type { TableStore, VersionedOp } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";
import { auditEntryOf } from "./audit-tags.js";
import type { QueuedWrite } from "./keys.js";
import type { WriteQueue } from "./queue.js";

export interface BatchDeps {
  keyspace: string;
  queue: WriteQueue;
  store: TableStore;
  telemetry: Telemetry;
  log: Logger;
  maxAttempts: number;
  /** the keyspace keeps an audit log: the flush writes the rows of the writes it applies */
  audit: boolean;
  /**
   * A write of this key is about to be dead-lettered, and a cache entry it had to become a tombstone at
   * `version`: called first, so that once the letter is listed and the write settled, no daemon holds a
   * near copy of the refused value (a copy refused at `version` can not land again either).
   */
  onDeadLetter(key: string, version: number): Promise<void>;
}

export class Batch {
  /** writes not yet settled, dead-lettered or put back */
  readonly left: Set<QueuedWrite>;
  statements = 0;
  settled = 0;
  deadLettered = 0;
  deferred = 0;

  constructor(writes: QueuedWrite[]) {
    this.left = new Set(writes);
  }

  /** Applies what is left; throws on an error that is worth retrying. */
  async apply(deps: BatchDeps): Promise<void> {
    if (this.left.size > 0) await this.applyGroups(groupByKey([...this.left]), deps);
  }

  private async applyGroups(groups: QueuedWrite[][], deps: BatchDeps): Promise<void> {
    const ops = groups.map((g) => toOp(g[g.length - 1]!));
    this.statements++;
    let changed: number;
    try {
      // Every write of a group is audited once its newest lands: the older ones were coalesced into it.
      changed = await deps.store.applyVersioned(
        ops,
        deps.audit ? groups.flat().map(auditEntryOf) : undefined,
      );
    } catch (err) {
      if (!(err instanceof StoreRejectedError)) throw err;
      if (groups.length > 1) {
        const mid = Math.ceil(groups.length / 2);
        await this.applyGroups(groups.slice(0, mid), deps);
        await this.applyGroups(groups.slice(mid), deps);
      } else {
        await this.refused(groups[0]!, err, deps);
      }
      return;
    }
    // Fewer rows changed than writes: replays (already applied), deletes of absent rows, or writes that
    // found something newer in PostgreSQL.
    const superseded = changed < ops.length ? await this.superseded(ops, deps) : new Map<string, number>();
    const writes = groups.flat().filter((w) => !superseded.has(w.key));
    await deps.queue.settle(
      writes,
      ops.filter((o) => !superseded.has(o.key)).map((o) => ({ key: o.key, version: o.version })),
    );
    for (const w of writes) this.left.delete(w);
    this.settled += writes.length;
    for (const g of groups) {
      const current = superseded.get(g[0]!.key);
      if (current !== undefined) await this.supersede(g, current, deps);
    }
  }

  /**
   * Keys PostgreSQL holds above the write's version, not by a newer write of this queue (one still pending
   * here): someone else wrote the row, and the acknowledged write did not land.
   */
  private async superseded(ops: VersionedOp[], deps: BatchDeps): Promise<Map<string, number>> {
    const newer = await deps.store.newerThan(ops);
    if (newer.size === 0) return newer;
    const keys = [...newer.keys()];
    const pending = await deps.queue.pendingMany(keys);
    keys.forEach((key, i) => {
      const p = pending[i];
      if (p && p.version >= newer.get(key)!) newer.delete(key);
    });
    return newer;
  }

  /** A superseded write goes to the dead letters (never a silent success); its older writes are settled. */
  private async supersede(group: QueuedWrite[], current: number, deps: BatchDeps): Promise<void> {
    const newest = group[group.length - 1]!;
    const reason = `superseded: PostgreSQL already holds version ${current} of the key, above this write's ${newest.version}, written by someone else`;
    const rest = group.slice(0, -1);
    if (rest.length > 0) {
      await deps.queue.settle(rest, []);
      for (const w of rest) this.left.delete(w);
      this.settled += rest.length;
    }
    await deps.onDeadLetter(newest.key, newest.version + 1);
    const moved = await deps.queue.deadLetter(newest, reason, 0);
    this.left.delete(newest);
    if (!moved) return;
    this.deadLettered++;
    deps.telemetry.emit({ type: "wb_superseded", keyspace: deps.keyspace });
    deps.telemetry.emit({ type: "wb_dead_letter", keyspace: deps.keyspace, key: newest.key, reason });
    deps.log.warn(
      { keyspace: deps.keyspace, id: newest.id, version: newest.version, current },
      "write-behind: a write found a newer row written by someone else; it went to the dead letters",
    );
  }

  private async refused(group: QueuedWrite[], err: StoreRejectedError, deps: BatchDeps): Promise<void> {
    const newest = group[group.length - 1]!;
    const attempts = await deps.queue.countAttempt(newest.id);
    if (attempts < deps.maxAttempts) {
      // Left in the pending entries list: claimed again once idle, and tried anew.
      for (const w of group) this.left.delete(w);
      this.deferred += group.length;
      deps.log.info(
        { keyspace: deps.keyspace, attempts, reason: err.message },
        "write-behind: PostgreSQL refused a write; it will be tried again",
      );
      return;
    }
    await deps.onDeadLetter(newest.key, newest.version + 1);
    const moved = await deps.queue.deadLetter(newest, err.message, attempts);
    this.left.delete(newest);
    if (moved) {
      this.deadLettered++;
      deps.telemetry.emit({
        type: "wb_dead_letter",
        keyspace: deps.keyspace,
        key: newest.key,
        reason: err.message,
      });
      deps.log.warn(
        { keyspace: deps.keyspace, id: newest.id, attempts, reason: err.message },
        "write-behind: a write PostgreSQL refused for good went to the dead letters",
      );
    }
    const rest = group.slice(0, -1);
    if (rest.length > 0) await this.applyGroups([rest], deps);
  }
}

/** The writes of each key, oldest first. */
export function groupByKey(writes: QueuedWrite[]): QueuedWrite[][] {
  const groups = new Map<string, QueuedWrite[]>();
  for (const w of writes) {
    const g = groups.get(w.key);
    if (g) g.push(w);
    else groups.set(w.key, [w]);
  }
  for (const g of groups.values()) g.sort((a, b) => a.version - b.version);
  return [...groups.values()];
}

function toOp(w: QueuedWrite): VersionedOp {
  return { key: w.key, value: w.value, version: w.version };
}
