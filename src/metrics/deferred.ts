/**
 * Counts of the hot path (requests, hits) kept in plain numbers and handed to their prom-client counter
 * when it is collected (a scrape): a labelled `inc` hashes and validates its labels on every call, a
 * measurable part of a cache hit's cost.
 */
import type { Counter } from "prom-client";

export interface Owed<L extends string> {
  labels: Partial<Record<L, string>>;
  n: number;
}

export class DeferredCounts<L extends string> {
  private readonly owed = new Map<string, Owed<L>>();
  private counter: Counter<L> | undefined;

  /** The counter they are handed to (set once it exists: its `collect` calls flush). */
  attach(counter: Counter<L>): this {
    this.counter = counter;
    return this;
  }

  /** Adds n under `id` (which names one set of labels); false when `id` is new: open() it. */
  add(id: string, n = 1): boolean {
    const o = this.owed.get(id);
    if (!o) return false;
    o.n += n;
    return true;
  }

  /** Starts counting under `id`; the count it returns may be added to directly (`n++`). */
  open(id: string, labels: Partial<Record<L, string>>, n = 1): Owed<L> {
    const o = { labels, n };
    this.owed.set(id, o);
    return o;
  }

  flush(): void {
    if (!this.counter) return;
    for (const o of this.owed.values()) {
      if (o.n === 0) continue;
      this.counter.inc(o.labels, o.n);
      o.n = 0;
    }
  }
}
