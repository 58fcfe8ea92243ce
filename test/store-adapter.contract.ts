/**
 * What every StoreAdapter must do, whatever its driver. A test file calls storeAdapterContract once per
 * adapter; `make` opens a fresh adapter on an empty (or at least uniquely named) part of a database.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoreRejectedError, VersionMismatchError, VersionTakenError } from "../src/errors.js";
import type { StoreAdapter, TableStore } from "../src/store/adapter.js";
import { quoteIdent } from "../src/store/sql-store.js";

/** Runs SQL on the adapter's own database (for fixtures such as a mapped table). */
export type RawSql = (sql: string) => Promise<void>;

export function storeAdapterContract(
  name: string,
  make: () => Promise<{ store: StoreAdapter; sql: RawSql }>,
): void {
  describe(`StoreAdapter contract: ${name}`, () => {
    const suffix = randomBytes(4).toString("hex");
    const tables: string[] = [];
    let store: StoreAdapter;
    let sql: RawSql;
    let n = 0;

    /** A fresh managed table, dropped after the run. */
    async function fresh(): Promise<TableStore> {
      const table = `sc_contract_${suffix}_${n++}`;
      tables.push(table);
      return store.table({ table });
    }

    const at = (v: number) => ({ minVersion: v });

    beforeAll(async () => {
      ({ store, sql } = await make());
    });

    afterAll(async () => {
      if (!store) return;
      for (const t of tables) await sql(`drop table if exists ${quoteIdent(t)}`);
      await sql(`delete from sidecache_tombstones where tbl like 'sc_contract_${suffix}%'`);
      await store.close();
    });

    it("has the StoreAdapter and TableStore methods", async () => {
      expect(typeof store.kind).toBe("string");
      for (const m of ["table", "ping", "close"] as const) expect(typeof store[m]).toBe("function");
      await expect(store.ping()).resolves.toBeUndefined();
      const t = await fresh();
      for (const m of [
        "get",
        "getMany",
        "write",
        "applyVersioned",
        "currentVersion",
        "sampleKeys",
        "scanKeys",
      ] as const) {
        expect(typeof t[m]).toBe("function");
      }
    });

    it("creates a managed table with the contract's columns, and opens it again", async () => {
      const table = `sc_contract_${suffix}_${n++}`;
      tables.push(table);
      await store.table({ table });
      await store.table({ table }); // already there: no error
      await Promise.all([store.table({ table }), store.table({ table })]);
      const t = await store.table({ table });
      await t.write([{ key: "a", value: "1" }], at(1));
      expect(await t.get("a")).toEqual({ key: "a", value: "1", version: 1 });
    });

    it("round-trips values and keys of every kind", async () => {
      const t = await fresh();
      const big = JSON.stringify({ blob: "x".repeat(1024 * 1024) });
      const cases: [string, string][] = [
        ["unicode", JSON.stringify("héllo wörld — 日本語 ✓")],
        ["nested", JSON.stringify({ a: [1, { b: { c: [true, false, null] } }], d: "e" })],
        ["null", "null"],
        ["number", "42"],
        ["float", "-1.5e-7"],
        ["string", JSON.stringify("just a string")],
        ["array", "[1,2,3]"],
        ["big", big],
        ["'; drop table x; --", JSON.stringify({ q: "'\"\\" })],
        ["a/b/c", JSON.stringify("slashes")],
        ["🙂 emoji 👍🏽", JSON.stringify("🎉")],
        ["with space and %20", "true"],
      ];
      await t.write(
        cases.map(([key, value]) => ({ key, value })),
        at(10),
      );
      for (const [key, value] of cases) {
        const row = await t.get(key);
        expect(row, key).not.toBeNull();
        expect(row!.key).toBe(key);
        expect(JSON.parse(row!.value)).toEqual(JSON.parse(value));
        expect(row!.version).toBe(10);
      }
      expect(await t.get("absent")).toBeNull();
      expect(await t.get("'; drop table x; --")).not.toBeNull();
    });

    it("refuses a value that is not JSON, writing nothing", async () => {
      const t = await fresh();
      await expect(t.write([{ key: "k", value: "{not json" }], at(1))).rejects.toBeInstanceOf(
        StoreRejectedError,
      );
      expect(await t.get("k")).toBeNull();
      // PostgreSQL text can not hold NUL: such keys and strings are the request's fault, not a server error.
      await expect(t.write([{ key: "k", value: '"nul \\u0000 inside"' }], at(1))).rejects.toBeInstanceOf(
        StoreRejectedError,
      );
      await expect(t.write([{ key: "nul\u0000key", value: "1" }], at(1))).rejects.toBeInstanceOf(
        StoreRejectedError,
      );
    });

    it("gives versions that only grow across put, put, delete, put", async () => {
      const t = await fresh();
      const [p1] = await t.write([{ key: "k", value: "1" }], at(100));
      const [p2] = await t.write([{ key: "k", value: "2" }], at(1));
      const [d] = await t.write([{ key: "k", value: null }], at(1));
      expect(await t.get("k")).toBeNull();
      const [p3] = await t.write([{ key: "k", value: "3" }], at(1));
      expect(p1!.version).toBe(100);
      expect(p2!.version).toBeGreaterThan(p1!.version);
      expect(d).toMatchObject({ key: "k", deleted: true, existed: true });
      expect(d!.version).toBeGreaterThan(p2!.version);
      expect(p3!.version).toBeGreaterThan(d!.version);
      expect(await t.get("k")).toEqual({ key: "k", value: "3", version: p3!.version });
      expect(await t.currentVersion("k")).toBe(p3!.version);
    });

    it("respects minVersion and reports tombstone versions through currentVersion", async () => {
      const t = await fresh();
      const [a] = await t.write([{ key: "k", value: "1" }], at(5_000));
      expect(a!.version).toBe(5_000);
      const [b] = await t.write([{ key: "k", value: "2" }], at(9_000));
      expect(b!.version).toBe(9_000);
      const [d] = await t.write([{ key: "k", value: null }], at(12_000));
      expect(d!.version).toBe(12_000);
      expect(await t.currentVersion("k")).toBe(12_000);
      expect(await t.currentVersion("never")).toBe(0);
      const [gone] = await t.write([{ key: "never-was", value: null }], at(7));
      expect(gone).toEqual({ key: "never-was", version: 7, deleted: true, existed: false });
      expect(await t.currentVersion("never-was")).toBe(7);
      const [back] = await t.write([{ key: "never-was", value: "1" }], at(1));
      expect(back!.version).toBe(8);
    });

    it("checks If-Match: right version, wrong version, absent key", async () => {
      const t = await fresh();
      const [v] = await t.write([{ key: "k", value: "1" }], at(10));
      const [ok] = await t.write([{ key: "k", value: "2", ifMatch: v!.version }], at(1));
      expect(ok!.version).toBeGreaterThan(v!.version);
      await expect(t.write([{ key: "k", value: "3", ifMatch: v!.version }], at(1))).rejects.toBeInstanceOf(
        VersionMismatchError,
      );
      expect(await t.get("k")).toMatchObject({ value: "2", version: ok!.version });
      await expect(t.write([{ key: "nope", value: "1", ifMatch: 1 }], at(1))).rejects.toBeInstanceOf(
        VersionMismatchError,
      );
      expect(await t.get("nope")).toBeNull();
      await expect(t.write([{ key: "k", value: null, ifMatch: ok!.version }], at(1))).resolves.toHaveLength(
        1,
      );
      expect(await t.get("k")).toBeNull();
    });

    it("checks If-None-Match: refuses an existing key, takes an absent one", async () => {
      const t = await fresh();
      await t.write([{ key: "k", value: "1" }], at(1));
      await expect(t.write([{ key: "k", value: "2", ifNoneMatch: true }], at(1))).rejects.toBeInstanceOf(
        VersionMismatchError,
      );
      expect(await t.get("k")).toMatchObject({ value: "1" });
      const [r] = await t.write([{ key: "new", value: "2", ifNoneMatch: true }], at(1));
      expect(r).toMatchObject({ key: "new", deleted: false, existed: false });
      expect(await t.get("new")).toMatchObject({ value: "2" });
    });

    it("writes a batch all or nothing", async () => {
      const t = await fresh();
      await t.write([{ key: "b", value: "0" }], at(1));
      const batch = [
        { key: "a", value: "1" },
        { key: "b", value: "2", ifMatch: 999_999 },
        { key: "c", value: "3" },
      ];
      await expect(t.write(batch, at(10))).rejects.toBeInstanceOf(VersionMismatchError);
      await expect(
        t.write(
          [
            { key: "a", value: "1" },
            { key: "c", value: "{bad json" },
          ],
          at(10),
        ),
      ).rejects.toBeInstanceOf(StoreRejectedError);
      expect((await t.getMany(["a", "b", "c"])).size).toBe(1);
      expect(await t.get("b")).toMatchObject({ value: "0", version: 1 });

      const results = await t.write(
        [
          { key: "z", value: "26" },
          { key: "a", value: "1" },
          { key: "b", value: null },
        ],
        at(20),
      );
      expect(results.map((r) => r.key)).toEqual(["z", "a", "b"]);
      expect(results[2]).toMatchObject({ deleted: true, existed: true });
      expect([...(await t.getMany(["a", "b", "z"])).keys()].sort()).toEqual(["a", "z"]);
    });

    it("writes at an announced version, or nothing when the key already has it", async () => {
      const t = await fresh();
      const [a] = await t.write([{ key: "k", value: "1", atVersion: 500 }], at(1));
      expect(a).toMatchObject({ key: "k", version: 500 });
      const taken = await t.write([{ key: "k", value: "2", atVersion: 500 }], at(1)).catch((e: unknown) => e);
      expect(taken).toBeInstanceOf(VersionTakenError);
      expect((taken as VersionTakenError).current).toEqual(new Map([["k", 500]]));
      await t.write([{ key: "k", value: null }], at(900));
      // the tombstone counts: a version at or below the delete's is taken too
      const below = await t.write([{ key: "k", value: "3", atVersion: 900 }], at(1)).catch((e: unknown) => e);
      expect((below as VersionTakenError).current).toEqual(new Map([["k", 900]]));
      // a batch is all or nothing: one taken version writes none of it
      const batch = t.write(
        [
          { key: "fresh", value: "1", atVersion: 1_000 },
          { key: "k", value: "4", atVersion: 800 },
        ],
        at(1),
      );
      await expect(batch).rejects.toBeInstanceOf(VersionTakenError);
      expect(await t.get("fresh")).toBeNull();
      expect(await t.get("k")).toBeNull();
      const [b] = await t.write([{ key: "k", value: "5", atVersion: 901 }], at(1));
      expect(await t.get("k")).toEqual({ key: "k", value: "5", version: b!.version });
      expect(b!.version).toBe(901);
    });

    it("reads many keys at once", async () => {
      const t = await fresh();
      await t.write(
        [
          { key: "a", value: "1" },
          { key: "b", value: "null" },
        ],
        at(3),
      );
      const m = await t.getMany(["a", "b", "c", "a"]);
      expect([...m.keys()].sort()).toEqual(["a", "b"]);
      expect(m.get("b")).toEqual({ key: "b", value: "null", version: 3 });
      expect((await t.getMany([])).size).toBe(0);
    });

    it("applies versioned batches without ever moving a key backwards", async () => {
      const t = await fresh();
      const newer = [
        { key: "a", value: '"a2"', version: 200 },
        { key: "b", value: null, version: 200 },
        { key: "c", value: '"c2"', version: 200 },
      ];
      const older = [
        { key: "a", value: '"a1"', version: 100 },
        { key: "b", value: '"b1"', version: 100 },
        { key: "c", value: null, version: 100 },
      ];
      expect(await t.applyVersioned(newer)).toBe(2); // two puts; b had no row to delete
      expect(await t.applyVersioned(older)).toBe(0);
      expect(await t.applyVersioned(newer)).toBe(0); // replay: nothing changes
      expect(await t.get("a")).toMatchObject({ value: '"a2"', version: 200 });
      expect(await t.get("b")).toBeNull(); // an older put does not resurrect a deleted key
      expect(await t.get("c")).toMatchObject({ value: '"c2"', version: 200 });
      expect(await t.currentVersion("b")).toBe(200);

      expect(
        await t.applyVersioned([
          { key: "a", value: null, version: 300 },
          { key: "b", value: '"b3"', version: 300 },
          { key: "d", value: "4", version: 300 },
        ]),
      ).toBe(3);
      expect(await t.get("a")).toBeNull();
      expect(await t.get("b")).toMatchObject({ value: '"b3"', version: 300 });
      expect(await t.applyVersioned([{ key: "a", value: '"late"', version: 250 }])).toBe(0);
      expect(await t.get("a")).toBeNull();
      // write() continues above what applyVersioned left, tombstones included.
      const [w] = await t.write([{ key: "a", value: '"w"' }], at(1));
      expect(w!.version).toBe(301);
      expect(await t.applyVersioned([])).toBe(0);
      // Ops are meant to hold one op per key; if not, the newest of a key wins.
      expect(
        await t.applyVersioned([
          { key: "e", value: '"e2"', version: 502 },
          { key: "e", value: '"e1"', version: 501 },
        ]),
      ).toBe(1);
      expect(await t.get("e")).toMatchObject({ value: '"e2"', version: 502 });
    });

    it("samples and scans keys", async () => {
      const t = await fresh();
      const keys = Array.from({ length: 120 }, (_, i) => `key-${String(i).padStart(3, "0")}`);
      await t.write(
        keys.map((key) => ({ key, value: "1" })),
        at(1),
      );
      const sample = await t.sampleKeys(10);
      expect(sample).toHaveLength(10);
      expect(new Set(sample).size).toBe(10);
      for (const k of sample) expect(keys).toContain(k);
      expect(await t.sampleKeys(500)).toHaveLength(120);

      const seen: string[] = [];
      let after: string | null = null;
      for (;;) {
        const page: string[] = await t.scanKeys(after, 50);
        if (page.length === 0) break;
        seen.push(...page);
        after = page[page.length - 1]!;
      }
      expect(seen).toEqual(keys);
      // Byte order ("C"), whatever the database's collation says.
      const t2 = await fresh();
      await t2.write(
        ["b", "B", "a", "_", "é"].map((key) => ({ key, value: "1" })),
        at(1),
      );
      expect(await t2.scanKeys(null, 10)).toEqual(["B", "_", "a", "b", "é"]);
      expect(await t2.scanKeys("_", 2)).toEqual(["a", "b"]);
    });

    it("samples a table too large to sort at random (TABLESAMPLE)", async () => {
      const t = await fresh();
      for (let b = 0; b < 6; b++) {
        await t.write(
          Array.from({ length: 1000 }, (_, i) => ({ key: `k${b * 1000 + i}`, value: String(i) })),
          at(1),
        );
      }
      const sample = await t.sampleKeys(25);
      expect(sample).toHaveLength(25);
      expect(new Set(sample).size).toBe(25);
      expect((await t.getMany(sample)).size).toBe(25);
    });

    it("serves a mapped table: get, put, delete, and refuses what its columns can not hold", async () => {
      const table = `sc_contract_${suffix}_orders`;
      tables.push(table);
      await sql(
        `create table ${quoteIdent(table)} (id int primary key, status text, total numeric, version bigint, note text)`,
      );
      await sql(`insert into ${quoteIdent(table)} (id, status, total, version) values (1, 'new', 12.50, 7)`);
      const t = await store.table({
        table,
        mapped: { keyColumn: "id", columns: ["id", "status", "total"], versionColumn: "version" },
      });
      const row = await t.get("1");
      expect(row).toMatchObject({ key: "1", version: 7 });
      expect(JSON.parse(row!.value)).toEqual({ id: 1, status: "new", total: 12.5 });
      expect(await t.get("2")).toBeNull();
      expect(await t.get("abc")).toBeNull();
      expect(await t.get("01")).toBeNull();

      const [w] = await t.write(
        [{ key: "2", value: JSON.stringify({ status: "paid", total: 99.9 }) }],
        at(50),
      );
      expect(w).toMatchObject({ key: "2", version: 50, deleted: false });
      expect(JSON.parse((await t.get("2"))!.value)).toEqual({ id: 2, status: "paid", total: 99.9 });
      const [u] = await t.write([{ key: "1", value: JSON.stringify({ id: 1, status: "shipped" }) }], at(1));
      expect(u!.version).toBe(8);
      expect(JSON.parse((await t.get("1"))!.value)).toEqual({ id: 1, status: "shipped", total: null });
      expect([...(await t.getMany(["1", "2", "3", "abc"])).keys()].sort()).toEqual(["1", "2"]);

      for (const value of ['"a string"', "[1,2]", "null", JSON.stringify({ total: "abc" }), '{"nope": 1}']) {
        await expect(t.write([{ key: "3", value }], at(1)), value).rejects.toBeInstanceOf(StoreRejectedError);
      }
      await expect(t.write([{ key: "x", value: "{}" }], at(1))).rejects.toBeInstanceOf(StoreRejectedError);
      expect(await t.get("3")).toBeNull();

      const [d] = await t.write([{ key: "2", value: null }], at(1));
      expect(d).toMatchObject({ deleted: true, existed: true, version: 51 });
      expect(await t.get("2")).toBeNull();
      const [again] = await t.write([{ key: "2", value: JSON.stringify({ status: "again" }) }], at(1));
      expect(again!.version).toBe(52);

      expect(
        await t.applyVersioned([
          { key: "2", value: JSON.stringify({ status: "old" }), version: 10 },
          { key: "5", value: JSON.stringify({ status: "five", total: 5 }), version: 60 },
          { key: "1", value: null, version: 60 },
        ]),
      ).toBe(2);
      expect(JSON.parse((await t.get("2"))!.value)).toMatchObject({ status: "again" });
      expect(JSON.parse((await t.get("5"))!.value)).toEqual({ id: 5, status: "five", total: 5 });
      expect(await t.get("1")).toBeNull();
      expect(await t.currentVersion("1")).toBe(60);
      expect(await t.scanKeys(null, 10)).toEqual(["2", "5"]);
      expect((await t.sampleKeys(10)).sort()).toEqual(["2", "5"]);
    });

    it("serves a mapped table whose columns bear the names its statements use inside (k, v, n, i, keys, tbl)", async () => {
      const table = `sc_contract_${suffix}_names`;
      tables.push(table);
      await sql(
        `create table ${quoteIdent(table)} (k text primary key, v text, n int, i int, keys text, tbl text, version bigint)`,
      );
      const t = await store.table({
        table,
        mapped: { keyColumn: "k", columns: ["k", "v", "n", "i", "keys", "tbl"], versionColumn: "version" },
      });
      const value = { v: "vee", n: 3, i: 4, keys: "ks", tbl: "tb" };
      const [w] = await t.write([{ key: "a", value: JSON.stringify(value) }], at(10));
      expect(w).toMatchObject({ key: "a", version: 10, deleted: false, existed: false });
      expect(JSON.parse((await t.get("a"))!.value)).toEqual({ k: "a", ...value });
      await expect(t.write([{ key: "a", value: "{}", ifMatch: 9 }], at(1))).rejects.toBeInstanceOf(
        VersionMismatchError,
      );
      const [u] = await t.write([{ key: "a", value: JSON.stringify({ n: 5 }), ifMatch: 10 }], at(1));
      expect(u!.version).toBe(11);
      const [d] = await t.write([{ key: "a", value: null }], at(1));
      expect(d).toMatchObject({ deleted: true, existed: true, version: 12 });
      expect(await t.settledVersion("a")).toBe(12);
      expect(
        await t.applyVersioned([
          { key: "a", value: JSON.stringify({ v: "old" }), version: 11 },
          { key: "b", value: JSON.stringify({ v: "bee" }), version: 20 },
        ]),
      ).toBe(1);
      expect(await t.get("a")).toBeNull();
      expect(JSON.parse((await t.get("b"))!.value)).toMatchObject({ k: "b", v: "bee" });
    });

    it("names the table and columns when a mapping does not match the database", async () => {
      const missing = `sc_contract_${suffix}_missing`;
      await expect(
        store.table({
          table: missing,
          mapped: { keyColumn: "id", columns: ["id"], versionColumn: "version" },
        }),
      ).rejects.toThrow(missing);
      const table = `sc_contract_${suffix}_partial`;
      tables.push(table);
      await sql(`create table ${quoteIdent(table)} (id int primary key, version bigint)`);
      await expect(
        store.table({
          table,
          mapped: { keyColumn: "id", columns: ["id", "colour"], versionColumn: "version" },
        }),
      ).rejects.toThrow(/colour/);
    });

    it("gives 50 concurrent writes of one key 50 distinct versions", async () => {
      const t = await fresh();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => t.write([{ key: "hot", value: String(i) }], at(1))),
      );
      const versions = results.map((r) => r[0]!.version);
      expect(new Set(versions).size).toBe(50);
      const row = await t.get("hot");
      expect(row!.version).toBe(Math.max(...versions));
      // Batches over the same keys in different orders neither deadlock nor fail.
      const orders = [
        ["x", "y", "z"],
        ["z", "y", "x"],
        ["y", "x", "z"],
      ];
      const batches = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          t.write(
            orders[i % 3]!.map((key) => ({ key, value: String(i) })),
            at(1),
          ),
        ),
      );
      expect(new Set(batches.map((b) => b.find((r) => r.key === "x")!.version)).size).toBe(30);
      // And concurrent creations of fresh keys with If-None-Match: exactly one wins each key.
      const creations = await Promise.allSettled(
        Array.from({ length: 10 }, () => t.write([{ key: "once", value: "1", ifNoneMatch: true }], at(1))),
      );
      expect(creations.filter((c) => c.status === "fulfilled")).toHaveLength(1);
      for (const c of creations) {
        if (c.status === "rejected") expect(c.reason).toBeInstanceOf(VersionMismatchError);
      }
    });
  });
}
