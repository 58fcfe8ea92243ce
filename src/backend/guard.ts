/**
 * The one wrapper every call to a backend passes: a timeout (the per-call timeout, cut to what is left of
 * the request's deadline), a circuit breaker, a typed error with a stable code, a telemetry event and a
 * log line carrying the request id. Callers see BackendUnavailableError (503) or TimeoutError (504).
 */
import {
  BackendUnavailableError,
  ShardUnavailableError,
  SidecacheError,
  TimeoutError,
  type Backend,
} from "../errors.js";
import type { Logger } from "../log.js";
import type { Telemetry } from "../telemetry.js";
import { CircuitBreaker, type BreakerOptions, type BreakerState } from "./breaker.js";
import { Deadlines } from "./deadlines.js";
import type { RequestContext } from "./request-context.js";

/** A call that did not answer in time; `backend` tells whose, so an enclosing guard does not count it. */
export class BackendTimeoutError extends TimeoutError {
  constructor(
    readonly backend: Backend,
    message: string,
  ) {
    super(message);
  }
}

export interface GuardOptions {
  backend: Backend;
  /** how the backend is named in messages: "the cache (redis)", "PostgreSQL" */
  label: string;
  timeoutMs: number;
  breaker: BreakerOptions;
  telemetry: Telemetry;
  log: Logger;
  /** a cheap health call, run by itself while the breaker is open so it closes without traffic */
  probe?: () => Promise<void>;
  /**
   * The wrapped calls fail by themselves after timeoutMs (ioredis' commandTimeout): the guard then arms a
   * timer of its own only when the request's deadline is nearer, which spares a timer and a race per hit.
   */
  selfTimed?: boolean;
}

export class BackendGuard {
  readonly breaker: CircuitBreaker;
  private probeTimer: NodeJS.Timeout | undefined;
  /** the calls the guard times itself, under one timer */
  private readonly deadlines = new Deadlines();
  private stopped = false;

  constructor(private readonly options: GuardOptions) {
    this.breaker = new CircuitBreaker(options.breaker, (state, previous) => this.changed(state, previous));
  }

  get backend(): Backend {
    return this.options.backend;
  }

  get state(): BreakerState {
    return this.breaker.state;
  }

  /**
   * Runs one backend call under the timeout and the breaker, for `request` when it serves one (its deadline
   * cuts the timeout). `onGiveUp` runs when the guard stops waiting for the call (its timeout): the call
   * may still be under way.
   */
  run<T>(op: string, call: () => Promise<T>, onGiveUp?: () => void, request?: RequestContext): Promise<T> {
    const { backend, label, timeoutMs } = this.options;
    if (!this.breaker.tryAcquire()) {
      const wait = Math.max(0, Math.ceil((this.breaker.retryAt - Date.now()) / 1000));
      const err = new BackendUnavailableError(
        backend,
        `${capitalize(label)} is not being called: it failed repeatedly and is tried again in ${wait}s.`,
      );
      this.report(op, "circuit_open", err, 0, "debug", request);
      return Promise.reject(err);
    }
    const budget = request && !request.answered ? request.deadline - Date.now() : Infinity;
    const limit = Math.min(timeoutMs, budget);
    if (limit <= 0) {
      this.breaker.release();
      return Promise.reject(
        new BackendTimeoutError(backend, `The request's deadline passed before ${label} was called.`),
      );
    }
    const started = performance.now();
    if (!(this.options.selfTimed && limit === timeoutMs)) {
      return this.timed(op, call, onGiveUp, request, limit, started);
    }
    // The call times itself out: one promise chain, no timer, no race (the hit path).
    return invoke(call).then(
      (result) => {
        this.breaker.success();
        return result;
      },
      (err: unknown) => {
        this.failed(op, err, started, request);
        throw err;
      },
    );
  }

  /** A call under a timer of the guard's own: the request's deadline is nearer than the call's timeout. */
  private timed<T>(
    op: string,
    call: () => Promise<T>,
    onGiveUp: (() => void) | undefined,
    request: RequestContext | undefined,
    limit: number,
    started: number,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      // one timer for every call in flight (a timer armed and cleared per call is a cost of every write)
      const watch = this.deadlines.watch(Date.now() + limit, () => {
        if (settled) return;
        settled = true;
        reject(this.timedOut(op, onGiveUp, request, limit, started));
      });
      invoke(call).then(
        (result) => {
          if (settled) return;
          settled = true;
          this.deadlines.end(watch);
          this.breaker.success();
          resolve(result);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          this.deadlines.end(watch);
          this.failed(op, err, started, request);
          reject(err);
        },
      );
    });
  }

  /** The guard stops waiting for a call: its own timeout counts against the backend, a deadline does not. */
  private timedOut(
    op: string,
    onGiveUp: (() => void) | undefined,
    request: RequestContext | undefined,
    limit: number,
    started: number,
  ): BackendTimeoutError {
    const { backend, label, timeoutMs } = this.options;
    onGiveUp?.();
    // Only the call's own timeout says something about the backend; a request deadline does not.
    const own = limit === timeoutMs;
    if (own) this.breaker.failure();
    else this.breaker.release();
    const err = new BackendTimeoutError(
      backend,
      own
        ? `${capitalize(label)} did not answer within ${timeoutMs} ms (${op}).`
        : `The request's deadline passed while waiting for ${label} (${op}).`,
    );
    this.report(op, "timeout", err, performance.now() - started, own ? "warn" : "info", request);
    return err;
  }

  /** Counts a failed call against the breaker (or not: the backend answered) and reports it. */
  private failed(op: string, err: unknown, started: number, request: RequestContext | undefined): void {
    // a timeout this guard raised was counted when it was raised
    if (err instanceof BackendTimeoutError && err.backend === this.options.backend) return;
    if (this.isOwnFailure(err)) {
      // One shard down must not stop the calls to every other one.
      if (err instanceof ShardUnavailableError) this.breaker.release();
      else this.breaker.failure();
      this.report(op, (err as SidecacheError).code, err, performance.now() - started, "warn", request);
    } else if (err instanceof SidecacheError) {
      // The backend answered (a version mismatch, refused data, another backend's failure): healthy.
      this.breaker.release();
    } else {
      this.breaker.release();
      this.report(op, "error", err, performance.now() - started, "error", request);
    }
  }

  /** Stops the background probe; no timer is left running. */
  stop(): void {
    this.stopped = true;
    this.deadlines.stop();
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  private isOwnFailure(err: unknown): boolean {
    return (
      (err instanceof BackendUnavailableError || err instanceof BackendTimeoutError) &&
      err.backend === this.options.backend
    );
  }

  private report(
    op: string,
    code: string,
    err: unknown,
    ms: number,
    level: "debug" | "info" | "warn" | "error",
    request: RequestContext | undefined,
  ): void {
    const { backend, telemetry, log } = this.options;
    telemetry.emit({ type: "backend_error", backend, code });
    const message = err instanceof Error ? err.message : String(err);
    log[level](
      { reqId: request?.id, backend, op, code, ms: Math.round(ms * 10) / 10, err: message },
      "backend call failed",
    );
  }

  private changed(state: BreakerState, previous: BreakerState): void {
    const { backend, label, telemetry, log, breaker } = this.options;
    telemetry.emit({ type: "breaker", backend, state });
    if (state === "open") {
      if (previous === "closed") {
        log.warn(
          { backend, failures: breaker.threshold, cooldownMs: breaker.cooldownMs },
          `circuit opened: ${label} failed repeatedly; calls are refused until a probe succeeds`,
        );
      }
      this.scheduleProbe();
    } else if (state === "closed") {
      log.info({ backend }, `circuit closed: ${label} answers again`);
    }
  }

  private scheduleProbe(): void {
    const probe = this.options.probe;
    if (!probe || this.stopped || this.probeTimer) return;
    const delay =
      this.breaker.state === "open"
        ? Math.max(0, this.breaker.retryAt - Date.now())
        : this.options.breaker.cooldownMs;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.stopped || this.breaker.state === "closed") return;
      this.run("probe", probe).then(
        () => {},
        () => {
          // Traffic took the probe slot, or the probe said nothing about health: look again later.
          if (this.breaker.state === "half-open") this.scheduleProbe();
        },
      );
    }, delay);
    this.probeTimer.unref();
  }
}

/** The call's promise; a call that throws before it returns one is a rejected promise all the same. */
function invoke<T>(call: () => Promise<T>): Promise<T> {
  try {
    return call();
  } catch (err) {
    return Promise.reject(err);
  }
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
