/** How a managed table and a mapped one differ, as SQL fragments, and what a mapped table accepts. */
import { StoreRejectedError } from "../errors.js";
import { quoteIdent, quoteLiteral } from "./sql.js";

/** jsonb_build_object takes at most 100 arguments: build big objects in chunks joined with ||. */
const PAIRS_PER_CALL = 40;

/**
 * The SQL fragments in which a managed table and a mapped one differ. `u` is always the alias of the
 * unnested parameter arrays, with columns k (key text), v (value text) and n (version bigint).
 */
export interface Shape {
  table: string;
  /** the key as text */
  keyText: string;
  /** the stored value as JSON text */
  valueText: string;
  /** the version, 0 when a mapped row has none */
  version: string;
  /** condition: the row's key equals the text parameter p */
  keyIs(p: string): string;
  /** condition: the row's key is one of the text[] parameter p */
  keyIn(p: string): string;
  /** condition for keyset pagination: the row's key is after the text parameter p */
  keyAfter(p: string): string;
  orderByKey: string;
  /** insert ... select ... on conflict ... of the rows of `source` (a from-item exposing u) that pass `filter` */
  upsert(source: string, filter: string, onlyNewer: boolean): string;
  /** delete the rows whose key is u.k among `source` */
  deleteUsing(source: string, onlyNewer: boolean): string;
  /** mapped tables only: the key cast to the key column's type and back to text */
  canonicalKey?: (p: string) => string;
}

export function managedShape(table: string): Shape {
  const t = quoteIdent(table);
  return {
    table: t,
    keyText: `d."key"`,
    valueText: `d."value"::text`,
    version: `d."version"`,
    keyIs: (p) => `d."key" = ${p}`,
    keyIn: (p) => `d."key" = any(${p}::text[])`,
    keyAfter: (p) => `d."key" collate "C" > ${p}`,
    orderByKey: `d."key" collate "C"`,
    upsert: (source, filter, onlyNewer) =>
      `insert into ${t} as d ("key", "value", "version", "updated_at")
       select u.k, u.v::jsonb, u.n, now() from ${source} where ${filter}
       on conflict ("key") do update
         set "value" = excluded."value", "version" = excluded."version", "updated_at" = excluded."updated_at"
       ${onlyNewer ? `where d."version" < excluded."version"` : ""}`,
    deleteUsing: (source, onlyNewer) =>
      `delete from ${t} as d using ${source} where d."key" = u.k ${onlyNewer ? `and d."version" < u.n` : ""}`,
  };
}

export interface MappedColumns {
  keyColumn: string;
  keyType: string;
  columns: string[];
  versionColumn: string;
}

export function mappedShape(table: string, m: MappedColumns): Shape {
  const t = quoteIdent(table);
  const kc = `d.${quoteIdent(m.keyColumn)}`;
  const vc = quoteIdent(m.versionColumn);
  const cast = (p: string) => `cast(${p}::text as ${m.keyType})`;
  const pairs = m.columns.map((c) => `${quoteLiteral(c)}, d.${quoteIdent(c)}`);
  const chunks: string[] = [];
  for (let i = 0; i < pairs.length; i += PAIRS_PER_CALL) {
    chunks.push(`jsonb_build_object(${pairs.slice(i, i + PAIRS_PER_CALL).join(", ")})`);
  }
  // The key column is filled from the key and the version column by the store, never from the value.
  const valueColumns = m.columns.filter((c) => c !== m.keyColumn && c !== m.versionColumn);
  const insertColumns = [quoteIdent(m.keyColumn), ...valueColumns.map(quoteIdent), vc];
  const setList = [...valueColumns.map(quoteIdent), vc].map((c) => `${c} = excluded.${c}`).join(", ");
  return {
    table: t,
    keyText: `${kc}::text`,
    valueText: `(${chunks.length > 0 ? chunks.join(" || ") : "'{}'::jsonb"})::text`,
    version: `coalesce(d.${vc}, 0)`,
    // The typed comparison uses the key column's index; the text one makes "01" not find the row of 1.
    keyIs: (p) => `${kc} = ${cast(p)} and ${kc}::text = ${p}`,
    keyIn: (p) => `${kc} = any(cast(${p}::text[] as ${m.keyType}[])) and ${kc}::text = any(${p}::text[])`,
    keyAfter: (p) => `${kc} > ${cast(p)}`,
    orderByKey: kc,
    upsert: (source, filter, onlyNewer) =>
      `insert into ${t} as d (${insertColumns.join(", ")})
       select ${[cast("u.k"), ...valueColumns.map((c) => `r.${quoteIdent(c)}`), "u.n"].join(", ")}
       from ${source} cross join lateral jsonb_populate_record(null::${t}, u.v::jsonb) as r where ${filter}
       on conflict (${quoteIdent(m.keyColumn)}) do update set ${setList}
       ${onlyNewer ? `where coalesce(d.${vc}, 0) < excluded.${vc}` : ""}`,
    deleteUsing: (source, onlyNewer) =>
      `delete from ${t} as d using ${source} where ${kc} = ${cast("u.k")}
       ${onlyNewer ? `and coalesce(d.${vc}, 0) < u.n` : ""}`,
    canonicalKey: (p) => `${cast(p)}::text`,
  };
}

/** A mapped table takes a JSON object whose fields are among its listed columns. */
export function checkObject(key: string, value: string, columns: string[]): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new StoreRejectedError(`The value of ${JSON.stringify(key)} is not valid JSON.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new StoreRejectedError(
      `The value of ${JSON.stringify(key)} must be a JSON object with the fields ${columns.join(", ")}.`,
    );
  }
  const unknown = Object.keys(parsed).filter((f) => !columns.includes(f));
  if (unknown.length > 0) {
    throw new StoreRejectedError(
      `The value of ${JSON.stringify(key)} has fields that are not columns of the table: ${unknown.join(", ")} ` +
        `(allowed: ${columns.join(", ")}).`,
    );
  }
}
