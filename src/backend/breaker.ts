/**
 * A circuit breaker per backend. Closed: calls pass, consecutive failures are counted. After `threshold`
 * of them it opens: calls are refused at once for `cooldownMs`. Then it is half-open: one call at a time
 * is let through as a probe; a success closes it, a failure opens it for another cooldown.
 */
export type BreakerState = "closed" | "half-open" | "open";

export interface BreakerOptions {
  /** consecutive failures that open the breaker */
  threshold: number;
  /** how long it stays open before a probe is let through */
  cooldownMs: number;
  now?: () => number;
}

export class CircuitBreaker {
  private current: BreakerState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private readonly now: () => number;

  constructor(
    private readonly options: BreakerOptions,
    private readonly onChange: (state: BreakerState, previous: BreakerState) => void = () => {},
  ) {
    this.now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** When the open breaker lets its next probe through (ms since the epoch); 0 unless open. */
  get retryAt(): number {
    return this.current === "open" ? this.openedAt + this.options.cooldownMs : 0;
  }

  /** Whether a call may go ahead now; a true answer in half-open makes this call the probe. */
  tryAcquire(): boolean {
    if (this.current === "open") {
      if (this.now() < this.retryAt) return false;
      this.move("half-open");
    }
    if (this.current === "half-open") {
      if (this.probing) return false;
      this.probing = true;
    }
    return true;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== "closed") this.move("closed");
  }

  failure(): void {
    this.probing = false;
    this.failures++;
    if (
      this.current === "half-open" ||
      (this.current === "closed" && this.failures >= this.options.threshold)
    ) {
      this.openedAt = this.now();
      this.move("open");
    }
  }

  /** A call that was let through ended without saying anything about the backend's health. */
  release(): void {
    this.probing = false;
  }

  private move(next: BreakerState): void {
    const previous = this.current;
    this.current = next;
    this.onChange(next, previous);
  }
}
