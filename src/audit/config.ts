/** Reader of a keyspace's `audit:` setting (docs/operations.md, audit log). */
import type { Value } from "../config/node.js";
import { checkTable } from "../config/checks.js";
import type { AuditConfig } from "../config/types.js";

export const DEFAULT_AUDIT_TABLE = "sidecache_audit";

const FIELDS = ["table", "retention"] as const;

/** Shortest retention: the cleanup runs once a minute, so less would only mislead. */
const MIN_RETENTION_MS = 60_000;

/** `audit: true`, or `audit: { table: ..., retention: 30d }`; absent or false: no audit log. */
export function readAudit(v: Value): AuditConfig | undefined {
  if (v.missing) return undefined;
  if (!v.isMapping) {
    let on: boolean;
    try {
      on = v.bool(false);
    } catch {
      v.fail(
        "must be true, false, or a mapping with the fields table and retention (e.g. { retention: 30d })",
      );
    }
    return on ? { table: DEFAULT_AUDIT_TABLE } : undefined;
  }
  const f = v.fields(FIELDS);
  const table = f.table.str({ expect: "a table name", def: DEFAULT_AUDIT_TABLE, check: checkTable });
  if (!f.retention.given) return { table };
  return { table, retentionMs: f.retention.duration({ min: MIN_RETENTION_MS }) };
}

/** What a problem with the audit table points at: `audit.table`, or `audit` itself when no table is written. */
export function auditTableValue(audit: Value): Value {
  const table = audit.isMapping ? audit.fields(FIELDS).table : audit;
  return table.given ? table : audit;
}
