/**
 * Many writes in one statement: the writes of several requests (units), each unit all or nothing, each
 * answered on its own. Run under the keys' locks (UNDER_KEY_LOCKS), in its own implicit transaction.
 *
 * The statement reads the rows (locked) and tombstones of every key, checks each write's conditions
 * (If-Match, If-None-Match, the version announced in advance), gives each write its version
 * `greatest(min version, row + 1, tombstone + 1)`, and writes the units whose every write passed: the rows,
 * the deletes and their tombstones. It returns one row per write, in order, saying what it found and did.
 * A key appears at most once per statement (an upsert can not touch a row twice). With an audit log the
 * same statement writes an audit row for each write it made (audit-sql.ts): none for a unit that failed.
 */
import { StoreRejectedError, VersionMismatchError, VersionTakenError } from "../errors.js";
import type { WriteOp, WriteResult } from "./adapter.js";
import { auditInsertSync } from "./audit-sql.js";
import type { Shape } from "./shape.js";
import { num, str, TOMBSTONES } from "./sql.js";

/** One write of a batch, with the unit (request) it belongs to and the lowest version it may get. */
export interface BatchOp extends WriteOp {
  unit: number;
  minVersion: number;
  /** the audit row's tag (auditTag); unused without an audit log */
  tag?: string;
}

/** What the statement found and did for one write. */
export interface OpOutcome {
  key: string;
  version: number;
  hasRow: boolean;
  rowVersion: number;
  /** the version the key had, row or tombstone */
  current: number;
  conditionsHeld: boolean;
  /** the announced version was free (above the row and the tombstone), or none was announced */
  versionFree: boolean;
  /** the key in the form the key column stores it (mapped tables; the key itself otherwise) */
  canonical: string;
  /** the whole unit passed and was written */
  written: boolean;
}

export const OUTCOME_COLUMNS =
  "i int8, k text, n int8, has_row bool, row_v int8, cur int8, cond_ok bool, at_ok bool, canon_k text, ok bool";

/**
 * The statement, for one table. Parameters (text[] cast here): $2 unit, $3 key, $4 value (null: delete),
 * $5 conditions (null, or "*" for If-None-Match followed by the If-Match version, if any), $6 audit tag, $7 min version,
 * $8 announced version; $1 is the table's name.
 */
export function batchWriteSql(s: Shape, audit?: { table: string; keyspace: string }): string {
  const canonical = s.canonicalKey ? s.canonicalKey("u.k") : "u.k";
  return `
    with p as (
      select * from unnest($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[])
        with ordinality as p(unit, k, v, cond, tag, min_v, at_v, i)
    ),
    u as (
      select p.unit, p.k, p.v, nullif(ltrim(p.cond, '*'), '')::int8 as if_match,
        coalesce(left(p.cond, 1) = '*', false) as if_none, p.tag, p.min_v, p.at_v, p.i
      from p
    ),
    cur as (
      select ${s.keyText} as key, ${s.version} as version from ${s.table} as d
      where ${s.keyIn("$3")} for update of d
    ),
    c as (
      select u.*, cur.key is not null as has_row, cur.version as row_v,
        greatest(coalesce(cur.version, 0), coalesce(t.version, 0)) as cur_v,
        greatest(coalesce(u.at_v, u.min_v), coalesce(cur.version, 0) + 1, coalesce(t.version, 0) + 1) as n,
        ${canonical} as canon_k
      from u left join cur on cur.key = u.k
      left join ${TOMBSTONES} as t on t.tbl = $1 and t.key = u.k
    ),
    e as (
      select c.*,
        (c.if_match is null or (c.has_row and c.row_v = c.if_match))
          and not (coalesce(c.if_none, false) and c.has_row) as cond_ok,
        (c.at_v is null or c.n = c.at_v) as at_ok,
        c.canon_k = c.k as canon
      from c
    ),
    w as (
      select e.*, bool_and(e.cond_ok and e.at_ok and e.canon) over (partition by e.unit) as ok from e
    ),
    puts as (${s.upsert("w as u", "u.ok and u.v is not null", false)} returning 1),
    dels as (${s.deleteUsing("(select * from w where w.ok and w.v is null) as u", false)} returning 1),
    tombs as (
      insert into ${TOMBSTONES} as t (tbl, key, version, deleted_at)
      select $1, w.k, w.n, now() from w where w.ok and w.v is null
      on conflict (tbl, key) do update
        set version = greatest(t.version, excluded.version), deleted_at = excluded.deleted_at
      returning 1
    )${
      audit
        ? `,
    audit as (${auditInsertSync(audit, "w", "s.ok")} returning 1)`
        : ""
    }
    select w.i, w.k, w.n, w.has_row, w.row_v, w.cur_v, w.cond_ok, w.at_ok, w.canon_k, w.ok from w order by w.i`;
}

/** The statement's parameters after the table name, in the order batchWriteSql reads them. */
export function batchParams(ops: BatchOp[]): (string | null)[][] {
  const n = (v: number | undefined) => (v === undefined ? null : String(v));
  return [
    ops.map((o) => String(o.unit)),
    ops.map((o) => o.key),
    ops.map((o) => o.value),
    ops.map((o) =>
      o.ifNoneMatch || o.ifMatch !== undefined ? `${o.ifNoneMatch ? "*" : ""}${o.ifMatch ?? ""}` : null,
    ),
    ops.map((o) => o.tag ?? null),
    ops.map((o) => String(o.minVersion)),
    ops.map((o) => n(o.atVersion)),
  ];
}

export function outcomeOf(r: Record<string, unknown>): OpOutcome {
  return {
    key: str(r.k),
    version: num(r.n),
    hasRow: r.has_row === true,
    rowVersion: num(r.row_v),
    current: num(r.cur),
    conditionsHeld: r.cond_ok === true,
    versionFree: r.at_ok === true,
    canonical: str(r.canon_k),
    written: r.ok === true,
  };
}

/** A unit's answer from the outcomes of its writes (in its order): its results, or the error to throw. */
export function unitResult(ops: WriteOp[], outcomes: OpOutcome[]): WriteResult[] {
  if (outcomes.every((o) => o.written)) {
    return outcomes.map((o, i) => ({
      key: o.key,
      version: o.version,
      deleted: ops[i]!.value === null,
      existed: o.hasRow,
    }));
  }
  for (const o of outcomes) {
    if (o.canonical !== o.key) {
      throw new StoreRejectedError(
        `The key ${JSON.stringify(o.key)} is not in the form the key column stores (${JSON.stringify(o.canonical)}).`,
      );
    }
  }
  for (const [i, o] of outcomes.entries()) {
    if (!o.conditionsHeld) throw mismatch(ops[i]!, o);
  }
  const taken = new Map<string, number>();
  for (const o of outcomes) if (!o.versionFree) taken.set(o.key, o.current);
  throw new VersionTakenError(taken);
}

function mismatch(op: WriteOp, o: OpOutcome): VersionMismatchError {
  const k = JSON.stringify(op.key);
  if (op.ifMatch !== undefined) {
    return new VersionMismatchError(
      o.hasRow
        ? `The key ${k} is at version ${o.rowVersion}, not ${op.ifMatch}.`
        : `The key ${k} does not exist, so it is not at version ${op.ifMatch}.`,
    );
  }
  return new VersionMismatchError(`The key ${k} already exists (version ${o.rowVersion}).`);
}
