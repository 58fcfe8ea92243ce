/** Waits that end early on wake() and for good on cancel(), leaving no timer behind. */
export class Sleeper {
  private waiting = new Set<() => void>();
  private cancelled = false;

  /** Resolves after ms, or sooner on wake() or cancel(). */
  sleep(ms: number): Promise<void> {
    if (this.cancelled || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting.add(done);
    });
  }

  wake(): void {
    for (const done of [...this.waiting]) done();
  }

  cancel(): void {
    this.cancelled = true;
    this.wake();
  }
}

/** Exponential backoff with full jitter over the upper half: attempt 1 → about base. */
export function backoff(attempt: number, baseMs: number, capMs: number): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}
