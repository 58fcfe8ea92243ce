/** write-behind: writes PostgreSQL refuses for good go to the dead letters while their neighbours land. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WriteBehindStrategy } from "../src/strategies/write-behind.js";
import { wbHarness, type WbHarness } from "./support/write-behind.js";

describe("write-behind dead letters", () => {
  let h: WbHarness;
  let wb: WriteBehindStrategy;

  beforeAll(async () => {
    h = await wbHarness({
      writeBehind: "{ flush_interval: 100ms, batch_size: 500, max_queue: 100000, max_attempts: 3 }",
      mapped: {
        create:
          "create table TABLE (id text primary key, qty integer not null check (qty >= 0), version bigint not null)",
        yaml: ["key_column: id", "columns: [id, qty]", "version_column: version"],
      },
    });
    wb = await h.strategy();
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  const qty = async (id: string) =>
    (await h.pg.query(`select qty from ${h.table} where id = $1`, [id])).rows[0]?.qty as number | undefined;

  it("dead-letters a refused write after max_attempts, lands its neighbours and the key's last good write", async () => {
    const writes: [string, number][] = [
      ["g1", 1],
      ["k", 5],
      ["p", -1],
      ["g2", 2],
      ["k", -5],
      ["g3", 3],
    ];
    for (const [id, n] of writes) await wb.put(id, JSON.stringify({ id, qty: n }), {});
    expect((await wb.get("p")).found).toBe(true);

    await wb.flush();
    expect(await qty("g1")).toBe(1);
    expect(await qty("g2")).toBe(2);
    expect(await qty("g3")).toBe(3);
    expect(await qty("k")).toBe(5);
    expect(await qty("p")).toBeUndefined();

    const status = await wb.queueStatus();
    expect(status).toMatchObject({ depth: 0, deadLetters: 2 });
    const dead = h.events.filter((e) => e.type === "wb_dead_letter");
    expect(dead.map((e) => (e as { key: string }).key).sort()).toEqual(["k", "p"]);

    // Reads stop showing values PostgreSQL will never hold.
    expect((await wb.get("p")).found).toBe(false);
    const k = await wb.get("k");
    expect(JSON.parse(k.value!)).toEqual({ id: "k", qty: 5 });
    expect(await wb.pendingVersions(["p", "k"])).toEqual(new Map());

    const letters = await wb.listDeadLetters();
    expect(letters).toHaveLength(2);
    const p = letters.find((l) => l.key === "p")!;
    expect(p.attempts).toBe(3);
    expect(p.reason).toMatch(/check/i);
    expect(JSON.parse(p.value!)).toEqual({ id: "p", qty: -1 });

    // An operator drops one and, once the table allows it, replays the other.
    expect(await wb.dropDeadLetter(letters.find((l) => l.key === "k")!.id)).toBe(true);
    await h.pg.query(`alter table ${h.table} drop constraint ${h.table}_qty_check`);
    const version = await wb.replayDeadLetter(p.id);
    expect(version).toBeGreaterThan(p.version);
    await wb.flush();
    expect(await qty("p")).toBe(-1);
    expect(await qty("k")).toBe(5);
    expect(await wb.listDeadLetters()).toEqual([]);
    expect((await wb.queueStatus()).deadLetters).toBe(0);
    expect(await wb.replayDeadLetter(p.id)).toBeNull();
  });

  it("a value of the wrong type for a mapped column is dead-lettered too", async () => {
    await wb.put("t1", JSON.stringify({ id: "t1", qty: "many" }), {});
    await wb.put("t2", JSON.stringify({ id: "t2", qty: 7 }), {});
    await wb.flush();
    expect(await qty("t2")).toBe(7);
    expect(await qty("t1")).toBeUndefined();
    const letters = await wb.listDeadLetters();
    expect(letters.map((l) => l.key)).toEqual(["t1"]);
    expect((await wb.queueStatus()).deadLetters).toBe(1);
  });
});
