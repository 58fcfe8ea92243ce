/**
 * What every read of a chaos run must satisfy, checked on the history alone (end-state.ts checks what the
 * backends hold at the end):
 * - read your writes: no read returns a version older than a write acknowledged before the read began,
 *   whichever daemon acknowledged it and whichever answered the read;
 * - monotonic reads: a client never reads a key at a version older than one it read before;
 * - no dirty read: no read returns a value whose write was refused for sure (4xx), nor, where PostgreSQL
 *   commits every write (all but write-behind), a value that never committed;
 * - nothing made up: every value read was written to that key, by a write that had begun, and carries the
 *   version it was acknowledged or committed with.
 */
import { id, type ReadRecord } from "./history.js";
import { refused, slot, type HistoryIndex } from "./index.js";

export type ViolationKind =
  | "lost_write"
  | "stale_read"
  | "monotonic_read"
  | "dirty_read"
  | "refused_committed"
  | "phantom_value"
  | "future_read"
  | "version_mismatch"
  | "cache_diverges"
  | "final_read_diverges"
  | "bad_answer";

export interface Violation {
  kind: ViolationKind;
  detail: string;
  /** the operations involved (ids in the saved history) */
  ops?: number[];
}

/** Reads that answered: 200 or 404 (an _mget null counts as a 404). */
const answered = (r: ReadRecord) => r.status === 200 || r.status === 404;

const describe = (r: ReadRecord) =>
  `read #${r.op} (client ${r.client}, d${r.daemon}, ${r.start.toFixed(0)}-${r.end.toFixed(0)} ms, ` +
  `${r.found ? id(r.value!) : "not found"}, ${r.mget ? "_mget" : `X-Cache ${r.cache ?? "-"}`})`;

/** The version a read saw: its ETag, or the version its value was written with; undefined when unknown. */
export function versionRead(r: ReadRecord, index: HistoryIndex): number | undefined {
  if (r.version !== undefined) return r.version;
  if (!r.found) return 0;
  return index.versionOf(r.ks, r.key, r.value!);
}

export function checkReadYourWrites(reads: ReadRecord[], index: HistoryIndex): Violation[] {
  const out: Violation[] = [];
  for (const r of reads) {
    if (!answered(r)) continue;
    const version = versionRead(r, index);
    if (version === undefined) continue;
    const w = index.newestAckedBefore(r.ks, r.key, r.start);
    if (!w || version >= w.version!) continue;
    out.push({
      kind: "stale_read",
      ops: [r.op, w.op],
      detail:
        `${r.ks}/${r.key}: ${describe(r)} got version ${version}, but write #${w.op} ` +
        `(client ${w.client}, d${w.daemon}) of ${id(w.value)} was acknowledged at version ${w.version} ` +
        `${(r.start - w.end).toFixed(0)} ms before the read began; ${index.faultsDuring(w.start, r.end)}`,
    });
  }
  return out;
}

export function checkMonotonicReads(reads: ReadRecord[], index: HistoryIndex): Violation[] {
  const out: Violation[] = [];
  const byClient = new Map<number, ReadRecord[]>();
  for (const r of reads) {
    if (r.client < 0 || !answered(r)) continue;
    const list = byClient.get(r.client) ?? [];
    list.push(r);
    byClient.set(r.client, list);
  }
  for (const list of byClient.values()) {
    list.sort((a, b) => a.start - b.start);
    const newest = new Map<string, { version: number; read: ReadRecord }>();
    for (const r of list) {
      const version = versionRead(r, index);
      if (version === undefined) continue;
      const k = slot(r.ks, r.key);
      const before = newest.get(k);
      if (before && version < before.version) {
        const w = index.writeOf(r.ks, r.key, before.read.value!);
        const ackedFirst = w?.acked === true && w.end < r.start;
        out.push({
          kind: "monotonic_read",
          ops: [before.read.op, r.op],
          detail:
            `${r.ks}/${r.key}: ${describe(r)} got version ${version} after ${describe(before.read)} ` +
            `got version ${before.version} (its write #${w?.op ?? "?"} ${ackedFirst ? "acknowledged" : `not acknowledged (${String(w?.status)})`} ` +
            `before the second read began); ${index.faultsDuring(before.read.start, r.end)}`,
        });
      }
      if (!before || version > before.version) newest.set(k, { version, read: r });
    }
  }
  return out;
}

export function checkDirtyReads(reads: ReadRecord[], index: HistoryIndex): Violation[] {
  const out: Violation[] = [];
  for (const r of reads) {
    if (!answered(r) || !r.found) continue;
    const w = index.writeOf(r.ks, r.key, r.value!);
    if (!w) continue; // made up: checkMadeUp
    if (refused(w)) {
      out.push({
        kind: "dirty_read",
        ops: [r.op, w.op],
        detail:
          `${r.ks}/${r.key}: ${describe(r)} returned the value of write #${w.op} (d${w.daemon}, ` +
          `${w.start.toFixed(0)}-${w.end.toFixed(0)} ms), which was refused with ${String(w.status)}; ` +
          index.faultsDuring(w.start, r.end),
      });
    } else if (index.synchronous(r.ks) && index.commitsOf(r.ks, r.key, r.value!).length === 0) {
      out.push({
        kind: "dirty_read",
        ops: [r.op, w.op],
        detail:
          `${r.ks}/${r.key}: ${describe(r)} returned the value of write #${w.op} (d${w.daemon}, answered ` +
          `${String(w.status)}), which PostgreSQL never committed; ${index.faultsDuring(w.start, r.end)}`,
      });
    }
  }
  return out;
}

export function checkMadeUp(reads: ReadRecord[], index: HistoryIndex): Violation[] {
  const out: Violation[] = [];
  for (const r of reads) {
    if (!answered(r) || !r.found) continue;
    const w = index.writeOf(r.ks, r.key, r.value!);
    if (!w) {
      out.push({
        kind: "phantom_value",
        ops: [r.op],
        detail: `${r.ks}/${r.key}: ${describe(r)} returned ${JSON.stringify(r.value)}, never written there`,
      });
      continue;
    }
    if (w.start > r.end) {
      out.push({
        kind: "future_read",
        ops: [r.op, w.op],
        detail: `${r.ks}/${r.key}: ${describe(r)} ended before write #${w.op} of its value began (${w.start.toFixed(0)} ms)`,
      });
    }
    if (r.version === undefined) continue;
    const expected = index.versionOf(r.ks, r.key, r.value!);
    if (expected !== undefined && expected !== r.version) {
      out.push({
        kind: "version_mismatch",
        ops: [r.op, w.op],
        detail: `${r.ks}/${r.key}: ${describe(r)} carried version ${r.version}; write #${w.op} was ${w.acked ? "acknowledged" : "committed"} at version ${expected}`,
      });
    }
  }
  return out;
}
