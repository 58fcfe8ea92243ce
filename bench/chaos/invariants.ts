/**
 * The invariants a chaos run must end with:
 * 1. no acknowledged write is missing from PostgreSQL (its version or a later one is there);
 * 2. no read returned a value older than a write acknowledged before the read began;
 * 3. every value read or stored was written by a client (nothing made up, nothing mixed);
 * 4. after one full consistency check, the cache agrees with PostgreSQL.
 */
import type { CacheEntry } from "../../src/cache/adapter.js";
import { id, type History, type WriteRecord, type Written } from "./history.js";

export interface Violation {
  kind: "lost_write" | "stale_read" | "phantom_value" | "version_mismatch" | "cache_diverges" | "bad_answer";
  detail: string;
}

export interface Row {
  version: number;
  value: Written;
}

const slot = (ks: string, key: string) => `${ks}\u0000${key}`;

function byKey(writes: WriteRecord[]): Map<string, WriteRecord[]> {
  const out = new Map<string, WriteRecord[]>();
  for (const w of writes) {
    const k = slot(w.ks, w.key);
    let list = out.get(k);
    if (!list) out.set(k, (list = []));
    list.push(w);
  }
  return out;
}

/** Every value ever sent, by id, with the version it was acknowledged at (if it was). */
function sent(history: History): Map<string, WriteRecord> {
  const out = new Map<string, WriteRecord>();
  for (const w of history.writes) out.set(`${w.ks}\u0000${w.key}\u0000${id(w.value)}`, w);
  return out;
}

export function checkReads(history: History): Violation[] {
  const violations: Violation[] = [];
  const writes = byKey(history.writes.filter((w) => w.acked));
  for (const list of writes.values()) list.sort((a, b) => a.end - b.end);
  const all = sent(history);
  for (const r of history.reads) {
    if (r.status !== 200 && r.status !== 404) continue;
    let needed = 0;
    let by: WriteRecord | undefined;
    for (const w of writes.get(slot(r.ks, r.key)) ?? []) {
      if (w.end >= r.start) break;
      if ((w.version ?? 0) > needed) {
        needed = w.version ?? 0;
        by = w;
      }
    }
    if (r.version < needed) {
      violations.push({
        kind: "stale_read",
        detail:
          `${r.ks}/${r.key}: read at ${r.start.toFixed(0)} ms got version ${r.version} (${r.status}, ` +
          `X-Cache ${r.cache}) after version ${needed} (${id(by!.value)}) was acknowledged at ${by!.end.toFixed(0)} ms`,
      });
    }
    if (r.status === 200 && r.value) {
      const w = all.get(`${r.ks}\u0000${r.key}\u0000${id(r.value)}`);
      if (!w) {
        violations.push({
          kind: "phantom_value",
          detail: `${r.ks}/${r.key}: read ${JSON.stringify(r.value)}, never written there`,
        });
      } else if (w.acked && w.version !== r.version) {
        violations.push({
          kind: "version_mismatch",
          detail: `${r.ks}/${r.key}: read ${id(r.value)} with version ${r.version}; it was acknowledged as ${w.version}`,
        });
      }
    }
  }
  return violations;
}

/** rows: the PostgreSQL row of every key written, by keyspace and key (absent: no row). */
export function checkStore(history: History, rows: Map<string, Map<string, Row>>): Violation[] {
  const violations: Violation[] = [];
  const all = sent(history);
  for (const [k, list] of byKey(history.writes)) {
    const [ks, key] = k.split("\u0000") as [string, string];
    const row = rows.get(ks)?.get(key);
    const acked = list.filter((w) => w.acked);
    const last = acked.reduce<WriteRecord | undefined>(
      (m, w) => ((w.version ?? 0) > (m?.version ?? 0) ? w : m),
      undefined,
    );
    if (last && (!row || row.version < last.version!)) {
      violations.push({
        kind: "lost_write",
        detail: `${ks}/${key}: ${id(last.value)} acknowledged at version ${last.version}; PostgreSQL has ${row ? `version ${row.version}` : "no row"}`,
      });
    }
    if (!row) continue;
    const w = all.get(`${ks}\u0000${key}\u0000${id(row.value)}`);
    if (!w)
      violations.push({
        kind: "phantom_value",
        detail: `${ks}/${key}: PostgreSQL holds ${JSON.stringify(row.value)}, never written there`,
      });
    else if (w.acked && w.version !== row.version) {
      violations.push({
        kind: "version_mismatch",
        detail: `${ks}/${key}: PostgreSQL holds ${id(row.value)} at version ${row.version}; it was acknowledged as ${w.version}`,
      });
    }
  }
  return violations;
}

/** entries: what the cache holds for each key written, null for nothing. */
export function checkCache(
  rows: Map<string, Map<string, Row>>,
  entries: Map<string, Map<string, CacheEntry | null>>,
): Violation[] {
  const violations: Violation[] = [];
  for (const [ks, byKey] of entries) {
    for (const [key, entry] of byKey) {
      if (!entry || entry.kind === "tombstone") continue;
      const row = rows.get(ks)?.get(key);
      if (entry.kind === "absent") {
        if (row)
          violations.push({
            kind: "cache_diverges",
            detail: `${ks}/${key}: cached as absent; PostgreSQL has version ${row.version}`,
          });
        continue;
      }
      const value = JSON.parse(entry.value ?? "null") as Written | null;
      if (!row || row.version !== entry.version || !value || id(value) !== id(row.value)) {
        violations.push({
          kind: "cache_diverges",
          detail: `${ks}/${key}: cached ${value ? id(value) : "?"} at version ${entry.version}; PostgreSQL has ${row ? `${id(row.value)} at version ${row.version}` : "no row"}`,
        });
      }
    }
  }
  return violations;
}
