/**
 * The flusher of one write-behind keyspace in one daemon. Each round it claims writes left idle by any
 * consumer, reads new ones (blocking up to flush_interval when there are none), waits until the oldest
 * is flush_interval old unless the batch is full or a flush was asked for, and applies the batch
 * (batch_size rows at most after coalescing per key, so a hot key set fills a statement with many writes)
 * (batch.ts). When PostgreSQL or Redis can not be reached it retries the same batch with backoff and
 * jitter, keeping its entries claimed, until it goes through or the flusher stops.
 *
 * A partitioned queue (a Cluster: one partition per bucket, src/writebehind/keys.ts) is read partition by
 * partition without blocking, polled every half flush interval while all are empty; each partition's writes of a round
 * are applied as a batch of their own (they are settled by one script in that partition's slot).
 */
import { performance } from "node:perf_hooks";
import type { Logger } from "../log.js";
import type { TableStore } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";
import { Batch } from "./batch.js";
import { Claims } from "./claims.js";
import type { WbConnection } from "./connection.js";
import { idTime, type QueuedWrite } from "./keys.js";
import type { WriteQueue } from "./queue.js";
import { backoff, Sleeper } from "./sleeper.js";

export interface FlusherOptions {
  keyspace: string;
  consumer: string;
  flushIntervalMs: number;
  batchSize: number;
  maxAttempts: number;
  /** how long a write sits idle at a consumer before another takes it */
  claimIdleMs: number;
  /** the keyspace keeps an audit log */
  audit: boolean;
}

const RETRY_BASE_MS = 100;
/** A partitioned queue with nothing to do is looked at again after half a flush interval, within these. */
const POLL_MIN_MS = 50;
const POLL_MAX_MS = 500;

interface Part {
  queue: WriteQueue;
  claims: Claims;
}
/** A batch holds at most batch_size distinct keys and this many times batch_size writes. */
const WRITES_PER_ROW = 8;

export class Flusher {
  private readonly sleeper = new Sleeper();
  private readonly parts: Part[];
  private readonly retryCapMs: number;
  private loop?: Promise<void>;
  private running = false;
  private stopped = false;
  private hurry = 0;
  private progress = new Set<() => void>();

  constructor(
    queues: WriteQueue[],
    private readonly blocking: WbConnection,
    private readonly store: TableStore,
    private readonly telemetry: Telemetry,
    private readonly log: Logger,
    private readonly options: FlusherOptions,
    private readonly onDeadLetter: (key: string, version: number) => Promise<void>,
  ) {
    this.parts = queues.map((queue) => ({
      queue,
      claims: new Claims(queue, options.consumer, options.claimIdleMs, options.flushIntervalMs, log),
    }));
    // a batch being retried is touched after every wait, well before anyone may claim it
    this.retryCapMs = Math.max(RETRY_BASE_MS, Math.min(5_000, options.claimIdleMs / 2));
  }

  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.loop = this.run();
  }

  /** The newest entry of each partition (null when empty), as of one moment each. */
  async tails(): Promise<{ depth: number; lastIds: (string | null)[] }> {
    const tails = await Promise.all(this.parts.map((p) => p.queue.tail()));
    return { depth: tails.reduce((n, t) => n + t.depth, 0), lastIds: tails.map((t) => t.lastId) };
  }

  /**
   * Resolves once no write up to these stream ids (one per partition, null: none) is left in the queue:
   * PostgreSQL holds it or it was dead-lettered. Writes held by other consumers are waited for, or claimed
   * once idle.
   */
  async drainUpTo(lastIds: (string | null)[]): Promise<void> {
    this.hurry++;
    this.sleeper.wake();
    try {
      while (!this.stopped && (await this.holdsAny(lastIds))) {
        if (this.running) await this.nextRound(this.options.flushIntervalMs);
        else await this.round(true);
      }
    } finally {
      this.hurry--;
    }
  }

  /**
   * Drains the queue for up to deadlineMs (0: not at all, the writes stay queued for the next flusher),
   * then stops the loop and cuts the blocking connection. The caller closes the connections.
   */
  async stop(deadlineMs: number): Promise<void> {
    if (this.stopped) return;
    if (deadlineMs > 0) {
      const timer = new Sleeper();
      const drained = this.tails()
        .then(({ lastIds }) => this.drainUpTo(lastIds))
        .catch((err: unknown) => {
          this.log.warn({ err: String(err) }, "write-behind: could not drain the queue at shutdown");
        });
      await Promise.race([drained, timer.sleep(deadlineMs)]);
      timer.cancel();
    }
    this.stopped = true;
    this.running = false;
    this.sleeper.cancel();
    this.blocking.abort();
    await Promise.all(this.parts.map((p) => p.claims.release().catch(() => {})));
    this.wakeWaiters();
    const grace = new Sleeper();
    await Promise.race([this.loop, grace.sleep(1_000)]);
    grace.cancel();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        await this.round(this.hurry > 0);
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        // The group is gone (the stream was deleted, or Redis came back empty): make it again.
        if (String(err).includes("NOGROUP")) {
          await Promise.all(this.parts.map((p) => p.queue.ensureGroup().catch(() => {})));
        }
        failures++;
        if (failures === 1)
          this.log.warn({ err: String(err) }, "write-behind: flusher round failed; retrying");
        await this.sleeper.sleep(backoff(failures, RETRY_BASE_MS, this.retryCapMs));
      }
      this.wakeWaiters();
    }
  }

  private async holdsAny(lastIds: (string | null)[]): Promise<boolean> {
    for (let i = 0; i < this.parts.length; i++) {
      const id = lastIds[i];
      if (id && (await this.parts[i]!.queue.holdsUpTo(id))) return true;
    }
    return false;
  }

  /** One round: collect a batch and apply it, partition by partition. */
  private async round(hurry: boolean): Promise<void> {
    const batches = await this.collect(hurry);
    // Stopped without a drain: what was collected stays claimed by this consumer until someone else takes it.
    for (const [part, writes] of batches) {
      if (writes.length > 0 && !this.stopped) await this.flush(part, writes);
    }
  }

  private async collect(hurry: boolean): Promise<Map<Part, QueuedWrite[]>> {
    const { batchSize, flushIntervalMs } = this.options;
    const out = new Map<Part, QueuedWrite[]>();
    const keys = new Set<string>();
    let count = 0;
    for (const part of this.parts) {
      const taken = await part.claims.take(batchSize, hurry);
      if (taken.length === 0) continue;
      out.set(part, taken);
      count += taken.length;
      for (const w of taken) keys.add(w.key);
    }
    // Block for new writes only when there is nothing to do; a flush() caller is woken by the round's end.
    const block = count > 0 ? 0 : hurry ? Math.min(flushIntervalMs, 100) : flushIntervalMs;
    count = await this.fill(out, keys, count, block);
    if (count === 0) {
      // A partitioned queue is read without blocking: wait before looking again.
      if (this.parts.length > 1) {
        const poll = Math.min(POLL_MAX_MS, Math.max(POLL_MIN_MS, flushIntervalMs / 2));
        await this.sleeper.sleep(hurry ? 10 : poll);
      }
      return out;
    }
    // A flush() asked for since the round began skips the wait; one that has returned no longer does.
    if (this.full(count, keys) || this.hurry > 0) return out;
    let oldest = Infinity;
    for (const writes of out.values()) for (const w of writes) oldest = Math.min(oldest, idTime(w.id));
    const wait = Math.min(flushIntervalMs, Math.max(0, flushIntervalMs - (Date.now() - oldest)));
    await this.sleeper.sleep(wait);
    if (this.stopped) return out;
    await this.fill(out, keys, count, 0);
    return out;
  }

  private full(count: number, keys: Set<string>): boolean {
    return keys.size >= this.options.batchSize || count >= this.options.batchSize * WRITES_PER_ROW;
  }

  /**
   * Reads new writes until the batch is full or none are left; returns how many writes the batch holds.
   * Each read asks for no more writes than keys may still be added, so the batch never holds more than
   * batch_size distinct keys. Only a queue of one partition blocks (up to blockMs) for its first write.
   */
  private async fill(
    out: Map<Part, QueuedWrite[]>,
    keys: Set<string>,
    count: number,
    blockMs: number,
  ): Promise<number> {
    const { batchSize, consumer } = this.options;
    let block = this.parts.length === 1 ? blockMs : 0;
    let n = count;
    let idle = 0;
    for (let i = 0; !this.full(n, keys) && !this.stopped && idle < this.parts.length; i++) {
      const part = this.parts[i % this.parts.length]!;
      const want = Math.min(batchSize - keys.size, batchSize * WRITES_PER_ROW - n);
      const got = await part.queue.readNew(this.blocking, consumer, want, block);
      block = 0;
      if (got.length > 0) {
        const list = out.get(part) ?? [];
        out.set(part, list);
        for (const w of got) {
          list.push(w);
          keys.add(w.key);
        }
        n += got.length;
      }
      idle = got.length < want ? idle + 1 : 0;
    }
    return n;
  }

  private async flush(part: Part, writes: QueuedWrite[]): Promise<void> {
    const started = performance.now();
    const batch = new Batch(writes);
    const deps = {
      keyspace: this.options.keyspace,
      queue: part.queue,
      store: this.store,
      telemetry: this.telemetry,
      log: this.log,
      maxAttempts: this.options.maxAttempts,
      audit: this.options.audit,
      onDeadLetter: this.onDeadLetter,
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await batch.apply(deps);
        break;
      } catch (err) {
        // Stopping: the writes stay in the pending entries list for whoever claims them next.
        if (this.stopped) throw err;
        if (attempt === 1) {
          this.log.warn(
            { err: String(err), writes: batch.left.size },
            "write-behind: flush failed; retrying the batch",
          );
        }
        await this.sleeper.sleep(backoff(attempt, RETRY_BASE_MS, this.retryCapMs));
        if (this.stopped) throw err;
        await part.queue
          .touch(
            this.options.consumer,
            [...batch.left].map((w) => w.id),
          )
          .catch(() => {});
      }
    }
    this.telemetry.emit({
      type: "wb_flush",
      keyspace: this.options.keyspace,
      writes: batch.settled,
      statements: batch.statements,
      seconds: (performance.now() - started) / 1000,
    });
  }

  /** Resolves after the loop's next round, or after ms. */
  private nextRound(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = new Sleeper();
      const done = () => {
        timer.cancel();
        this.progress.delete(done);
        resolve();
      };
      this.progress.add(done);
      void timer.sleep(ms).then(done);
    });
  }

  private wakeWaiters(): void {
    for (const done of [...this.progress]) done();
  }
}
