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
import { cacheKey, wbKeys } from "../writebehind/keys.js";
import { checkPersistence } from "../writebehind/persistence.js";
import { WriteQueue, type EnqueueItem } from "../writebehind/queue.js";
import { ReadPath } from "./read-path.js";
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
  private readonly queue: WriteQueue;
  private readonly flusher: Flusher;
  private readonly reads: ReadPath;

  constructor(private readonly ctx: StrategyContext) {
    const ks = ctx.keyspace;
    if (!ctx.redisUrl) {
      throw new Error(`keyspace ${ks.name}: write-behind needs a Redis cache (cache.url redis://...)`);
    }
    const wb = ks.writeBehind;
    const consumer =
      (this.consumer = `${hostname()}:${process.pid}:${++instances}:${randomBytes(3).toString("hex")}`);
    this.conn = new WbConnection(ctx.redisUrl, ks.name, ctx.log, { timeoutMs: COMMAND_TIMEOUT_MS });
    this.blocking = new WbConnection(ctx.redisUrl, `${ks.name}-reader`, ctx.log, {
      timeoutMs: COMMAND_TIMEOUT_MS,
      blockMs: wb.flushIntervalMs,
    });
    this.queue = new WriteQueue(this.conn, wbKeys(ctx.cachePrefix, ks.name), ks, cacheKeyOf(ctx));
    this.reads = new ReadPath(
      ks,
      ctx.cache,
      ctx.telemetry,
      (key) => this.load(key),
      (keys) => this.loadMany(keys),
      { refreshAhead: false },
    );
    this.flusher = new Flusher(
      this.queue,
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
      (key) => {
        this.reads.forget(key);
        // the dead letter's tombstone replaced the entry: near copies of it go too
        void this.ctx.nearInvalidate?.(key, 0).catch(() => {});
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

  async putMany(items: Map<string, string>, origin?: WriteOrigin): Promise<ManyWriteAck> {
    const tag = this.tag("mset", origin);
    const list = [...items].map(([key, value]) => ({ key, value, tag }));
    const versions = await this.enqueue(list);
    const out: Record<string, number> = Object.create(null);
    list.forEach((it, i) => (out[it.key] = versions[i]!));
    return { status: 202, versions: out };
  }

  /** Resolves once PostgreSQL holds every write queued before the call (or it was dead-lettered); how many. */
  async flush(): Promise<number> {
    const { depth, lastId } = await this.queue.tail();
    if (lastId === null) return 0;
    await this.flusher.drainUpTo(lastId);
    return depth;
  }

  async pendingVersions(keys: string[]): Promise<Map<string, number>> {
    const pending = await this.queue.pendingMany(keys);
    const out = new Map<string, number>();
    keys.forEach((key, i) => {
      const p = pending[i];
      if (p) out.set(key, p.version);
    });
    return out;
  }

  queueStatus(): Promise<QueueStatus> {
    return this.queue.status();
  }

  listDeadLetters(count?: number, after?: string): Promise<DeadLetter[]> {
    return listDeadLetters(this.queue, count, after);
  }

  async replayDeadLetter(id: string, origin?: WriteOrigin): Promise<number | null> {
    const audit = this.ctx.keyspace.audit ? { origin } : undefined;
    const replayed = await replayDeadLetter(this.queue, id, audit);
    if (replayed !== null) await this.ctx.nearInvalidate?.(replayed.key, replayed.version);
    return replayed?.version ?? null;
  }

  dropDeadLetter(id: string): Promise<boolean> {
    return dropDeadLetter(this.queue, id);
  }

  async start(): Promise<void> {
    try {
      await this.queue.ensureGroup();
      await checkPersistence(this.conn, this.ctx.log);
    } catch (err) {
      // Redis is down: the flusher keeps trying and creates the group when it can.
      this.ctx.log.warn({ err: String(err) }, "write-behind: Redis not reachable at start");
    }
    this.flusher.start();
  }

  /** Drains the queue for up to deadlineMs (0: leave it to the next daemon), then closes the connections. */
  async stop(deadlineMs: number): Promise<void> {
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
      const r = await this.queue.enqueue(items, nextVersion());
      if (r.kind === "ok") {
        for (const v of r.versions) observeVersion(v);
        for (const it of items) this.reads.forget(it.key);
        if (this.ctx.nearInvalidate) {
          await Promise.all(items.map((it, i) => this.ctx.nearInvalidate!(it.key, r.versions[i]!)));
        }
        return r.versions;
      }
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

  private async load(key: string): Promise<StoredRow | null> {
    const p = await this.queue.pending(key);
    if (p) return p.value === null ? null : { key, value: p.value, version: p.version };
    return this.ctx.store.get(key);
  }

  private async loadMany(keys: string[]): Promise<Map<string, StoredRow>> {
    const pending = await this.queue.pendingMany(keys);
    const out = new Map<string, StoredRow>();
    const rest: string[] = [];
    keys.forEach((key, i) => {
      const p = pending[i];
      if (!p) rest.push(key);
      else if (p.value !== null) out.set(key, { key, value: p.value, version: p.version });
    });
    if (rest.length > 0) for (const [k, row] of await this.ctx.store.getMany(rest)) out.set(k, row);
    return out;
  }
}

function mismatch(why: string): VersionMismatchError {
  if (why === "exists") return new VersionMismatchError("If-None-Match: * failed: the key exists.");
  if (why === "absent") return new VersionMismatchError("If-Match failed: the key does not exist.");
  return new VersionMismatchError(`If-Match failed: the current version is ${why}.`);
}

/** The Redis key of a cache entry: the adapter's own when it tells, else the layout of src/cache/redis.ts. */
function cacheKeyOf(ctx: StrategyContext): (key: string) => string {
  const ks = ctx.keyspace.name;
  const cache = ctx.cache as Partial<{ redisKey(keyspace: string, key: string): string }>;
  if (typeof cache.redisKey === "function") return (key) => cache.redisKey!.call(ctx.cache, ks, key);
  return (key) => cacheKey(ctx.cachePrefix, ks, key);
}
