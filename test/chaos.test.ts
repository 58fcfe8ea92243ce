/**
 * A short chaos run inside `npm test` (the long one is `npm run chaos`), and a check that the invariant
 * checks themselves catch each kind of violation on made-up histories.
 */
import { describe, expect, it } from "vitest";
import { runChaos } from "../bench/chaos/chaos.js";
import { History, type WriteRecord } from "../bench/chaos/history.js";
import { checkCache, checkReads, checkStore, type Row } from "../bench/chaos/invariants.js";

describe("the invariant checks", () => {
  const write = (n: number, version: number, start: number, end: number, acked = true): WriteRecord => ({
    ks: "ks",
    key: "k",
    value: { c: 1, n },
    start,
    end,
    acked,
    version: acked ? version : undefined,
    status: acked ? 200 : "error",
  });

  it("find a read older than a write acknowledged before it, and a value nobody wrote", () => {
    const h = new History();
    h.writes.push(write(1, 10, 0, 5), write(2, 20, 6, 9));
    h.reads.push({ ks: "ks", key: "k", start: 7, end: 8, status: 200, version: 10, value: { c: 1, n: 1 } }); // overlaps: fine
    h.reads.push({ ks: "ks", key: "k", start: 10, end: 11, status: 200, version: 10, value: { c: 1, n: 1 } }); // stale
    h.reads.push({ ks: "ks", key: "k", start: 12, end: 13, status: 404, version: 0 }); // stale
    h.reads.push({ ks: "ks", key: "k", start: 14, end: 15, status: 200, version: 30, value: { c: 9, n: 9 } }); // phantom
    const kinds = checkReads(h).map((v) => v.kind);
    expect(kinds).toEqual(["stale_read", "stale_read", "phantom_value"]);
  });

  it("find an acknowledged write missing from PostgreSQL, and accept a later unacknowledged one", () => {
    const h = new History();
    h.writes.push(write(1, 10, 0, 5), write(2, 20, 6, 9), write(3, 25, 10, 12, false));
    const rows = (row?: Row) => new Map([["ks", new Map(row ? [["k", row]] : [])]]);
    expect(checkStore(h, rows({ version: 20, value: { c: 1, n: 2 } }))).toEqual([]);
    expect(checkStore(h, rows({ version: 25, value: { c: 1, n: 3 } }))).toEqual([]);
    expect(checkStore(h, rows({ version: 10, value: { c: 1, n: 1 } })).map((v) => v.kind)).toEqual([
      "lost_write",
    ]);
    expect(checkStore(h, rows()).map((v) => v.kind)).toEqual(["lost_write"]);
  });

  it("find a cache entry that differs from PostgreSQL", () => {
    const rows = new Map([["ks", new Map([["k", { version: 20, value: { c: 1, n: 2 } }]])]]);
    const entries = (
      e: Parameters<typeof checkCache>[1] extends Map<string, Map<string, infer E>> ? E : never,
    ) => new Map([["ks", new Map([["k", e]])]]);
    expect(
      checkCache(rows, entries({ kind: "value", version: 20, value: '{"c":1,"n":2}', freshUntil: 0 })),
    ).toEqual([]);
    expect(checkCache(rows, entries({ kind: "tombstone", version: 20, freshUntil: 0 }))).toEqual([]);
    expect(
      checkCache(rows, entries({ kind: "value", version: 10, value: '{"c":1,"n":1}', freshUntil: 0 })),
    ).toHaveLength(1);
    expect(checkCache(rows, entries({ kind: "absent", version: 0, freshUntil: 0 }))).toHaveLength(1);
  });
});

describe("chaos", () => {
  it("mixed traffic over every writable strategy while Redis, PostgreSQL and the daemon die: no violation", async () => {
    const lines: string[] = [];
    const report = await runChaos({
      seconds: 12,
      clients: 8,
      keysPerKeyspace: 12,
      seed: Number(process.env.SIDECACHE_CHAOS_SEED ?? Date.now() % 100_000),
      say: (l) => lines.push(l),
    });
    // What it did and found is printed by the run itself; show it when it fails.
    expect(report.violations, lines.join("\n")).toEqual([]);
    expect(report.faults.length).toBeGreaterThan(0);
    expect(report.writes.acked).toBeGreaterThan(100);
    expect(report.reads).toBeGreaterThan(100);
  }, 120_000);
});
