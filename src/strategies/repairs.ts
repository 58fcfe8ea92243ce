/**
 * Cache updates that failed after PostgreSQL committed (cache down, timeout). Each is retried in the
 * background with exponential backoff and jitter; while one is pending, reads of that key in this daemon
 * bypass the cache so they never see the value the write replaced. When retries run out, the fallback runs
 * (invalidate), and when even that fails the key stays marked until the cache answers again.
 */
import type { Telemetry } from "../telemetry.js";
import type { Logger } from "../log.js";

export interface RepairOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
}

interface Pending {
  attempt: number;
  since: number;
  timer?: NodeJS.Timeout;
  action: () => Promise<void>;
  fallback: () => Promise<void>;
  done?: () => void;
}

export class CacheRepairs {
  private readonly pending = new Map<string, Pending>();
  private stopped = false;

  constructor(
    private readonly keyspace: string,
    private readonly telemetry: Telemetry,
    private readonly log: Logger,
    private readonly options: RepairOptions = { baseDelayMs: 50, maxDelayMs: 5_000, maxAttempts: 8 },
  ) {}

  /** Whether reads of this key must skip the cache. */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  get size(): number {
    return this.pending.size;
  }

  /**
   * Retry `action` until it succeeds; after maxAttempts run `fallback` (until it succeeds). A newer repair
   * of the key replaces an older one. `done` is called once the repair (or the fallback) succeeded.
   */
  schedule(key: string, action: () => Promise<void>, fallback: () => Promise<void>, done?: () => void): void {
    const old = this.pending.get(key);
    if (old?.timer) clearTimeout(old.timer);
    const p: Pending = { attempt: 0, since: old?.since ?? Date.now(), action, fallback, done };
    this.pending.set(key, p);
    this.arm(key, p);
  }

  private arm(key: string, p: Pending): void {
    if (this.stopped) return;
    const exp = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** p.attempt);
    const delay = exp / 2 + Math.random() * (exp / 2);
    p.timer = setTimeout(() => void this.run(key, p), delay);
    p.timer.unref();
  }

  private async run(key: string, p: Pending): Promise<void> {
    if (this.pending.get(key) !== p) return;
    p.attempt++;
    const giveUp = p.attempt > this.options.maxAttempts;
    try {
      await (giveUp ? p.fallback() : p.action());
      p.done?.();
      if (this.pending.get(key) !== p) return;
      this.pending.delete(key);
      this.telemetry.emit({
        type: "cache_repair",
        keyspace: this.keyspace,
        outcome: giveUp ? "invalidated" : "repaired",
        staleSeconds: (Date.now() - p.since) / 1000,
      });
    } catch (err) {
      if (p.attempt === this.options.maxAttempts) {
        this.log.warn(
          { keyspace: this.keyspace, err: String(err) },
          "cache repair retries ran out; invalidating",
        );
      }
      this.arm(key, p);
    }
  }

  /** Stops the timers; repairs not done are logged (the checker finds what is left). */
  stop(): void {
    this.stopped = true;
    for (const p of this.pending.values()) if (p.timer) clearTimeout(p.timer);
    if (this.pending.size > 0) {
      this.log.warn(
        { keyspace: this.keyspace, pending: this.pending.size },
        "cache repairs left at shutdown",
      );
    }
    this.pending.clear();
  }
}
