/**
 * write-behind's own Redis connections (the cache adapter's are not shared: the flusher blocks one on
 * XREADGROUP). Commands fail fast with BackendUnavailableError("cache") while Redis is unreachable, and a
 * command that was refused is never re-sent later behind the caller's back; the client reconnects by itself.
 */
import { openRedis, type RedisClient } from "../cache/connect.js";
import type { RedisTarget } from "../config/types.js";
import { BackendUnavailableError } from "../errors.js";
import type { Logger } from "../log.js";

export interface ConnectionOptions {
  /** per command; a blocking read is given its block time on top */
  timeoutMs: number;
  /** for a connection that blocks on XREADGROUP: the longest block */
  blockMs?: number;
}

export class WbConnection {
  readonly redis: RedisClient;
  private everReady = false;
  private lastError: Error | undefined;
  private closed = false;

  constructor(
    target: RedisTarget,
    private readonly name: string,
    private readonly log: Logger,
    private readonly options: ConnectionOptions,
  ) {
    this.redis = openRedis(target, {
      name: `sidecache-wb-${name}`,
      timeoutMs: options.timeoutMs + (options.blockMs ?? 0),
      connectTimeoutMs: Math.max(1000, options.timeoutMs),
    });
    this.redis.on("ready", () => {
      if (this.lastError) this.log.info({ connection: name }, "write-behind: Redis reachable again");
      this.everReady = true;
      this.lastError = undefined;
    });
    this.redis.on("error", (err: Error) => {
      if (!this.lastError && !this.closed) {
        this.log.warn(
          { connection: name, err: err.message },
          "write-behind: Redis unreachable; reconnecting",
        );
      }
      this.lastError = err;
    });
  }

  get ready(): boolean {
    return this.redis.status === "ready";
  }

  /** Runs one command, or fails with BackendUnavailableError("cache"). */
  async call<T>(what: string, run: (redis: RedisClient) => Promise<T>): Promise<T> {
    if (this.closed) throw this.unavailable(what, "the connection is closed");
    if (this.redis.status !== "ready" && !(await this.firstReady())) {
      throw this.unavailable(what, this.lastError?.message ?? `the connection is ${this.redis.status}`);
    }
    try {
      return await run(this.redis);
    } catch (err) {
      throw this.unavailable(what, err instanceof Error ? err.message : String(err), err);
    }
  }

  /** Closes politely when it can, and in any case stops reconnecting; no timer is left. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.redis.status === "ready") await this.redis.quit();
    } catch {
      // going away anyway
    } finally {
      this.redis.disconnect(false);
    }
  }

  /** Drops the connection at once: a blocked XREADGROUP ends with an error. */
  abort(): void {
    this.closed = true;
    this.redis.disconnect(false);
  }

  /** Right after start the first connection is still being made: give it one timeout to come up. */
  private firstReady(): Promise<boolean> {
    if (this.everReady || this.lastError) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.redis.off("ready", onReady);
        this.redis.off("error", onError);
        resolve(ok);
      };
      const onReady = () => done(true);
      const onError = () => done(false);
      const timer = setTimeout(() => done(false), this.options.timeoutMs);
      this.redis.on("ready", onReady);
      this.redis.on("error", onError);
    });
  }

  private unavailable(what: string, reason: string, cause?: unknown): BackendUnavailableError {
    return new BackendUnavailableError("cache", `Redis failed the write-behind ${what}: ${reason}.`, cause);
  }
}
