/**
 * Audit logs in PostgreSQL: one row per committed write (keyspace, key, version, operation, condition, the
 * caller's token name, the front end, PostgreSQL's clock when it was applied and, for write-behind, when it
 * was acknowledged). The rows are written by the very statement that writes the data (write-batch.ts,
 * table-store.ts), so a write that did not commit has none; this file holds the table, the INSERT those
 * statements splice in, and the reading and pruning.
 *
 * Order: newest first by (at, key, version); the primary key (keyspace, key, version) makes a replayed
 * write-behind flush add nothing.
 */
import { createHash } from "node:crypto";
import type { AuditEntry, AuditLog, AuditQuery, AuditRecord, WriteOrigin } from "./adapter.js";
import type { Driver } from "./driver.js";
import { guarded, num, quoteIdent, quoteLiteral, str } from "./sql.js";

export const AUDIT_COLUMNS = [
  "keyspace",
  "key",
  "version",
  "op",
  "if_match",
  "if_none_match",
  "client",
  "via",
  "at",
  "acknowledged_at",
];
const COLUMNS = AUDIT_COLUMNS.join(", ");

/** The audit table and its indexes: by keyspace and time, and by keyspace, key and time. */
export function auditDdl(table: string): string[] {
  const t = quoteIdent(table);
  return [
    `create table if not exists ${t} (
       keyspace text not null, key text collate "C" not null, version bigint not null, op text not null,
       if_match bigint, if_none_match boolean not null default false, client text, via text,
       at timestamptz not null, acknowledged_at timestamptz,
       primary key (keyspace, key, version))`,
    `create index if not exists ${quoteIdent(indexName(table, "at"))} on ${t} (keyspace, at)`,
    `create index if not exists ${quoteIdent(indexName(table, "key_at"))} on ${t} (keyspace, key, at)`,
  ];
}

/** `<table>_<suffix>`, within PostgreSQL's 63 bytes: a long table name is cut and a hash of it added. */
function indexName(table: string, suffix: string): string {
  const name = `${table}_${suffix}`;
  if (name.length <= 63) return name;
  const hash = createHash("sha256").update(table).digest("hex").slice(0, 8);
  return `${table.slice(0, 63 - suffix.length - 10)}_${hash}_${suffix}`;
}

/**
 * The audit INSERT of a batch of synchronous writes, as a CTE body: one row per write of `source` that
 * passed (`filter`), whose columns are k, n, v (null: delete), if_match, if_none and tag (auditTag's JSON).
 */
export function auditInsertSync(
  audit: { table: string; keyspace: string },
  source: string,
  filter: string,
): string {
  return `insert into ${quoteIdent(audit.table)} (${COLUMNS})
    select ${quoteLiteral(audit.keyspace)}, s.k, s.n,
      coalesce(s.tag::jsonb->>'op', case when s.v is null then 'delete' else 'put' end),
      s.if_match, coalesce(s.if_none, false), s.tag::jsonb->>'client', s.tag::jsonb->>'via',
      clock_timestamp(), null
    from ${source} as s where ${filter}`;
}

/**
 * The audit INSERT of a write-behind flush, as a CTE body: the entries ($k keys, $n versions, $t tags)
 * whose key is among `landed` (a from-item with column k), each once.
 */
export function auditInsertFlush(
  audit: { table: string; keyspace: string },
  params: { k: string; n: string; t: string },
  landed: string,
): string {
  return `insert into ${quoteIdent(audit.table)} (${COLUMNS})
    select ${quoteLiteral(audit.keyspace)}, a.k, a.n, a.t::jsonb->>'op', (a.t::jsonb->>'if_match')::int8,
      coalesce((a.t::jsonb->>'if_none_match')::bool, false), a.t::jsonb->>'client', a.t::jsonb->>'via',
      clock_timestamp(), timestamptz 'epoch' + (a.t::jsonb->>'acked_ms')::int8 * interval '1 millisecond'
    from unnest(${params.k}::text[], ${params.n}::int8[], ${params.t}::text[]) as a(k, n, t)
    where a.k in (select k from ${landed})
    on conflict (keyspace, key, version) do nothing`;
}

/** What a synchronous write's audit row takes from the request: its JSON tag (op, client, via). */
export function auditTag(origin: WriteOrigin | undefined, op: "put" | "delete" | "mset"): string {
  return JSON.stringify({ op, client: origin?.client ?? null, via: origin?.via ?? null });
}

/** A flushed write's tag: everything but its key and version. */
export function flushTag(e: AuditEntry): string {
  return JSON.stringify({
    op: e.op,
    client: e.client,
    via: e.via,
    ...(e.ifMatch !== undefined ? { if_match: e.ifMatch } : {}),
    ...(e.ifNoneMatch ? { if_none_match: true } : {}),
    ...(e.acknowledgedAt !== undefined ? { acked_ms: e.acknowledgedAt } : {}),
  });
}

/** The epoch in microseconds of a timestamptz column, exact. */
const micros = (col: string) => `(extract(epoch from ${col}) * 1000000)::int8`;
const fromMicros = (p: string) => `(timestamptz 'epoch' + ${p}::int8 * interval '1 microsecond')`;

export class SqlAuditLog implements AuditLog {
  constructor(private readonly driver: Driver) {}

  read(q: AuditQuery): Promise<AuditRecord[]> {
    const params: unknown[] = [q.keyspace];
    const where = ["keyspace = $1"];
    const add = (cond: (p: string) => string, value: unknown) => {
      params.push(value);
      where.push(cond(`$${params.length}`));
    };
    if (q.key !== undefined) add((p) => `key = ${p}`, q.key);
    if (q.sinceMicros !== undefined) add((p) => `at >= ${fromMicros(p)}`, String(q.sinceMicros));
    if (q.untilMicros !== undefined) add((p) => `at < ${fromMicros(p)}`, String(q.untilMicros));
    if (q.after) {
      params.push(String(q.after.atMicros), q.after.key, String(q.after.version));
      const n = params.length;
      where.push(`(at, key, version) < (${fromMicros(`$${n - 2}`)}, $${n - 1}, $${n}::int8)`);
    }
    params.push(q.limit);
    return guarded(async () => {
      const r = await this.driver.query(
        `select key, version, op, if_match, if_none_match, client, via, ${micros("at")} as at_us,
           ${micros("acknowledged_at")} as ack_us
         from ${quoteIdent(q.table)} where ${where.join(" and ")}
         order by at desc, key desc, version desc limit $${params.length}`,
        params,
      );
      return r.rows.map((row) => ({
        key: str(row.key),
        version: num(row.version),
        op: str(row.op) as AuditRecord["op"],
        ifMatch: row.if_match === null ? null : num(row.if_match),
        ifNoneMatch: row.if_none_match === true,
        client: row.client === null ? null : str(row.client),
        via: row.via === null ? null : (str(row.via) as AuditRecord["via"]),
        atMicros: num(row.at_us),
        acknowledgedAtMicros: row.ack_us === null ? null : num(row.ack_us),
      }));
    });
  }

  prune(table: string, keyspace: string, olderThanMs: number, batch: number): Promise<number> {
    return guarded(async () => {
      const t = quoteIdent(table);
      // Rows another daemon is deleting right now are skipped rather than waited for.
      const r = await this.driver.query(
        `delete from ${t} where ctid in (
           select ctid from ${t} where keyspace = $1 and at < now() - $2::int8 * interval '1 millisecond'
           limit $3 for update skip locked)`,
        [keyspace, String(olderThanMs), batch],
      );
      return r.rowCount;
    });
  }
}
