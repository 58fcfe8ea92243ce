/**
 * Work still running (requests, backend calls), watched for its deadline by one timer for all of it: a timer
 * armed and cleared each time is a measurable part of a cache hit's cost. The timer is armed for the earliest
 * deadline and re-armed when it fires; work that ends only leaves the list.
 *
 * The list is linked through the watches themselves, not kept in a Set: under a load of Redis hits, a Set
 * that took and dropped one watch per request kept the requests' objects alive through young collections
 * (about 3 MB copied and 2 MB promoted per collection, 8 ms pauses, a full collection every 150 ms, half the
 * CPU of a hit); unlinked watches are garbage at once (0.2 MB copied, 6 kB promoted, 1 ms pauses).
 */
export interface Watch {
  readonly at: number;
  readonly expire: () => void;
}

interface Linked extends Watch {
  prev: Linked | undefined;
  next: Linked | undefined;
  /** still in the list */
  on: boolean;
}

export class Deadlines {
  private head: Linked | undefined;
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  /** Calls `expire` once `at` (ms since the epoch) has passed, unless `end` came first. */
  watch(at: number, expire: () => void): Watch {
    const w: Linked = { at, expire, prev: undefined, next: this.head, on: true };
    if (this.head) this.head.prev = w;
    this.head = w;
    this.count++;
    if (at < this.armedFor) this.arm(at);
    return w;
  }

  end(w: Watch): void {
    this.unlink(w as Linked);
  }

  /** Forgets everything watched; no timer is left armed. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    while (this.head) this.unlink(this.head);
  }

  get size(): number {
    return this.count;
  }

  private unlink(w: Linked): void {
    if (!w.on) return;
    w.on = false;
    if (w.prev) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next) w.next.prev = w.prev;
    w.prev = w.next = undefined;
    this.count--;
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
    const due: Linked[] = [];
    for (let w = this.head; w; w = w.next) {
      if (w.at <= now) due.push(w);
      else if (w.at < next) next = w.at;
    }
    for (const w of due) {
      this.unlink(w);
      w.expire();
    }
    if (next !== Infinity && next < this.armedFor) this.arm(next);
  }
}
