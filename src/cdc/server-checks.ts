/**
 * What PostgreSQL must allow before changes can be streamed, each problem naming the setting and the
 * fix. Run by `sidecache validate` and at start-up.
 */
import pg from "pg";
import type { CdcConfig } from "../config/types.js";

export interface SqlRunner {
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/** PostgreSQL 13 added max_slot_wal_keep_size and pg_replication_slots.wal_status. */
const MIN_VERSION = 130000;

export async function cdcProblems(db: SqlRunner, cdc: CdcConfig): Promise<string[]> {
  const r = await db.query(
    `select current_setting('server_version_num')::int as version,
            current_setting('wal_level') as wal_level,
            current_setting('max_replication_slots')::int as max_slots,
            current_setting('max_wal_senders')::int as max_senders,
            current_user as role,
            (select rolreplication or rolsuper from pg_roles where rolname = current_user) as can_replicate,
            (select count(*) from pg_replication_slots)::int as slots_used,
            exists (select 1 from pg_replication_slots where slot_name = $1) as slot_exists,
            exists (select 1 from pg_publication where pubname = $2) as publication_exists,
            has_database_privilege(current_database(), 'CREATE') as can_create`,
    [cdc.slot, cdc.publication],
  );
  const s = r.rows[0]!;
  const problems: string[] = [];
  if (Number(s.version) < MIN_VERSION) {
    problems.push(`PostgreSQL ${String(s.version)} is too old: store.cdc needs PostgreSQL 13 or newer`);
  }
  if (s.wal_level !== "logical") {
    problems.push(
      `wal_level is ${String(s.wal_level)}: set wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)`,
    );
  }
  if (s.can_replicate !== true) {
    problems.push(
      `the role ${String(s.role)} has no replication privilege: ALTER ROLE ${String(s.role)} REPLICATION (or connect as a role that has it)`,
    );
  }
  const maxSlots = Number(s.max_slots);
  if (s.slot_exists !== true && Number(s.slots_used) >= maxSlots) {
    problems.push(
      maxSlots === 0
        ? "max_replication_slots is 0: set it to at least 1 (restart PostgreSQL)"
        : `max_replication_slots is ${maxSlots} and all of them are in use: raise max_replication_slots (restart PostgreSQL) or drop an unused slot (pg_drop_replication_slot)`,
    );
  }
  if (Number(s.max_senders) === 0) {
    problems.push("max_wal_senders is 0: set it to at least 1 (restart PostgreSQL)");
  }
  if (s.publication_exists !== true && s.can_create !== true) {
    problems.push(
      `the publication ${cdc.publication} does not exist and the role ${String(s.role)} may not create it: ` +
        `GRANT CREATE ON DATABASE to the role, or create it yourself (docs/cdc.md)`,
    );
  }
  return problems;
}

/** Connects with the store's URL and lists what keeps PostgreSQL from streaming changes (validate). */
export async function checkCdcServer(url: string, cdc: CdcConfig, timeoutMs: number): Promise<string[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (err) {
    return [`PostgreSQL can not be reached to check it: ${(err as Error).message}`];
  }
  try {
    return await cdcProblems(client, cdc);
  } finally {
    await client.end().catch(() => {});
  }
}
