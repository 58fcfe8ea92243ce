/**
 * The chaos history checker: each invariant catches its violation on made-up histories (and lets the
 * allowed cases through); short deterministic chaos runs of both profiles find no violation (the long
 * ones are `npm run chaos`); and a run under a fault the product documents it does not survive (write-behind
 * over a Redis sent back to a snapshot) is caught.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runChaos, type ChaosReport } from "../bench/chaos/chaos.js";
import { checkRun, loadRun, type SavedRun } from "../bench/chaos/checker.js";
import { checkCache, checkFinalReads, checkStore } from "../bench/chaos/end-state.js";
import type {
  CachedRecord,
  KeyspaceInfo,
  ReadRecord,
  StoredRecord,
  WriteRecord,
} from "../bench/chaos/history.js";
import { HistoryIndex } from "../bench/chaos/index.js";
import {
  checkDirtyReads,
  checkMadeUp,
  checkMonotonicReads,
  checkReadYourWrites,
} from "../bench/chaos/invariants.js";
import type { ProfileName } from "../bench/chaos/profiles.js";
import { printReport } from "../bench/chaos/report.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const KEYSPACES: KeyspaceInfo[] = [
  { name: "ks", strategy: "cache-aside", synchronous: true },
  { name: "wb", strategy: "write-behind", synchronous: false },
];

let ops = 0;
interface Who {
  client?: number;
  daemon?: number;
  ks?: string;
}

/** A write of value {c: 1, n} to ks/k: acknowledged at `version` unless a status says otherwise. */
function write(
  n: number,
  version: number,
  start: number,
  end: number,
  o: Who & { status?: number | "error" } = {},
): WriteRecord {
  const status = o.status ?? 200;
  const acked = status === 200 || status === 202;
  return {
    op: ++ops,
    client: o.client ?? 1,
    daemon: o.daemon ?? 0,
    ks: o.ks ?? "ks",
    key: "k",
    value: { c: 1, n },
    start,
    end,
    status,
    acked,
    version: acked ? version : undefined,
  };
}

/** A read of ks/k that saw value {c: 1, n} (null: not found) with its ETag version (undefined: an _mget). */
function read(
  n: number | null,
  version: number | undefined,
  start: number,
  end: number,
  o: Who = {},
): ReadRecord {
  return {
    op: ++ops,
    client: o.client ?? 2,
    daemon: o.daemon ?? 0,
    ks: o.ks ?? "ks",
    key: "k",
    start,
    end,
    status: n === null ? 404 : 200,
    found: n !== null,
    value: n === null ? undefined : { c: 1, n },
    version,
    cache: "HIT",
  };
}

const committed = (w: WriteRecord, version = w.version!): StoredRecord => ({
  ks: w.ks,
  key: w.key,
  value: w.value,
  version,
});
const index = (writes: WriteRecord[], commits: StoredRecord[]) =>
  new HistoryIndex(KEYSPACES, writes, commits);
const kinds = (vs: { kind: string }[]) => vs.map((v) => v.kind);

describe("the invariant checks", () => {
  it("find a read older than a write acknowledged before it, and a value nobody wrote", () => {
    const w1 = write(1, 10, 0, 5);
    const w2 = write(2, 20, 6, 9);
    const idx = index([w1, w2], [committed(w1), committed(w2)]);
    const reads = [
      read(1, 10, 7, 8), // overlaps the second write: fine
      read(1, 10, 10, 11), // stale
      read(null, 0, 12, 13), // stale
      read(9, 30, 14, 15), // never written
    ];
    expect(kinds(checkReadYourWrites(reads, idx))).toEqual(["stale_read", "stale_read"]);
    expect(kinds(checkMadeUp(reads, idx))).toEqual(["phantom_value"]);
  });

  it("read your writes across daemons: a write acknowledged by one daemon, an older answer from another", () => {
    const w1 = write(1, 10, 0, 5, { daemon: 0 });
    const w2 = write(2, 20, 6, 9, { daemon: 0 });
    const idx = index([w1, w2], [committed(w1), committed(w2)]);
    const fromOther = read(1, 10, 10, 11, { daemon: 2 });
    const [v] = checkReadYourWrites([fromOther], idx);
    expect(v?.kind).toBe("stale_read");
    expect(v?.detail).toMatch(/d2.*write #\d+ \(client 1, d0\).*version 20/);
    expect(v?.ops).toEqual([fromOther.op, w2.op]);
    // an _mget answer carries no version: the version its value was written with is taken
    expect(kinds(checkReadYourWrites([read(1, undefined, 10, 11, { daemon: 1 })], idx))).toEqual([
      "stale_read",
    ]);
    expect(kinds(checkReadYourWrites([read(null, undefined, 10, 11, { daemon: 1 })], idx))).toEqual([
      "stale_read",
    ]);
    expect(
      checkReadYourWrites([read(2, undefined, 10, 11, { daemon: 1 }), read(2, 20, 10, 11)], idx),
    ).toEqual([]);
  });

  it("monotonic reads: a client that read a version never reads an older one, through any daemon", () => {
    const w1 = write(1, 10, 0, 5);
    // committed but never acknowledged (504): reading either version is allowed, going back is not
    const w2 = write(2, 20, 6, 30, { status: 504 });
    const idx = index([w1, w2], [committed(w1), committed(w2, 20)]);
    const newer = read(2, 20, 10, 11, { client: 3, daemon: 0 });
    const older = read(1, 10, 12, 13, { client: 3, daemon: 1 });
    expect(checkReadYourWrites([newer, older], idx)).toEqual([]);
    const found = checkMonotonicReads([older, newer], idx);
    expect(kinds(found)).toEqual(["monotonic_read"]);
    expect(found[0]!.ops).toEqual([newer.op, older.op]);
    // another client, or the same client in the right order, is fine
    expect(checkMonotonicReads([newer, read(1, 10, 12, 13, { client: 4 })], idx)).toEqual([]);
    expect(checkMonotonicReads([read(1, 10, 8, 9, { client: 3 }), newer], idx)).toEqual([]);
    // a key seen, then not found: older too
    expect(kinds(checkMonotonicReads([newer, read(null, 0, 12, 13, { client: 3 })], idx))).toEqual([
      "monotonic_read",
    ]);
  });

  it("no dirty read: a refused write's value, or a value PostgreSQL never committed", () => {
    const ok = write(1, 10, 0, 5);
    const refused = write(2, 0, 6, 9, { status: 400 });
    const lostInFlight = write(3, 0, 10, 12, { status: 504 });
    const landedLate = write(4, 0, 13, 15, { status: 504 });
    const idx = index([ok, refused, lostInFlight, landedLate], [committed(ok), committed(landedLate, 40)]);
    expect(kinds(checkDirtyReads([read(2, 20, 7, 8)], idx))).toEqual(["dirty_read"]);
    expect(checkDirtyReads([read(2, 20, 7, 8)], idx)[0]!.detail).toMatch(/refused with 400/);
    expect(kinds(checkDirtyReads([read(3, 30, 11, 12)], idx))).toEqual(["dirty_read"]);
    expect(checkDirtyReads([read(3, 30, 11, 12)], idx)[0]!.detail).toMatch(/never committed/);
    expect(checkDirtyReads([read(1, 10, 7, 8), read(4, 40, 16, 17)], idx)).toEqual([]);
    // write-behind coalesces: an acknowledged value may be read and never reach PostgreSQL itself
    const wb = write(5, 50, 0, 1, { ks: "wb", status: 202 });
    expect(checkDirtyReads([read(5, 50, 2, 3, { ks: "wb" })], index([wb], []))).toEqual([]);
    const wbRefused = write(6, 0, 0, 1, { ks: "wb", status: 429 });
    expect(kinds(checkDirtyReads([read(6, 60, 2, 3, { ks: "wb" })], index([wbRefused], [])))).toEqual([
      "dirty_read",
    ]);
  });

  it("nothing made up: a value nobody wrote there, read before its write began, or at another version", () => {
    const w = write(1, 10, 5, 6);
    const idx = index([w], [committed(w)]);
    expect(kinds(checkMadeUp([read(7, 10, 7, 8)], idx))).toEqual(["phantom_value"]);
    expect(kinds(checkMadeUp([read(1, 10, 1, 2)], idx))).toEqual(["future_read"]);
    expect(kinds(checkMadeUp([read(1, 11, 7, 8)], idx))).toEqual(["version_mismatch"]);
    expect(checkMadeUp([read(1, 10, 7, 8), read(1, undefined, 7, 8)], idx)).toEqual([]);
    // the same value under another key was not written there
    expect(kinds(checkMadeUp([{ ...read(1, 10, 7, 8), key: "other" }], idx))).toEqual(["phantom_value"]);
  });

  it("find an acknowledged write missing from PostgreSQL, and accept a later unacknowledged one", () => {
    const w1 = write(1, 10, 0, 5);
    const w2 = write(2, 20, 6, 9);
    const w3 = write(3, 25, 10, 12, { status: "error" });
    const writes = [w1, w2, w3];
    const all = [committed(w1), committed(w2), committed(w3, 25)];
    const row = (w: WriteRecord, version: number): StoredRecord[] => [committed(w, version)];
    expect(checkStore(writes, row(w2, 20), all, index(writes, all))).toEqual([]);
    expect(checkStore(writes, row(w3, 25), all, index(writes, all))).toEqual([]);
    expect(kinds(checkStore(writes, row(w1, 10), all, index(writes, all)))).toEqual(["lost_write"]);
    expect(kinds(checkStore(writes, [], all, index(writes, all)))).toEqual(["lost_write"]);
  });

  it("find an acknowledged write that never committed, a refused one that did, and rows nobody wrote", () => {
    const w1 = write(1, 10, 0, 5);
    const w2 = write(2, 20, 6, 9);
    const refused = write(3, 0, 10, 12, { status: 400 });
    const writes = [w1, w2, refused];
    // w1 acknowledged, then overwritten: its commit must still be in the log
    const log = [committed(w2)];
    expect(kinds(checkStore(writes, [committed(w2)], log, index(writes, log)))).toEqual(["lost_write"]);
    const full = [committed(w1), committed(w2)];
    expect(checkStore(writes, [committed(w2)], full, index(writes, full))).toEqual([]);
    // committed at another version than acknowledged
    const moved = [committed(w1, 11), committed(w2)];
    expect(kinds(checkStore(writes, [committed(w2)], moved, index(writes, moved)))).toEqual([
      "version_mismatch",
    ]);
    // a refused write in the log and in the table
    const leaked = [...full, committed(refused, 30)];
    expect(kinds(checkStore(writes, [committed(refused, 30)], leaked, index(writes, leaked)))).toEqual([
      "refused_committed",
      "refused_committed",
    ]);
    const made: StoredRecord = { ks: "ks", key: "k", value: { c: 9, n: 9 }, version: 40 };
    expect(kinds(checkStore(writes, [made], full, index(writes, full)))).toEqual(["phantom_value"]);
    // write-behind: only the newest acknowledged write must be there (the rest may coalesce away)
    const wb1 = write(4, 40, 0, 1, { ks: "wb", status: 202 });
    const wb2 = write(5, 50, 2, 3, { ks: "wb", status: 202 });
    const wbRow = [committed(wb2)];
    expect(checkStore([wb1, wb2], wbRow, wbRow, index([wb1, wb2], wbRow))).toEqual([]);
    const wbOld = [committed(wb1)];
    expect(kinds(checkStore([wb1, wb2], wbOld, wbOld, index([wb1, wb2], wbOld)))).toEqual(["lost_write"]);
  });

  it("find a cache entry that differs from PostgreSQL", () => {
    const rows: StoredRecord[] = [{ ks: "ks", key: "k", value: { c: 1, n: 2 }, version: 20 }];
    const entry = (e: Partial<CachedRecord>): CachedRecord[] => [
      { ks: "ks", key: "k", kind: "value", version: 20, ...e },
    ];
    expect(checkCache(rows, entry({ value: { c: 1, n: 2 } }))).toEqual([]);
    expect(checkCache(rows, entry({ kind: "tombstone" }))).toEqual([]);
    expect(kinds(checkCache(rows, entry({ version: 10, value: { c: 1, n: 1 } })))).toEqual([
      "cache_diverges",
    ]);
    expect(kinds(checkCache(rows, entry({ kind: "absent", version: 0 })))).toEqual(["cache_diverges"]);
    expect(kinds(checkCache([], entry({ value: { c: 1, n: 2 } })))).toEqual(["cache_diverges"]);
  });

  it("after healing, every daemon answers what PostgreSQL holds", () => {
    const rows: StoredRecord[] = [{ ks: "ks", key: "k", value: { c: 1, n: 2 }, version: 20 }];
    const healed = (r: ReadRecord): ReadRecord => ({ ...r, client: -1 });
    expect(
      checkFinalReads(rows, [
        healed(read(2, 20, 0, 1, { daemon: 0 })),
        healed(read(2, 20, 0, 1, { daemon: 2 })),
      ]),
    ).toEqual([]);
    const old = checkFinalReads(rows, [healed(read(1, 10, 0, 1, { daemon: 1 }))]);
    expect(kinds(old)).toEqual(["final_read_diverges"]);
    expect(old[0]!.detail).toMatch(/d1 answered 1:1 at version 10/);
    expect(kinds(checkFinalReads(rows, [{ ...healed(read(null, 0, 0, 1)), status: 503 }]))).toEqual([
      "final_read_diverges",
    ]);
    expect(checkFinalReads([], [healed(read(null, 0, 0, 1))])).toEqual([]);
    // a failed read tried again: the last answer counts
    const failed = { ...healed(read(null, 0, 0, 1)), status: 504 };
    expect(checkFinalReads(rows, [failed, healed(read(2, 20, 2, 3))])).toEqual([]);
    expect(kinds(checkFinalReads(rows, [healed(read(2, 20, 0, 1)), { ...failed, start: 2 }]))).toEqual([
      "final_read_diverges",
    ]);
  });

  it("check a saved history again from its file, with the same verdict", () => {
    const w = write(1, 10, 0, 5);
    const run: SavedRun = {
      format: 1,
      profile: "durable",
      seed: 1,
      options: { seconds: 1, clients: 1, keys: 1, daemons: 1 },
      keyspaces: KEYSPACES,
      writes: [w],
      reads: [read(null, 0, 6, 7)],
      faults: [{ fault: "kill-redis", start: 4, end: 8 }],
      unexpected: ["PUT /v1/kv/ks/k at d0: 500 internal"],
      final: { rows: [committed(w)], commits: [committed(w)], cacheBeforeCheck: [], cache: [], checks: [] },
    };
    const dir = mkdtempSync(join(tmpdir(), "sidecache-chaos-test-"));
    try {
      const file = join(dir, "run.json");
      writeFileSync(file, JSON.stringify(run));
      const again = checkRun(loadRun(file));
      expect(again).toEqual(checkRun(run));
      expect(kinds(again)).toEqual(["bad_answer", "stale_read"]);
      expect(again[1]!.detail).toMatch(/kill-redis 4-8 ms/);
      writeFileSync(file, JSON.stringify({ format: 0 }));
      expect(() => loadRun(file)).toThrow(/not a saved chaos history/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the histories that found bugs (bench/chaos/found)", () => {
  const dir = fileURLToPath(new URL("../bench/chaos/found/", import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  it("are there", () => {
    expect(files.length).toBeGreaterThan(0);
  });
  for (const f of files) {
    it(`${f}: the checker still finds what it found`, () => {
      const run = loadRun(join(dir, f));
      expect(run.violations?.length).toBeGreaterThan(0);
      expect(checkRun(run)).toEqual(run.violations);
    });
  }
});

/** What every short run must have done for its verdict to mean something. */
function expectMeaningful(report: ChaosReport, daemons: number): void {
  expect(report.run.faults.length).toBeGreaterThan(2);
  expect(report.writes.acked).toBeGreaterThan(100);
  expect(report.writes.refused).toBeGreaterThan(0);
  expect(report.reads).toBeGreaterThan(100);
  const served = new Set(report.run.reads.filter((r) => r.status === 200).map((r) => r.daemon));
  expect(served.size).toBe(daemons);
}

describe("chaos", () => {
  // one private PostgreSQL for the runs (each makes a database of its own); each run starts its own Redis
  let postgres: PrivatePostgres;
  beforeAll(async () => {
    postgres = await startPrivatePostgres();
  });
  afterAll(async () => {
    await postgres?.cleanup();
  });

  const cases: [ProfileName, number][] = [
    ["durable", 7],
    ["lossy-cache", 8],
  ];
  for (const [profile, seed] of cases) {
    it(`${profile} (seed ${seed}): three daemons, random faults: no violation`, async () => {
      const lines: string[] = [];
      const report = await runChaos({
        profile,
        seed,
        seconds: 6,
        clients: 8,
        keysPerKeyspace: 12,
        atLeast: { ackedWrites: 200, faults: 4, maxSeconds: 15 },
        postgres,
        say: (l) => lines.push(l),
      });
      // What it did and found is printed by the run itself; show it when it fails.
      printReport(report, (l) => lines.push(l));
      expect(report.violations, lines.join("\n")).toEqual([]);
      expectMeaningful(report, 3);
    }, 120_000);
  }

  it("finds acknowledged write-behind writes lost when Redis goes back to an older snapshot (documented)", async () => {
    const lines: string[] = [];
    const report = await runChaos({
      profile: "lossy-cache",
      seed: 9,
      seconds: 5,
      clients: 4,
      keysPerKeyspace: 6,
      daemons: 2,
      postgres,
      keyspaces: [
        {
          name: "write-behind",
          strategy: "write-behind",
          // writes wait in the queue long enough for a snapshot restart to take them
          yaml: "strategy: write-behind, ttl: 1m, write_behind: { flush_interval: 3s }",
          synchronous: false,
        },
      ],
      faults: ["rdb-restart-redis"],
      say: (l) => lines.push(l),
    });
    const found = new Set(report.violations.map((v) => v.kind));
    expect(found.has("lost_write") || found.has("stale_read"), lines.join("\n")).toBe(true);
  }, 120_000);
});
