/**
 * write-behind: a write is acknowledged (202) once Redis holds it in the keyspace's queue, together with the
 * key's pending write and its new cache entry, all in one Lua script; the flusher (src/writebehind) puts it
 * in PostgreSQL later, batched and coalesced per key. Reads: cache, then the pending write, then PostgreSQL,
 * so an evicted cache entry never brings back an older row. See docs/write-behind.md.
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { BackendUnavailableError, QueueFullError, VersionMismatchError } from "../errors.js";
import type { AuditOp, StoredRow, WriteOrigin } from "../store/adapter.js";
import { auditTagOf } from "../writebehind/audit-tags.js";
import { nextVersion, observeVersion } from "../version.js";
import { WbConnection } from "../writebehind/connection.js";
import {
  dropDeadLetter,
  listDeadLetters,
  replayDeadLetter,
  type DeadLetter,
} from "../writebehind/dead-letters.js";
import { Flusher } from "../writebehind/flusher.js";
import { Journal, RECOVER_AFTER_MS } from "../writebehind/journal.js";
import { KeyLayout } from "../cache/layout.js";
import { partitionKeys } from "../writebehind/keys.js";
import { checkPersistence } from "../writebehind/persistence.js";
import { WriteQueue, type EnqueueItem } from "../writebehind/queue.js";
import type { PendingWrite } from "../writebehind/keys.js";
import { ReadPath } from "./read-path.js";
import type { RequestContext } from "../backend/request-context.js";
import type {
  Conditions,
  DeleteAck,
  ManyWriteAck,
  QueueStatus,
  ReadOptions,
  ReadResult,
  Strategy,
  StrategyContext,
  WriteAck,
} from "./strategy.js";

const COMMAND_TIMEOUT_MS = 2_000;
let instances = 0;

export class WriteBehindStrategy implements Strategy {
  readonly name = "write-behind";
  /** this instance's consumer name in the queue's group */
  readonly consumer: string;
  private readonly conn: WbConnection;
  private readonly blocking: WbConnection;
  /** one queue per partition (bucket): one on a single server, several on a Cluster */
  private readonly queues: WriteQueue[];
  private readonly layout: KeyLayout;
  /** writes of many keys over several partitions */
  private readonly journal: Journal;
  private recovery?: NodeJS.Timeout;
  private readonly flusher: Flusher;
  private readonly reads: ReadPath;

  constructor(private readonly ctx: StrategyContext) {
    const ks = ctx.keyspace;
    const target = ctx.redis ?? (ctx.redisUrl ? { kind: "url" as const, url: ctx.redisUrl } : undefined);
    if (!target) {
      throw new Error(`keyspace ${ks.name}: write-behind needs a Redis cache (cache.url redis://...)`);
    }
    const wb = ks.writeBehind;
    const consumer =
      (this.consumer = `${hostname()}:${process.pid}:${++instances}:${randomBytes(3).toString("hex")}`);
    this.conn = new WbConnection(target, ks.name, ctx.log, { timeoutMs: COMMAND_TIMEOUT_MS });
    this.blocking = new WbConnection(target, `${ks.name}-reader`, ctx.log, {
      timeoutMs: COMMAND_TIMEOUT_MS,
      blockMs: wb.flushIntervalMs,
    });
    const layout = (this.layout =
      target.kind === "cluster" ? KeyLayout.cluster(ctx.cachePrefix) : KeyLayout.single(ctx.cachePrefix));
    this.queues = layout
      .tags(ks.name)
      .map(
        (tag) =>
          new WriteQueue(this.conn, partitionKeys(layout, tag), ks, (key) => layout.entry(ks.name, key)),
      );
    this.journal = new Journal(this.queues, (key) => layout.bucketOf(key), ctx.log);
    this.reads = new ReadPath(
      ks,
      ctx.cache,
      ctx.telemetry,
      (key, request) => this.load(key, request),
      (keys, request) => this.loadMany(keys, request),
      { refreshAhead: false },
    );
    this.flusher = new Flusher(
      this.queues,
      this.blocking,
      ctx.store,
      ctx.telemetry,
      ctx.log,
      {
        keyspace: ks.name,
        consumer,
        flushIntervalMs: wb.flushIntervalMs,
        batchSize: wb.batchSize,
        maxAttempts: wb.maxAttempts,
        claimIdleMs: Math.max(4 * wb.flushIntervalMs, 1_000),
        audit: ks.audit !== undefined,
      },
      async (key, version) => {
        this.reads.forget(key);
        // The dead letter's tombstone is to replace the entry: near copies of the refused value go first.
        // A failure is logged; the letter is moved all the same (the near copies then last out their lease
        // or their ttl).
        await this.ctx.nearInvalidate?.(key, version).catch((err: unknown) => {
          ctx.log.warn(
            { keyspace: ks.name, key, err: String(err) },
            "write-behind: the near copies of a dead-lettered write could not be dropped in every daemon",
          );
        });
      },
    );
  }

  get(key: string, options?: ReadOptions): Promise<ReadResult> {
    return this.reads.get(key, options);
  }

  peek(key: string, options?: ReadOptions): ReadResult | undefined {
    return this.reads.peek(key, options);
  }

  getMany(keys: string[], options?: ReadOptions): Promise<Map<string, ReadResult>> {
    return this.reads.getMany(keys, options);
  }

  async put(key: string, value: string, conditions: Conditions, origin?: WriteOrigin): Promise<WriteAck> {
    const tag = this.tag("put", origin, conditions);
    const [version] = await this.enqueue([{ key, value, ...conditions, tag }]);
    return { status: 202, version: version! };
  }

  async delete(key: string, conditions: Conditions, origin?: WriteOrigin): Promise<DeleteAck> {
    const tag = this.tag("delete", origin, conditions);
    const [version] = await this.enqueue([{ key, value: null, ...conditions, tag }]);
    return { status: 202, version: version! };
  }

  /**
   * All or nothing: one script when the keys share a partition; over several (a Cluster), through the
   * journal (src/writebehind/journal.ts).
   */
  async putMany(items: Map<string, string>, origin?: WriteOrigin): Promise<ManyWriteAck> {
    const tag = this.tag("mset", origin);
    const list = [...items].map(([key, value]) => ({ key, value, tag }));
    let versions: number[];
    if (this.byPartition(list).length === 1) versions = await this.enqueue(list);
    else {
      const r = await this.journal.enqueue(list);
      if (r.kind === "full") {
        throw new QueueFullError(this.ctx.keyspace.name, this.retryAfter(r.depth, list.length));
      }
      versions = await this.acknowledged(list, r.versions);
    }
    const out: Record<string, number> = Object.create(null);
    list.forEach((it, i) => (out[it.key] = versions[i]!));
    return { status: 202, versions: out };
  }

  /** Resolves once PostgreSQL holds every write queued before the call (or it was dead-lettered); how many. */
  async flush(): Promise<number> {
    const { depth, lastIds } = await this.flusher.tails();
    if (lastIds.every((id) => id === null)) return 0;
    await this.flusher.drainUpTo(lastIds);
    return depth;
  }

  async pendingVersions(keys: string[]): Promise<Map<string, number>> {
    const pending = await this.pendingMany(keys);
    const out = new Map<string, number>();
    keys.forEach((key, i) => {
      const p = pending[i];
      if (p) out.set(key, p.version);
    });
    return out;
  }

  async queueStatus(): Promise<QueueStatus> {
    const all = await Promise.all(this.queues.map((q) => q.status()));
    return {
      depth: all.reduce((n, s) => n + s.depth, 0),
      oldestSeconds: Math.max(...all.map((s) => s.oldestSeconds)),
      deadLetters: all.reduce((n, s) => n + s.deadLetters, 0),
    };
  }

  /**
   * One partition: the ids are the dead-letter stream's. Several: `<partition>:<stream id>`, listed
   * partition after partition.
   */
  async listDeadLetters(count = 100, after?: string): Promise<DeadLetter[]> {
    if (this.queues.length === 1) return listDeadLetters(this.queues[0]!, count, after);
    const from = after === undefined ? undefined : this.deadLetterId(after);
    const out: DeadLetter[] = [];
    for (let p = from?.partition ?? 0; p < this.queues.length && out.length < count; p++) {
      const since = from && p === from.partition ? from.id : undefined;
      for (const d of await listDeadLetters(this.queues[p]!, count - out.length, since)) {
        out.push({ ...d, id: `${p}:${d.id}` });
      }
    }
    return out;
  }

  async replayDeadLetter(id: string, origin?: WriteOrigin): Promise<number | null> {
    const at = this.deadLetterId(id);
    if (!at) return null;
    const audit = this.ctx.keyspace.audit ? { origin } : undefined;
    const replayed = await replayDeadLetter(this.queues[at.partition]!, at.id, audit);
    if (replayed !== null) await this.ctx.nearInvalidate?.(replayed.key, replayed.version);
    return replayed?.version ?? null;
  }

  async dropDeadLetter(id: string): Promise<boolean> {
    const at = this.deadLetterId(id);
    return at ? dropDeadLetter(this.queues[at.partition]!, at.id) : false;
  }

  async start(): Promise<void> {
    try {
      for (const q of this.queues) await q.ensureGroup();
      await checkPersistence(this.conn, this.ctx.log);
    } catch (err) {
      // Redis is down: the flusher keeps trying and creates the group when it can.
      this.ctx.log.warn({ err: String(err) }, "write-behind: Redis not reachable at start");
    }
    this.flusher.start();
    if (this.queues.length > 1) {
      this.recovery = setInterval(() => void this.journal.recover().catch(() => {}), RECOVER_AFTER_MS);
      this.recovery.unref();
    }
  }

  /** Drains the queue for up to deadlineMs (0: leave it to the next daemon), then closes the connections. */
  async stop(deadlineMs: number): Promise<void> {
    clearInterval(this.recovery);
    await this.flusher.stop(deadlineMs);
    await Promise.all([this.conn.close(), this.blocking.close()]);
  }

  /** Who asked, kept with each queued write when the keyspace keeps an audit log. */
  private tag(op: AuditOp, origin: WriteOrigin | undefined, conditions?: Conditions): string | undefined {
    if (!this.ctx.keyspace.audit) return undefined;
    return auditTagOf(op, origin, conditions);
  }

  /** Enqueues, looking PostgreSQL up for a condition only when neither a pending write nor the cache answers. */
  private async enqueue(items: EnqueueItem[]): Promise<number[]> {
    const ks = this.ctx.keyspace;
    for (;;) {
      const r = await this.queueOf(items[0]!.key).enqueue(items, nextVersion());
      if (r.kind === "ok") return this.acknowledged(items, r.versions);
      if (r.kind === "full") throw new QueueFullError(ks.name, this.retryAfter(r.depth, items.length));
      if (r.kind === "mismatch") throw mismatch(r.why);
      const item = items.find((i) => i.key === r.key);
      if (!item || item.base !== undefined) {
        throw new BackendUnavailableError(
          "cache",
          "The write-behind queue answered a condition it was given.",
        );
      }
      item.base = await this.baseOf(r.key);
    }
  }

  /** Queued: versions seen, loads of the keys forgotten, near copies dropped. */
  private async acknowledged(items: EnqueueItem[], versions: number[]): Promise<number[]> {
    for (const v of versions) observeVersion(v);
    for (const it of items) this.reads.forget(it.key);
    if (this.ctx.nearInvalidate) {
      await Promise.all(items.map((it, i) => this.ctx.nearInvalidate!(it.key, versions[i]!)));
    }
    return versions;
  }

  private async baseOf(key: string): Promise<string> {
    const row = await this.ctx.store.get(key);
    if (row) observeVersion(row.version);
    return row ? `e:${row.version}` : "a:0";
  }

  /** Seconds until the flusher has made room: the overflow in batches, one flush interval each. */
  private retryAfter(depth: number, n: number): number {
    const wb = this.ctx.keyspace.writeBehind;
    const overflow = Math.max(1, depth + n - wb.maxQueue);
    return Math.max(1, Math.ceil((Math.ceil(overflow / wb.batchSize) * wb.flushIntervalMs) / 1000));
  }

  private queueOf(key: string): WriteQueue {
    return this.queues[this.layout.bucketOf(key)]!;
  }

  /** The items grouped by partition, in the order each partition first appears. */
  private byPartition<T extends { key: string }>(items: T[]): T[][] {
    const groups = new Map<number, T[]>();
    for (const it of items) {
      const b = this.layout.bucketOf(it.key);
      const g = groups.get(b);
      if (g) g.push(it);
      else groups.set(b, [it]);
    }
    return [...groups.values()];
  }

  private async pendingMany(keys: string[]): Promise<(PendingWrite | null)[]> {
    if (this.queues.length === 1) return this.queues[0]!.pendingMany(keys);
    const out = new Array<PendingWrite | null>(keys.length).fill(null);
    const index = new Map(keys.map((k, i) => [k, i] as const));
    await Promise.all(
      this.byPartition(keys.map((key) => ({ key }))).map(async (group) => {
        const found = await this.queueOf(group[0]!.key).pendingMany(group.map((g) => g.key));
        group.forEach((g, j) => (out[index.get(g.key)!] = found[j]!));
      }),
    );
    return out;
  }

  /** A dead letter's partition and stream id, from the id the API shows; undefined when it is not one. */
  private deadLetterId(id: string): { partition: number; id: string } | undefined {
    if (this.queues.length === 1) return { partition: 0, id };
    const m = /^(\d+):(.+)$/.exec(id);
    const partition = m ? Number(m[1]) : -1;
    return m && partition < this.queues.length ? { partition, id: m[2]! } : undefined;
  }

  private async load(key: string, request?: RequestContext): Promise<StoredRow | null> {
    const p = await this.queueOf(key).pending(key);
    if (p) return p.value === null ? null : { key, value: p.value, version: p.version };
    return this.ctx.store.get(key, request);
  }

  private async loadMany(keys: string[], request?: RequestContext): Promise<Map<string, StoredRow>> {
    const pending = await this.pendingMany(keys);
    const out = new Map<string, StoredRow>();
    const rest: string[] = [];
    keys.forEach((key, i) => {
      const p = pending[i];
      if (!p) rest.push(key);
      else if (p.value !== null) out.set(key, { key, value: p.value, version: p.version });
    });
    if (rest.length > 0) for (const [k, row] of await this.ctx.store.getMany(rest, request)) out.set(k, row);
    return out;
  }
}

function mismatch(why: string): VersionMismatchError {
  if (why === "exists") return new VersionMismatchError("If-None-Match: * failed: the key exists.");
  if (why === "absent") return new VersionMismatchError("If-Match failed: the key does not exist.");
  return new VersionMismatchError(`If-Match failed: the current version is ${why}.`);
}
