/**
 * The history checker: every invariant of invariants.ts and end-state.ts over one run, from memory or from a
 * saved file. A run is one history; each key of each keyspace is checked on its own within it.
 */
import { readFileSync } from "node:fs";
import { checkCache, checkFinalReads, checkStore } from "./end-state.js";
import type { FaultRecord, FinalState, KeyspaceInfo, ReadRecord, WriteRecord } from "./history.js";
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
