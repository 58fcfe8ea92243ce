/**
 * The flusher of one write-behind keyspace in one daemon. Each round it claims writes left idle by any
 * consumer, reads new ones (blocking up to flush_interval when there are none), waits until the oldest
 * is flush_interval old unless the batch is full or a flush was asked for, and applies the batch
 * (batch_size rows at most after coalescing per key, so a hot key set fills a statement with many writes)
 * (batch.ts). When PostgreSQL or Redis can not be reached it retries the same batch with backoff and
 * jitter, keeping its entries claimed, until it goes through or the flusher stops.
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
/** A batch holds at most batch_size distinct keys and this many times batch_size writes. */
const WRITES_PER_ROW = 8;

export class Flusher {
  private readonly sleeper = new Sleeper();
  private readonly claims: Claims;
  private readonly retryCapMs: number;
  private loop?: Promise<void>;
  private running = false;
  private stopped = false;
  private hurry = 0;
  private progress = new Set<() => void>();

  constructor(
    private readonly queue: WriteQueue,
    private readonly blocking: WbConnection,
    private readonly store: TableStore,
    private readonly telemetry: Telemetry,
    private readonly log: Logger,
    private readonly options: FlusherOptions,
    private readonly onDeadLetter: (key: string) => void,
  ) {
    this.claims = new Claims(queue, options.consumer, options.claimIdleMs, options.flushIntervalMs, log);
    // a batch being retried is touched after every wait, well before anyone may claim it
    this.retryCapMs = Math.max(RETRY_BASE_MS, Math.min(5_000, options.claimIdleMs / 2));
  }

  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Resolves once no write up to this stream id is left in the queue: PostgreSQL holds it or it was
   * dead-lettered. Writes held by other consumers are waited for, or claimed once idle.
   */
  async drainUpTo(lastId: string): Promise<void> {
    this.hurry++;
    this.sleeper.wake();
    try {
      while (!this.stopped && (await this.queue.holdsUpTo(lastId))) {
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
      const drained = this.queue
        .tail()
        .then(({ lastId }) => (lastId ? this.drainUpTo(lastId) : undefined))
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
    await this.claims.release().catch(() => {});
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
        if (String(err).includes("NOGROUP")) await this.queue.ensureGroup().catch(() => {});
        failures++;
        if (failures === 1)
          this.log.warn({ err: String(err) }, "write-behind: flusher round failed; retrying");
        await this.sleeper.sleep(backoff(failures, RETRY_BASE_MS, this.retryCapMs));
      }
      this.wakeWaiters();
    }
  }

  /** One round: collect a batch and apply it. */
  private async round(hurry: boolean): Promise<void> {
    const writes = await this.collect(hurry);
    // Stopped without a drain: what was collected stays claimed by this consumer until someone else takes it.
    if (writes.length > 0 && !this.stopped) await this.flush(writes);
  }

  private async collect(hurry: boolean): Promise<QueuedWrite[]> {
    const { batchSize, flushIntervalMs } = this.options;
    const out = await this.claims.take(batchSize, hurry);
    const keys = new Set(out.map((w) => w.key));
    // Block for new writes only when there is nothing to do; a flush() caller is woken by the round's end.
    const block = out.length > 0 ? 0 : hurry ? Math.min(flushIntervalMs, 100) : flushIntervalMs;
    await this.fill(out, keys, block);
    // A flush() asked for since the round began skips the wait; one that has returned no longer does.
    if (out.length === 0 || this.full(out, keys) || this.hurry > 0) return out;
    const oldest = out.reduce((t, w) => Math.min(t, idTime(w.id)), Infinity);
    const wait = Math.min(flushIntervalMs, Math.max(0, flushIntervalMs - (Date.now() - oldest)));
    await this.sleeper.sleep(wait);
    if (this.stopped) return out;
    await this.fill(out, keys, 0);
    return out;
  }

  private full(out: QueuedWrite[], keys: Set<string>): boolean {
    return keys.size >= this.options.batchSize || out.length >= this.options.batchSize * WRITES_PER_ROW;
  }

  /**
   * Reads new writes until the batch is full or none are left. Each read asks for no more writes than keys
   * may still be added, so the batch never holds more than batch_size distinct keys.
   */
  private async fill(out: QueuedWrite[], keys: Set<string>, blockMs: number): Promise<void> {
    const { batchSize, consumer } = this.options;
    let block = blockMs;
    while (!this.full(out, keys) && !this.stopped) {
      const count = Math.min(batchSize - keys.size, batchSize * WRITES_PER_ROW - out.length);
      const got = await this.queue.readNew(this.blocking, consumer, count, block);
      block = 0;
      for (const w of got) {
        out.push(w);
        keys.add(w.key);
      }
      if (got.length < count) return;
    }
  }

  private async flush(writes: QueuedWrite[]): Promise<void> {
    const started = performance.now();
    const batch = new Batch(writes);
    const deps = {
      keyspace: this.options.keyspace,
      queue: this.queue,
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
        await this.queue
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
