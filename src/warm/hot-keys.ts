/**
 * The keys read most, approximately, in bounded memory: counts per key, and when more than twice the
 * capacity are tracked, only the top `capacity` are kept and their counts halved, so that what was hot
 * long ago fades. One Map lookup per read.
 */
export class HotKeys {
  private readonly counts = new Map<string, number>();

  constructor(readonly capacity: number) {}

  touch(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (this.counts.size > 2 * this.capacity) this.prune();
  }

  /** the hottest keys first, at most `capacity` */
  top(): { key: string; hits: number }[] {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, this.capacity)
      .map(([key, hits]) => ({ key, hits }));
  }

  get size(): number {
    return this.counts.size;
  }

  private prune(): void {
    const kept = this.top();
    this.counts.clear();
    for (const { key, hits } of kept) this.counts.set(key, Math.max(1, Math.floor(hits / 2)));
  }
}
