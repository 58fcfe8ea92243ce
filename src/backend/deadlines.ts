/**
 * Work still running (requests, backend calls), watched for its deadline by one timer for all of it: a timer
 * armed and cleared each time is a measurable part of a cache hit's cost. The timer is armed for the earliest
 * deadline and re-armed when it fires; work that ends only leaves the set.
 */
export interface Watch {
  readonly at: number;
  readonly expire: () => void;
}

export class Deadlines {
  private readonly running = new Set<Watch>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  /** Calls `expire` once `at` (ms since the epoch) has passed, unless `end` came first. */
  watch(at: number, expire: () => void): Watch {
    const w: Watch = { at, expire };
    this.running.add(w);
    if (at < this.armedFor) this.arm(at);
    return w;
  }

  end(w: Watch): void {
    this.running.delete(w);
  }

  /** Forgets everything watched; no timer is left armed. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    this.running.clear();
  }

  get size(): number {
    return this.running.size;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
    // an idle daemon's event loop is held by its listener, not by this timer
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = Date.now();
    let next = Infinity;
    const due: Watch[] = [];
    for (const w of this.running) {
      if (w.at <= now) due.push(w);
      else if (w.at < next) next = w.at;
    }
    for (const w of due) {
      this.running.delete(w);
      w.expire();
    }
    if (next !== Infinity && next < this.armedFor) this.arm(next);
  }
}
