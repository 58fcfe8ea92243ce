/**
 * write-behind batches: a statement carries at most batch_size keys (rows), and a hot key set packs many
 * writes into each one (up to 8 × batch_size writes coalesced per key).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VersionedOp } from "../src/store/adapter.js";
import type { WriteBehindStrategy } from "../src/strategies/write-behind.js";
import { wbHarness, type WbHarness } from "./support/write-behind.js";

describe("write-behind batching", () => {
  let h: WbHarness;
  let wb: WriteBehindStrategy;
  const statements: number[] = [];

  beforeAll(async () => {
    h = await wbHarness({
      writeBehind: "{ flush_interval: 10s, batch_size: 5, max_queue: 100000, max_attempts: 3 }",
    });
    // Record the rows of every flush statement; the real store applies them.
    const apply = h.tableStore.applyVersioned.bind(h.tableStore);
    h.tableStore.applyVersioned = (ops: VersionedOp[]) => {
      statements.push(ops.length);
      return apply(ops);
    };
    wb = await h.strategy({ start: false });
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it("never puts more than batch_size keys in one statement", async () => {
    const last = new Map<string, number>();
    for (let i = 0; i < 200; i++) last.set(`k${i % 20}`, i);
    for (let i = 0; i < 200; i++) await wb.put(`k${i % 20}`, JSON.stringify(i), {});
    await wb.start();
    await wb.flush();
    expect(statements.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...statements)).toBeLessThanOrEqual(5);
    for (const [key, value] of last) expect((await h.row(key))?.value).toBe(value);
  });

  it("packs the writes of a hot key set into few statements", async () => {
    statements.length = 0;
    await wb.stop(0);
    const hot = await h.strategy({ start: false });
    for (let i = 0; i < 120; i++) await hot.put(`hot${i % 3}`, JSON.stringify(i), {});
    await hot.start();
    await hot.flush();
    // 120 writes to 3 keys: at most 8 × 5 = 40 writes a batch, so 3 statements of 3 rows each
    expect(statements.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(9);
    expect(statements.length).toBeLessThanOrEqual(3);
    expect((await h.row("hot0"))?.value).toBe(117);
    expect((await h.row("hot1"))?.value).toBe(118);
    expect((await h.row("hot2"))?.value).toBe(119);
  });
});
