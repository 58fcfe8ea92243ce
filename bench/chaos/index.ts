/** The lookups every invariant needs over a run's history: writes by value and by key, commits by value. */
import {
  id,
  type FaultRecord,
  type KeyspaceInfo,
  type StoredRecord,
  type WriteRecord,
  type Written,
} from "./history.js";

/** How long after a fault healed it is still named beside a violation. */
const RECENT_MS = 2_000;

export const slot = (ks: string, key: string): string => `${ks}\u0000${key}`;
const valueSlot = (ks: string, key: string, v: Written): string => `${ks}\u0000${key}\u0000${id(v)}`;

/** A write PostgreSQL or the daemon refused for sure: 4xx. Nothing of it may ever be seen. */
export const refused = (w: WriteRecord): boolean =>
  typeof w.status === "number" && w.status >= 400 && w.status < 500;

export class HistoryIndex {
  private readonly byValue = new Map<string, WriteRecord>();
  private readonly commitsByValue = new Map<string, StoredRecord[]>();
  /** acknowledged writes per key, by the time their answer came */
  readonly acked = new Map<string, WriteRecord[]>();
  private readonly sync: Set<string>;

  constructor(
    keyspaces: KeyspaceInfo[],
    writes: WriteRecord[],
    commits: StoredRecord[],
    private readonly faults: FaultRecord[] = [],
  ) {
    this.sync = new Set(keyspaces.filter((k) => k.synchronous).map((k) => k.name));
    for (const w of writes) {
      this.byValue.set(valueSlot(w.ks, w.key, w.value), w);
      if (!w.acked) continue;
      const k = slot(w.ks, w.key);
      const list = this.acked.get(k) ?? [];
      list.push(w);
      this.acked.set(k, list);
    }
    for (const list of this.acked.values()) list.sort((a, b) => a.end - b.end);
    for (const c of commits) {
      const k = valueSlot(c.ks, c.key, c.value);
      const list = this.commitsByValue.get(k) ?? [];
      list.push(c);
      this.commitsByValue.set(k, list);
    }
  }

  /** Whether PostgreSQL commits every acknowledged write of the keyspace (the commit log is complete). */
  synchronous(ks: string): boolean {
    return this.sync.has(ks);
  }

  /** The write that sent this value to this key, if any did. */
  writeOf(ks: string, key: string, value: Written): WriteRecord | undefined {
    return this.byValue.get(valueSlot(ks, key, value));
  }

  /** Every commit of this value to this key (one, for a value that committed; none otherwise). */
  commitsOf(ks: string, key: string, value: Written): StoredRecord[] {
    return this.commitsByValue.get(valueSlot(ks, key, value)) ?? [];
  }

  /** The version a value was given: its acknowledgement's, else its commit's; undefined when unknown. */
  versionOf(ks: string, key: string, value: Written): number | undefined {
    const w = this.writeOf(ks, key, value);
    if (w?.acked && w.version !== undefined) return w.version;
    return this.commitsOf(ks, key, value)[0]?.version;
  }

  /** The newest write to the key acknowledged before `t` (its answer came before t). */
  newestAckedBefore(ks: string, key: string, t: number): WriteRecord | undefined {
    let best: WriteRecord | undefined;
    for (const w of this.acked.get(slot(ks, key)) ?? []) {
      if (w.end >= t) break;
      if ((w.version ?? 0) > (best?.version ?? 0)) best = w;
    }
    return best;
  }

  /**
   * The faults under way at some point between from and to, and those that ended less than RECENT_MS
   * before: a violation's description.
   */
  faultsDuring(from: number, to: number): string {
    const hit = this.faults.filter((f) => f.start <= to && f.end >= from - RECENT_MS);
    if (hit.length === 0) return "no fault under way or just healed";
    return hit
      .map((f) => {
        const which = `${f.fault}${f.target === undefined ? "" : ` d${f.target}`} ${f.start.toFixed(0)}-${f.end.toFixed(0)} ms`;
        return f.end < from ? `${which} (healed ${(from - f.end).toFixed(0)} ms before)` : which;
      })
      .join(", ");
  }
}
