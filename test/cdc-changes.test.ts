/**
 * The transaction collector on its own: pgoutput messages in, what the cache must forget out. The
 * stream itself is exercised against a real PostgreSQL in cdc.test.ts; these pin the rules that need
 * table shapes the managed tables never produce (identity FULL, no tombstone row, a TOASTed key).
 */
import { describe, expect, it } from "vitest";
import { ChangeCollector, MAX_KEYS_PER_KEYSPACE, TOP_VERSION } from "../src/cdc/changes.js";
import { formatLsn, parseLsn, readStreamMessage, UNCHANGED, type PgoutputMessage } from "../src/cdc/wire.js";
import type { KeyspaceConfig } from "../src/config/types.js";

function ks(name: string, table: string, mapped?: KeyspaceConfig["mapped"]): KeyspaceConfig {
  return { name, table, mapped } as KeyspaceConfig;
}

const managedColumns = ["key", "value", "version", "updated_at"].map((name) => ({
  name,
  flags: name === "key" ? 1 : 0,
  typeOid: 25,
}));
const tombstoneColumns = ["tbl", "key", "version", "deleted_at"].map((name) => ({
  name,
  flags: 0,
  typeOid: 25,
}));

function relation(relid: number, name: string, columns = managedColumns): PgoutputMessage {
  return { type: "relation", relid, namespace: "public", name, replicaIdentity: "d", columns };
}

function txn(c: ChangeCollector, ...messages: PgoutputMessage[]) {
  c.feed({ type: "begin", finalLsn: 100n, commitMs: 1000, xid: 1 });
  for (const m of messages) c.feed(m);
  return c.feed({ type: "commit", commitLsn: 100n, endLsn: 108n, commitMs: 1000 })!;
}

describe("the change collector", () => {
  it("tombstones an inserted or updated key at its new version, in every keyspace on the table", () => {
    const c = new ChangeCollector([
      ks("a", "t", { keyColumn: "key", columns: ["value"], versionColumn: "version" }),
      ks("b", "t", { keyColumn: "key", columns: ["value"], versionColumn: "version" }),
    ]);
    c.feed(relation(1, "t"));
    const t = txn(
      c,
      { type: "insert", relid: 1, row: ["k1", "{}", "10", null] },
      { type: "update", relid: 1, row: ["k1", "{}", "12", null] },
      { type: "update", relid: 1, row: ["k2", "{}", "7", null] },
    );
    expect(t.endLsn).toBe(108n);
    for (const name of ["a", "b"]) {
      expect([...t.keys.get(name)!]).toEqual([
        ["k1", 12],
        ["k2", 7],
      ]);
    }
  });

  it("puts a delete above the version its tombstone row recorded in the same transaction", () => {
    const c = new ChangeCollector([ks("users", "t")]);
    c.feed(relation(1, "t"));
    c.feed(relation(2, "sidecache_tombstones", tombstoneColumns));
    const t = txn(
      c,
      { type: "delete", relid: 1, key: ["gone", null, null, null] },
      { type: "insert", relid: 2, row: ["t", "gone", "41", "now"] },
      { type: "insert", relid: 2, row: ["other_table", "gone", "99", "now"] },
    );
    expect(t.keys.get("users")!.get("gone")).toBe(41);
  });

  it("with the old row (REPLICA IDENTITY FULL), goes above a version the writer did not move", () => {
    const c = new ChangeCollector([ks("m", "t", { keyColumn: "id", columns: ["v"], versionColumn: "ver" })]);
    const cols = ["id", "v", "ver"].map((name) => ({ name, flags: 1, typeOid: 25 }));
    c.feed(relation(1, "t", cols));
    const t = txn(
      c,
      { type: "update", relid: 1, old: ["1", "a", "5"], row: ["1", "b", "5"] },
      { type: "update", relid: 1, old: ["2", "a", "5"], row: ["2", "b", "9"] },
      { type: "delete", relid: 1, old: ["3", "a", "20"] },
    );
    expect(Object.fromEntries(t.keys.get("m")!)).toEqual({ "1": 6, "2": 9, "3": 21 });
  });

  it("drops both keys of a primary-key change; without a recorded version the old key's tombstone is the top one", () => {
    const c = new ChangeCollector([ks("users", "t")]);
    c.feed(relation(1, "t"));
    const t = txn(c, {
      type: "update",
      relid: 1,
      key: ["old", null, null, null],
      row: ["new", "{}", "30", null],
    });
    expect(Object.fromEntries(t.keys.get("users")!)).toEqual({ new: 30, old: TOP_VERSION });
  });

  it("reads the key of a row whose TOASTed key did not change from the old key, and never needs a value", () => {
    const c = new ChangeCollector([ks("users", "t")]);
    c.feed(relation(1, "t"));
    const t = txn(c, { type: "update", relid: 1, row: ["k", UNCHANGED, "8", null] });
    expect(t.keys.get("users")!.get("k")).toBe(8);
    expect(t.dropped.size).toBe(0);
  });

  it("drops the keyspace when a change can not name its key, on TRUNCATE, and past the per-transaction key bound", () => {
    const c = new ChangeCollector([ks("users", "t"), ks("other", "u")]);
    c.feed(relation(1, "t"));
    c.feed(relation(2, "u"));
    const unkeyed = txn(c, { type: "update", relid: 1, row: [UNCHANGED, "{}", "8", null] });
    expect(unkeyed.dropped.get("users")).toBe("unkeyed");
    expect(unkeyed.keys.has("users")).toBe(false);

    const truncated = txn(
      c,
      { type: "insert", relid: 2, row: ["x", "{}", "3", null] },
      { type: "truncate", relids: [1] },
      { type: "insert", relid: 1, row: ["after", "{}", "4", null] },
    );
    expect([...truncated.dropped]).toEqual([["users", "truncate"]]);
    expect(truncated.keys.get("other")!.get("x")).toBe(3);

    const rows: PgoutputMessage[] = [];
    for (let i = 0; i <= MAX_KEYS_PER_KEYSPACE; i++) {
      rows.push({ type: "insert", relid: 2, row: [`k${i}`, "{}", "1", null] });
    }
    const big = txn(c, ...rows);
    expect(big.dropped.get("other")).toBe("too_many_keys");
    expect(big.keys.has("other")).toBe(false);
  });

  it("ignores tables no keyspace uses", () => {
    const c = new ChangeCollector([ks("users", "t")]);
    c.feed(relation(9, "elsewhere"));
    const t = txn(c, { type: "insert", relid: 9, row: ["k", "{}", "1", null] });
    expect(t.keys.size).toBe(0);
    expect(t.dropped.size).toBe(0);
  });
});

describe("the wire", () => {
  it("writes and reads LSNs as PostgreSQL prints them", () => {
    expect(formatLsn(parseLsn("16/B374D848"))).toBe("16/B374D848");
    expect(parseLsn("0/0")).toBe(0n);
    expect(parseLsn("FFFFFFFF/FFFFFFFF")).toBe(2n ** 64n - 1n);
    expect(() => parseLsn("16-B3")).toThrow(/Not an LSN/);
  });

  it("reads a primary keepalive", () => {
    const b = Buffer.alloc(18);
    b.write("k", 0, "latin1");
    b.writeBigUInt64BE(parseLsn("1/20"), 1);
    b.writeUInt8(1, 17);
    expect(readStreamMessage(b)).toEqual({
      tag: "keepalive",
      walEnd: parseLsn("1/20"),
      replyRequested: true,
    });
    expect(readStreamMessage(Buffer.from("?"))).toBeNull();
  });
});
