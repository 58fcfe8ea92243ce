/**
 * Group commit, at the store: writes that arrive while a statement of their table is in flight share the
 * next statement, and each is answered on its own. A statement is held in flight by an advisory lock a
 * test session takes on its key (the lock every write takes), so the writes under test queue up and go
 * out together; a proxy in front of PostgreSQL counts the statements it receives.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgProxy } from "../bench/lib/pgproxy.js";
import { StoreRejectedError, VersionMismatchError, VersionTakenError } from "../src/errors.js";
import type { StoreAdapter, TableStore, WriteOp, WriteResult } from "../src/store/adapter.js";
import { createStore } from "../src/store/index.js";
import { PG_URL, uniqueTag } from "./support/daemon.js";

const tag = uniqueTag();
const table = `${tag}_batch`;
let proxy: PgProxy;
let store: StoreAdapter;
let t: TableStore;
let db: pg.Client;
let blocker: pg.Client;

beforeAll(async () => {
  const u = new URL(PG_URL);
  proxy = new PgProxy({ host: u.hostname, port: Number(u.port || 5432) }, 0, [table]);
  proxy.watch("writes", /sidecache_(under_key_locks|locked_)/);
  await proxy.listen();
  const url = `postgres://${u.username}@127.0.0.1:${proxy.port}${u.pathname}`;
  store = await createStore({ url, poolSize: 10, timeoutMs: 10_000 });
  t = await store.table({ table });
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  blocker = new pg.Client({ connectionString: PG_URL });
  await blocker.connect();
  // A row refused at once (a check), and one refused only at the commit (a deferred constraint trigger).
  await db.query(`alter table ${table} add constraint ${table}_no_refused check (not (value ? 'refused'))`);
  await db.query(`
    create or replace function ${tag}_deferred() returns trigger language plpgsql as $$
    begin
      if new.value ? 'refused_at_commit' then
        raise exception 'refused at the commit' using errcode = '23514';
      end if;
      return new;
    end $$`);
  await db.query(`create constraint trigger ${table}_deferred after insert or update on ${table}
    deferrable initially deferred for each row execute function ${tag}_deferred()`);
});

afterAll(async () => {
  await blocker?.end();
  await db?.query(`drop table if exists ${table}`);
  await db?.query(`drop function if exists ${tag}_deferred() cascade`);
  await db?.query(`delete from sidecache_tombstones where tbl = $1`, [table]);
  await db?.end();
  await store?.close();
  await proxy?.close();
});

type Answer = WriteResult[] | Error;

/**
 * Holds a statement in flight (its key locked by the blocker session), sends `units` in the same turn so
 * they queue behind it, and returns each unit's answer and how many write statements reached PostgreSQL
 * for them. The blocked write is let go at the end.
 */
async function batch(units: WriteOp[][]): Promise<{ answers: Answer[]; statements: number }> {
  const held = [`held-${Math.random()}`];
  await blocker.query(`select pg_advisory_lock(hashtext($1), hashtext(k)) from unnest($2::text[]) as k`, [
    table,
    held,
  ]);
  const blocked = held.map((k) => t.write([{ key: k, value: "0" }], { minVersion: 1 }));
  const before = proxy.watched("writes");
  const answers = await Promise.all(
    units.map((ops) => t.write(ops, { minVersion: 1 }).catch((e: unknown) => e as Error)),
  );
  const statements = proxy.watched("writes") - before - held.length;
  await blocker.query(`select pg_advisory_unlock_all()`);
  await Promise.all(blocked);
  return { answers, statements };
}

async function rowOf(key: string): Promise<unknown> {
  const r = await db.query(`select value from ${table} where key = $1`, [key]);
  return r.rows[0]?.value ?? null;
}

describe("each write of a batch answered on its own", () => {
  it("conditions: a failed If-Match or If-None-Match fails that write only, in one statement", async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const first = await Promise.all(
      keys.map((k) => t.write([{ key: k, value: '{"v": 1}' }], { minVersion: 1 })),
    );
    const v = (i: number) => first[i]![0]!.version;
    const { answers, statements } = await batch([
      [{ key: "c0", value: '{"v": 2}' }],
      [{ key: "c1", value: '{"v": 2}', ifMatch: v(1) + 1000 }], // wrong version
      [{ key: "c2", value: '{"v": 2}', ifMatch: v(2) }], // right version
      [{ key: "c3", value: '{"v": 2}', ifNoneMatch: true }], // exists
      [{ key: "c-new", value: '{"v": 2}', ifNoneMatch: true }], // absent: created
      [{ key: "c4", value: null, ifMatch: v(4) }], // a delete with the right version
      [{ key: "c5", value: null, ifMatch: v(5) + 1 }], // a delete with a wrong one
      [{ key: "c-missing", value: '{"v": 2}', ifMatch: 1 }], // no such key
    ]);
    expect(statements).toBe(1);
    const ok = (i: number) => (answers[i] as WriteResult[])[0]!;
    expect(ok(0).version).toBeGreaterThan(v(0));
    expect(answers[1]).toBeInstanceOf(VersionMismatchError);
    expect((answers[1] as Error).message).toContain(`is at version ${v(1)}, not ${v(1) + 1000}`);
    expect(ok(2).version).toBeGreaterThan(v(2));
    expect(answers[3]).toBeInstanceOf(VersionMismatchError);
    expect((answers[3] as Error).message).toContain("already exists");
    expect(ok(4)).toMatchObject({ key: "c-new", existed: false, deleted: false });
    expect(ok(5)).toMatchObject({ key: "c4", existed: true, deleted: true });
    expect(answers[6]).toBeInstanceOf(VersionMismatchError);
    expect(answers[7]).toBeInstanceOf(VersionMismatchError);
    expect((answers[7] as Error).message).toContain("does not exist");
    expect(await rowOf("c0")).toEqual({ v: 2 });
    expect(await rowOf("c1")).toEqual({ v: 1 });
    expect(await rowOf("c2")).toEqual({ v: 2 });
    expect(await rowOf("c3")).toEqual({ v: 1 });
    expect(await rowOf("c-new")).toEqual({ v: 2 });
    expect(await rowOf("c4")).toBeNull();
    expect(await rowOf("c5")).toEqual({ v: 1 });
    expect(await rowOf("c-missing")).toBeNull();
    // the delete left its tombstone: the key's next version is above it
    const [again] = await t.write([{ key: "c4", value: '{"v": 3}' }], { minVersion: 1 });
    expect(again!.version).toBeGreaterThan(ok(5).version);
  });

  it("a row PostgreSQL refuses fails that write only; the others are written", async () => {
    const { answers, statements } = await batch([
      [{ key: "r0", value: '{"v": 1}' }],
      [{ key: "r1", value: '{"refused": true}' }],
      [{ key: "r2", value: '{"v": 1}' }],
      [{ key: "r3", value: '"not an object"' }],
      [{ key: "r4", value: null }],
    ]);
    expect(answers[1]).toBeInstanceOf(StoreRejectedError);
    expect((answers[1] as Error).message).toContain("no_refused");
    for (const i of [0, 2, 3, 4]) expect(Array.isArray(answers[i]), String(answers[i])).toBe(true);
    // one statement for the batch, refused; then each write alone to find the refused one
    expect(statements).toBe(1 + 5);
    expect(await rowOf("r0")).toEqual({ v: 1 });
    expect(await rowOf("r1")).toBeNull();
    expect(await rowOf("r2")).toEqual({ v: 1 });
    expect(await rowOf("r3")).toBe("not an object");
  });

  it("a deferred constraint refusing the whole commit fails the write it refused, and only that one", async () => {
    await t.write([{ key: "d1", value: '{"v": 1}' }], { minVersion: 1 });
    const { answers, statements } = await batch([
      [{ key: "d0", value: '{"v": 2}' }],
      [{ key: "d1", value: '{"refused_at_commit": true}' }],
      [{ key: "d2", value: '{"v": 2}' }],
    ]);
    expect(answers[1]).toBeInstanceOf(StoreRejectedError);
    expect((answers[1] as Error).message).toContain("refused at the commit");
    expect(Array.isArray(answers[0])).toBe(true);
    expect(Array.isArray(answers[2])).toBe(true);
    expect(statements).toBe(1 + 3);
    expect(await rowOf("d0")).toEqual({ v: 2 });
    expect(await rowOf("d1")).toEqual({ v: 1 });
    expect(await rowOf("d2")).toEqual({ v: 2 });
  });

  it("a request of many writes (_mset) stays all or nothing inside a batch", async () => {
    await t.write([{ key: "m1", value: '{"v": 1}' }], { minVersion: 1 });
    const { answers } = await batch([
      [{ key: "m0", value: '{"v": 1}' }],
      // refused as a whole: one of its rows is refused
      [
        { key: "m2", value: '{"v": 1}' },
        { key: "m3", value: '{"refused": true}' },
      ],
      // refused as a whole: one of its conditions fails
      [
        { key: "m4", value: '{"v": 1}' },
        { key: "m1", value: '{"v": 2}', ifMatch: 424_242 },
      ],
      // written as a whole
      [
        { key: "m5", value: '{"v": 1}' },
        { key: "m6", value: null },
      ],
    ]);
    expect(answers[1]).toBeInstanceOf(StoreRejectedError);
    expect(answers[2]).toBeInstanceOf(VersionMismatchError);
    expect((answers[3] as WriteResult[]).map((r) => r.key)).toEqual(["m5", "m6"]);
    expect(Array.isArray(answers[0])).toBe(true);
    for (const k of ["m2", "m3", "m4"]) expect(await rowOf(k)).toBeNull();
    expect(await rowOf("m1")).toEqual({ v: 1 });
    expect(await rowOf("m5")).toEqual({ v: 1 });
  });

  it("an announced version already taken fails that write only", async () => {
    const [a] = await t.write([{ key: "at0", value: '{"v": 1}' }], { minVersion: 1 });
    const high = a!.version + 1_000_000;
    const { answers, statements } = await batch([
      [{ key: "at0", value: '{"v": 2}', atVersion: a!.version }],
      [{ key: "at1", value: '{"v": 2}', atVersion: high }],
    ]);
    expect(statements).toBe(1);
    expect(answers[0]).toBeInstanceOf(VersionTakenError);
    expect((answers[0] as VersionTakenError).current.get("at0")).toBe(a!.version);
    expect((answers[1] as WriteResult[])[0]!.version).toBe(high);
  });

  it("writes of one key queue in order of arrival, one per statement, each above the last", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.write([{ key: "same", value: String(i) }], { minVersion: 1 })),
    );
    const versions = results.map((r) => r[0]!.version);
    for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1]!);
    expect(await rowOf("same")).toBe(19);
  });
});
