/**
 * When a call is tried again. 429 `queue_full` and 503 (`backend_unavailable`, `overloaded`) are retried,
 * waiting what Retry-After says, or an exponential backoff with full jitter when it says nothing; a refused
 * connection is retried (nothing was sent), and so is any failed connection of a read. Each call has a
 * budget: at most `retries` retries and `budgetMs` spent waiting between attempts, and never past the
 * call's deadline. A wait that does not fit is not started: the error is thrown at once, with its
 * `retryAfterMs`, so the caller can decide.
 */
import type { EventEmitter } from "node:events";
import { ConnectionError, QueueFullError, type SidecacheError, UnavailableError } from "./errors.js";

export interface RetryOptions {
  /** retries after the first attempt (0: none) */
  retries: number;
  /** milliseconds a call may spend waiting between its attempts, all waits together */
  budgetMs: number;
  /** first backoff step when the answer has no Retry-After */
  baseDelayMs: number;
  /** largest backoff step when the answer has no Retry-After */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryOptions> = {
  retries: 3,
  budgetMs: 5_000,
  baseDelayMs: 50,
  maxDelayMs: 1_000,
};

export const NO_RETRY: Readonly<RetryOptions> = { retries: 0, budgetMs: 0, baseDelayMs: 0, maxDelayMs: 0 };

export function retryOptions(
  given: Partial<RetryOptions> | false | undefined,
  base: RetryOptions,
): RetryOptions {
  if (given === false) return NO_RETRY;
  if (given === undefined) return base;
  const r = { ...base, ...given };
  for (const [k, v] of Object.entries(r)) {
    if (!(typeof v === "number" && v >= 0)) throw new TypeError(`retry.${k} must be a number >= 0.`);
  }
  return r;
}

/** Retry-After in milliseconds: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function isRetryable(err: SidecacheError, read: boolean): boolean {
  if (err instanceof QueueFullError || err instanceof UnavailableError) return true;
  if (err instanceof ConnectionError) return err.refused || read;
  return false;
}

/**
 * The wait before retry number `retry` (1-based), or undefined when the call must not be tried again:
 * not retryable, out of retries, or the wait does not fit the budget or the time left before the deadline.
 */
export function retryDelay(
  err: SidecacheError,
  retry: number,
  waitedMs: number,
  options: RetryOptions,
  read: boolean,
  msLeft: number,
): number | undefined {
  if (retry > options.retries || !isRetryable(err, read)) return undefined;
  const step = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (retry - 1));
  const delay = err.retryAfterMs ?? Math.round(Math.random() * step);
  if (waitedMs + delay > options.budgetMs || delay >= msLeft) return undefined;
  return delay;
}

/** Waits ms, or rejects as soon as `abort` emits "abort". */
export function wait(ms: number, abort: EventEmitter | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error("aborted while waiting to retry"));
    };
    const timer = setTimeout(() => {
      abort?.off("abort", onAbort);
      resolve();
    }, ms);
    abort?.once("abort", onAbort);
  });
}
