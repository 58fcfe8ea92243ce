/**
 * The history checker: every invariant of invariants.ts and end-state.ts over one run, from memory or from a
 * saved file. A run is one history; each key of each keyspace is checked on its own within it.
 */
import { readFileSync } from "node:fs";
import { checkCache, checkFinalReads, checkStore } from "./end-state.js";
import {
  id,
  type FaultRecord,
  type FinalState,
  type KeyspaceInfo,
  type ReadRecord,
  type WriteRecord,
} from "./history.js";
import { HistoryIndex } from "./index.js";
import {
  checkDirtyReads,
  checkMadeUp,
  checkMonotonicReads,
  checkReadYourWrites,
  type Violation,
} from "./invariants.js";

/** Everything a run recorded: what the saved JSON file holds. */
export interface SavedRun {
  format: 1;
  profile: string;
  seed: number;
  options: { seconds: number; clients: number; keys: number; daemons: number };
  keyspaces: KeyspaceInfo[];
  writes: WriteRecord[];
  reads: ReadRecord[];
  faults: FaultRecord[];
  unexpected: string[];
  final: FinalState;
  /** what the checker found when the file was written */
  violations?: Violation[];
}

export function checkRun(run: SavedRun): Violation[] {
  const index = new HistoryIndex(run.keyspaces, run.writes, run.final.commits, run.faults);
  const live = run.reads.filter((r) => r.client >= 0);
  const healed = run.reads.filter((r) => r.client < 0);
  return [
    ...run.unexpected.map((d): Violation => ({ kind: "bad_answer", detail: d })),
    ...checkStore(run.writes, run.final.rows, run.final.commits, index),
    ...checkReadYourWrites(run.reads, index),
    ...checkMonotonicReads(live, index),
    ...checkDirtyReads(run.reads, index),
    ...checkMadeUp(run.reads, index),
    ...checkCache(run.final.rows, run.final.cache),
    ...checkFinalReads(run.final.rows, healed),
  ];
}

export function loadRun(file: string): SavedRun {
  const run = JSON.parse(readFileSync(file, "utf8")) as SavedRun;
  if (run.format !== 1)
    throw new Error(`${file} is not a saved chaos history (format ${String(run.format)})`);
  return run;
}

/**
 * The part of a run about one key between from and to (ms): its reads then; the writes then, those whose
 * values were read and the one PostgreSQL ended with; their commits; the faults then; and what the backends
 * held for the key at the end. Checked like a whole run; small enough to keep beside a bug report.
 */
export function excerpt(run: SavedRun, ks: string, key: string, from = -Infinity, to = Infinity): SavedRun {
  const mine = <T extends { ks: string; key: string }>(x: T) => x.ks === ks && x.key === key;
  const reads = run.reads.filter((r) => mine(r) && (r.client < 0 || (r.end >= from && r.start <= to)));
  const rows = run.final.rows.filter(mine);
  const wanted = new Set([...reads, ...rows].flatMap((x) => (x.value ? [id(x.value)] : [])));
  const writes = run.writes.filter(
    (w) => mine(w) && ((w.end >= from - 5_000 && w.start <= to) || wanted.has(id(w.value))),
  );
  const written = new Set(writes.map((w) => id(w.value)));
  const { violations: _whole, ...rest } = run;
  return {
    ...rest,
    keyspaces: run.keyspaces.filter((k) => k.name === ks),
    writes,
    reads,
    faults: run.faults.filter((f) => f.end >= from - 2_000 && f.start <= to),
    unexpected: [],
    final: {
      rows,
      commits: run.final.commits.filter((c) => mine(c) && written.has(id(c.value))),
      cacheBeforeCheck: run.final.cacheBeforeCheck.filter(mine),
      cache: run.final.cache.filter(mine),
      checks: [],
    },
  };
}

/** One line per operation on the key between from and to, and per fault, in the order they began. */
export function timeline(run: SavedRun, ks: string, key: string, from = -Infinity, to = Infinity): string[] {
  const part = excerpt(run, ks, key, from, to);
  const lines: { at: number; text: string }[] = [];
  const when = (o: { start: number; end: number }) => `${o.start.toFixed(0)}-${o.end.toFixed(0)} ms`;
  for (const w of part.writes.filter((x) => x.end >= from && x.start <= to)) {
    lines.push({
      at: w.start,
      text: `write #${w.op} client ${w.client} d${w.daemon} ${when(w)}: ${id(w.value)} -> ${String(w.status)}${w.acked ? ` version ${w.version}` : ""}`,
    });
  }
  for (const r of part.reads.filter((x) => x.client >= 0)) {
    const got = r.found ? `${id(r.value!)} version ${r.version ?? "(none given)"}` : "not found";
    lines.push({
      at: r.start,
      text: `read  #${r.op} client ${r.client} d${r.daemon} ${when(r)}: ${String(r.status)} ${got} ${r.mget ? "_mget" : `X-Cache ${r.cache ?? "-"}`}`,
    });
  }
  for (const f of part.faults) {
    lines.push({
      at: f.start,
      text: `fault ${f.fault}${f.target === undefined ? "" : ` d${f.target}`} ${when(f)}`,
    });
  }
  return lines.sort((a, b) => a.at - b.at).map((l) => l.text);
}
