/**
 * What the backends must hold once every fault is healed, write-behind flushed and one full consistency
 * check has run:
 * - no acknowledged write lost: PostgreSQL holds its version or a later one, and where PostgreSQL commits
 *   every write (all but write-behind) the commit log holds the write itself, at its version;
 * - nothing refused took effect: no write answered 4xx is in the commit log;
 * - nothing made up: every row and every commit is a value a client wrote there, at the version it was
 *   acknowledged with;
 * - the cache agrees with PostgreSQL, and so does every daemon's answer to a read of every key.
 */
import { id, type CachedRecord, type ReadRecord, type StoredRecord, type WriteRecord } from "./history.js";
import { refused, slot, type HistoryIndex } from "./index.js";
import type { Violation } from "./invariants.js";

export function checkStore(
  writes: WriteRecord[],
  rows: StoredRecord[],
  commits: StoredRecord[],
  index: HistoryIndex,
): Violation[] {
  const out: Violation[] = [];
  const rowOf = new Map(rows.map((r) => [slot(r.ks, r.key), r]));
  for (const [k, list] of index.acked) {
    const last = list.reduce((m, w) => ((w.version ?? 0) > (m.version ?? 0) ? w : m));
    const row = rowOf.get(k);
    if (!row || row.version < last.version!) {
      out.push({
        kind: "lost_write",
        ops: [last.op],
        detail:
          `${last.ks}/${last.key}: write #${last.op} of ${id(last.value)} was acknowledged at version ` +
          `${last.version}; PostgreSQL has ${row ? `${id(row.value)} at version ${row.version}` : "no row"}`,
      });
    }
  }
  for (const w of writes) {
    if (!w.acked || !index.synchronous(w.ks)) continue;
    const committed = index.commitsOf(w.ks, w.key, w.value);
    if (committed.length === 0) {
      out.push({
        kind: "lost_write",
        ops: [w.op],
        detail: `${w.ks}/${w.key}: write #${w.op} of ${id(w.value)} was acknowledged at version ${w.version} (d${w.daemon}) and never committed`,
      });
    } else if (!committed.some((c) => c.version === w.version)) {
      out.push({
        kind: "version_mismatch",
        ops: [w.op],
        detail: `${w.ks}/${w.key}: write #${w.op} of ${id(w.value)} was acknowledged at version ${w.version}; it committed at ${committed.map((c) => c.version).join(", ")}`,
      });
    }
  }
  for (const [what, list] of [
    ["a row", rows],
    ["a commit", commits],
  ] as const) {
    for (const s of list) {
      const w = index.writeOf(s.ks, s.key, s.value);
      if (!w) {
        out.push({
          kind: "phantom_value",
          detail: `${s.ks}/${s.key}: PostgreSQL holds ${what} ${JSON.stringify(s.value)}, never written there`,
        });
      } else if (refused(w)) {
        out.push({
          kind: "refused_committed",
          ops: [w.op],
          detail: `${s.ks}/${s.key}: PostgreSQL holds ${what} of write #${w.op} (${id(w.value)}), answered ${String(w.status)}`,
        });
      } else if (w.acked && w.version !== s.version && what === "a row") {
        out.push({
          kind: "version_mismatch",
          ops: [w.op],
          detail: `${s.ks}/${s.key}: PostgreSQL holds ${id(s.value)} at version ${s.version}; write #${w.op} was acknowledged at ${w.version}`,
        });
      }
    }
  }
  return out;
}

/** cache: what the cache holds after the full check, for the keys the run used. */
export function checkCache(rows: StoredRecord[], cache: CachedRecord[]): Violation[] {
  const out: Violation[] = [];
  const rowOf = new Map(rows.map((r) => [slot(r.ks, r.key), r]));
  for (const e of cache) {
    if (e.kind === "tombstone") continue;
    const row = rowOf.get(slot(e.ks, e.key));
    const cached = e.kind === "absent" ? "absent" : `${e.value ? id(e.value) : "?"} at version ${e.version}`;
    const agrees =
      e.kind === "absent"
        ? !row
        : row !== undefined &&
          row.version === e.version &&
          e.value !== undefined &&
          id(e.value) === id(row.value);
    if (!agrees) {
      out.push({
        kind: "cache_diverges",
        detail: `${e.ks}/${e.key}: cached ${cached}; PostgreSQL has ${row ? `${id(row.value)} at version ${row.version}` : "no row"}`,
      });
    }
  }
  return out;
}

/**
 * finalReads: reads of every key through every daemon after healing and the full check; a read that
 * failed may have been tried again: the last answer of each daemon for each key is the one judged.
 */
export function checkFinalReads(rows: StoredRecord[], finalReads: ReadRecord[]): Violation[] {
  const out: Violation[] = [];
  const rowOf = new Map(rows.map((r) => [slot(r.ks, r.key), r]));
  const last = new Map<string, ReadRecord>();
  for (const r of finalReads) {
    const k = `${r.daemon}\u0000${slot(r.ks, r.key)}`;
    const before = last.get(k);
    if (!before || r.start >= before.start) last.set(k, r);
  }
  for (const r of last.values()) {
    const row = rowOf.get(slot(r.ks, r.key));
    const agrees = row
      ? r.status === 200 &&
        r.found &&
        r.value !== undefined &&
        id(r.value) === id(row.value) &&
        r.version === row.version
      : r.status === 404;
    if (!agrees) {
      const got =
        r.status === 200 && r.value ? `${id(r.value)} at version ${String(r.version)}` : String(r.status);
      out.push({
        kind: "final_read_diverges",
        ops: [r.op],
        detail:
          `${r.ks}/${r.key}: after healing, d${r.daemon} answered ${got} (X-Cache ${r.cache ?? "-"}); ` +
          `PostgreSQL has ${row ? `${id(row.value)} at version ${row.version}` : "no row"}`,
      });
    }
  }
  return out;
}
