/**
 * What the reader needs in the database: the publication over every keyspace's table (and
 * sidecache_tombstones, where deletes leave their version), the slot, the version trigger on managed
 * tables, and checks on mapped ones. Each step is idempotent and runs under the store's DDL lock, so
 * daemons starting together do not race on the catalog.
 */
import type { KeyspaceConfig } from "../config/types.js";
import { CdcSetupError } from "../errors.js";
import { DDL_LOCK, quoteIdent, quoteLiteral, TOMBSTONES } from "../store/sql.js";
import type { SqlRunner } from "./server-checks.js";

/**
 * The managed tables' trigger. BEFORE INSERT OR UPDATE: a change that does not move the version itself
 * gets one above the old version (and above the key's tombstone for a new key), from PostgreSQL's clock
 * in microseconds, like the daemons'. sidecache's own statements always move it, so they pass unchanged.
 * AFTER DELETE, and for the old key of an update that changes the key: the deleted version + 1 goes to
 * sidecache_tombstones (greatest wins), so the stream can tell what a fill of the deleted row carried.
 */
const TRIGGER_BODY = `
declare
  above bigint;
  clock bigint := (extract(epoch from clock_timestamp()) * 1000000)::bigint;
begin
  if tg_op = 'DELETE' then
    insert into ${TOMBSTONES} as t (tbl, key, version, deleted_at)
      values (tg_argv[0], old."key", old."version" + 1, now())
      on conflict (tbl, key) do update
        set version = greatest(t.version, excluded.version), deleted_at = excluded.deleted_at;
    return old;
  end if;
  if tg_op = 'UPDATE' and new."key" = old."key" then
    if new."version" is null or new."version" <= old."version" then
      new."version" := greatest(old."version" + 1, clock);
    end if;
    return new;
  end if;
  -- the key column is collate "C": compared as such, the tombstones' index (default collation) is not used
  select t.version into above from ${TOMBSTONES} as t
    where t.tbl = tg_argv[0] and t.key = new."key" collate "default";
  above := coalesce(above, 0);
  if tg_op = 'UPDATE' then
    above := greatest(above, old."version");
    insert into ${TOMBSTONES} as t (tbl, key, version, deleted_at)
      values (tg_argv[0], old."key", old."version" + 1, now())
      on conflict (tbl, key) do update
        set version = greatest(t.version, excluded.version), deleted_at = excluded.deleted_at;
  end if;
  if new."version" is null or new."version" <= above then
    new."version" := greatest(above + 1, clock);
  end if;
  return new;
end
`;

const TRIGGER_FUNCTION = `create or replace function sidecache_cdc_row() returns trigger language plpgsql as $fn$${TRIGGER_BODY}$fn$`;

/** Runs `plan` (which reads the catalog, then returns the statements to run) under the DDL lock. */
async function ddl(db: SqlRunner, plan: () => Promise<string[]>): Promise<void> {
  await db.query("begin");
  try {
    await db.query(DDL_LOCK);
    for (const s of await plan()) await db.query(s);
    await db.query("commit");
  } catch (err) {
    await db.query("rollback").catch(() => {});
    throw err;
  }
}

/**
 * Installs the version trigger on each managed table that lacks it, and the function when it is missing
 * or differs (so daemons of another role sharing the database leave it alone once it is right). Creating
 * a trigger locks its table: it is done once, not at every start.
 */
export async function installTriggers(db: SqlRunner, tables: string[]): Promise<void> {
  if (tables.length === 0) return;
  const arg = (quoted: string) => quoteLiteral(tables.find((t) => quoteIdent(t) === quoted)!);
  const plan = async () => {
    const r = await db.query(
      `select (select prosrc from pg_proc where oid = to_regproc('sidecache_cdc_row')) as source,
         array(select t from unnest($1::text[]) as t
               where not exists (select 1 from pg_trigger g where g.tgrelid = to_regclass(t)
                                 and g.tgname = 'sidecache_cdc_version')) as version_missing,
         array(select t from unnest($1::text[]) as t
               where not exists (select 1 from pg_trigger g where g.tgrelid = to_regclass(t)
                                 and g.tgname = 'sidecache_cdc_delete')) as delete_missing`,
      [tables.map(quoteIdent)],
    );
    const row = r.rows[0]!;
    const statements: string[] = [];
    if (row.source !== TRIGGER_BODY) statements.push(TRIGGER_FUNCTION);
    for (const t of row.version_missing as string[]) {
      statements.push(
        `create trigger sidecache_cdc_version before insert or update on ${t}
         for each row execute function sidecache_cdc_row(${arg(t)})`,
      );
    }
    for (const t of row.delete_missing as string[]) {
      statements.push(
        `create trigger sidecache_cdc_delete after delete on ${t}
         for each row execute function sidecache_cdc_row(${arg(t)})`,
      );
    }
    return statements;
  };
  try {
    await ddl(db, plan);
  } catch (err) {
    throw new CdcSetupError(
      `The version trigger of the managed tables could not be installed (${(err as Error).message}): ` +
        `the function sidecache_cdc_row() belongs to another role, or a table is not the daemon's own.`,
    );
  }
}

/** Creates the publication, or adds the tables it lacks; it publishes every kind of change. */
export async function ensurePublication(db: SqlRunner, publication: string, tables: string[]): Promise<void> {
  const wanted = [...new Set([...tables, TOMBSTONES])];
  const pub = quoteIdent(publication);
  const plan = async () => {
    const existing = await db.query(
      `select p.pubinsert and p.pubupdate and p.pubdelete and p.pubtruncate as every_kind,
              p.puballtables as all_tables,
              array(select t from unnest($2::text[]) as t where not exists
                (select 1 from pg_publication_rel r where r.prpubid = p.oid and r.prrelid = to_regclass(t))) as missing
       from pg_publication p where p.pubname = $1`,
      [publication, wanted.map(quoteIdent)],
    );
    const row = existing.rows[0];
    if (!row) return [`create publication ${pub} for table ${wanted.map(quoteIdent).join(", ")}`];
    const statements: string[] = [];
    if (row.every_kind !== true) {
      statements.push(`alter publication ${pub} set (publish = 'insert, update, delete, truncate')`);
    }
    const missing = row.missing as string[];
    if (row.all_tables !== true && missing.length > 0) {
      statements.push(`alter publication ${pub} add table ${missing.join(", ")}`);
    }
    return statements;
  };
  try {
    await ddl(db, plan);
  } catch (err) {
    throw new CdcSetupError(
      `The publication ${publication} could not be set up (${(err as Error).message}); ` +
        `create it yourself: CREATE PUBLICATION ${publication} FOR TABLE ${wanted.map(quoteIdent).join(", ")}`,
    );
  }
}

export type SlotState = "ready" | "created" | "lost";

/** The slot as it stands; created when missing. "lost": it exists but can no longer stream (invalidated). */
export async function ensureSlot(db: SqlRunner, slot: string): Promise<SlotState> {
  const r = await db.query(
    `select plugin, database = current_database() as here, wal_status from pg_replication_slots
     where slot_name = $1`,
    [slot],
  );
  const row = r.rows[0];
  if (row) {
    if (row.plugin !== "pgoutput" || row.here !== true) {
      throw new CdcSetupError(
        `The replication slot ${slot} exists but is not a pgoutput slot of this database ` +
          `(plugin ${String(row.plugin)}): give store.cdc.slot another name, or drop that slot.`,
      );
    }
    return row.wal_status === "lost" ? "lost" : "ready";
  }
  try {
    await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  } catch (err) {
    // another daemon created it a moment ago
    if ((err as { code?: string }).code !== "42710") throw err;
    return "ready";
  }
  return "created";
}

/** Drops the slot if nobody streams it (a lost one, before it is created again). */
export async function dropSlot(db: SqlRunner, slot: string): Promise<void> {
  await db.query(
    `select pg_drop_replication_slot(slot_name) from pg_replication_slots
     where slot_name = $1 and active_pid is null`,
    [slot],
  );
}

/**
 * A mapped table must name its key in every UPDATE and DELETE the stream carries: its replica identity
 * (primary key, identity index or FULL) must hold the key column, and without one PostgreSQL refuses
 * UPDATE and DELETE on a published table altogether. Returns warnings about what the user should add.
 */
export async function checkMapped(db: SqlRunner, ks: KeyspaceConfig): Promise<string[]> {
  const m = ks.mapped!;
  const r = await db.query(
    `select c.relreplident as identity,
       coalesce((select array_agg(a.attname::text) from pg_index i
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
         where i.indrelid = c.oid
           and ((c.relreplident = 'd' and i.indisprimary) or (c.relreplident = 'i' and i.indisreplident))),
         '{}') as identity_columns,
       exists (select 1 from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal
         and t.tgtype & 1 = 1 and t.tgtype & 2 = 2 and t.tgtype & 16 = 16) as update_trigger,
       exists (select 1 from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal
         and t.tgtype & 1 = 1 and t.tgtype & 8 = 8) as delete_trigger
     from pg_class c where c.oid = to_regclass($1)`,
    [quoteIdent(ks.table)],
  );
  const row = r.rows[0];
  if (!row) throw new CdcSetupError(`The mapped table ${ks.table} of keyspace ${ks.name} does not exist.`);
  const full = row.identity === "f";
  const identity = row.identity_columns as string[];
  if (!full && !identity.includes(m.keyColumn)) {
    throw new CdcSetupError(
      `The mapped table ${ks.table} of keyspace ${ks.name} has no replica identity holding its key column ` +
        `${m.keyColumn}, so a changed or deleted row would not name its key (and PostgreSQL refuses UPDATE and ` +
        `DELETE on a published table without one): make ${m.keyColumn} the primary key, or ALTER TABLE ` +
        `${ks.table} REPLICA IDENTITY USING INDEX <unique index on ${m.keyColumn}>, or REPLICA IDENTITY FULL.`,
    );
  }
  const warnings: string[] = [];
  if (row.update_trigger !== true) {
    warnings.push(
      `no BEFORE UPDATE trigger on ${ks.table}: every writer must move ${m.versionColumn} on every change, ` +
        `or a change that does not is missed (docs/cdc.md, mapped tables)`,
    );
  }
  if (!full && row.delete_trigger !== true) {
    warnings.push(
      `deletes on ${ks.table} do not carry the deleted row's version (no REPLICA IDENTITY FULL, no delete ` +
        `trigger): a key deleted outside sidecache is not cached again until its tombstone expires (docs/cdc.md)`,
    );
  }
  return warnings;
}
