/**
 * The chaos run's tables, made before the daemons start: each keyspace's managed table, a commit log that
 * an AFTER trigger fills in the writing transaction (so it holds exactly what committed, which the checker
 * compares reads against), and a deferred constraint trigger that, at COMMIT, sleeps and refuses values
 * flagged `refuse` and sleeps past the request deadline on values flagged `slow`.
 */
import type pg from "pg";

export const COMMITS = "chaos_commits";
export const tableOf = (ks: string): string => `chaos_${ks.replace(/-/g, "_")}`;

export async function createSchema(db: pg.Client, keyspaces: string[]): Promise<void> {
  await db.query(`create table ${COMMITS} (
    id bigserial primary key, tbl text not null, key text not null, value jsonb not null, version bigint not null)`);
  await db.query(`create function chaos_log() returns trigger language plpgsql as $$
    begin
      insert into ${COMMITS} (tbl, key, value, version) values (tg_table_name, new.key, new.value, new.version);
      return null;
    end $$`);
  await db.query(`create function chaos_commit_check() returns trigger language plpgsql as $$
    begin
      if new.value ? 'slow' then perform pg_sleep((new.value->>'slow')::numeric / 1000); end if;
      if new.value ? 'refuse' then
        perform pg_sleep((new.value->>'refuse')::numeric / 1000);
        raise exception 'refused by a deferred check' using errcode = '23514';
      end if;
      return null;
    end $$`);
  for (const ks of keyspaces) {
    const t = tableOf(ks);
    // the managed table's shape: the daemon finds it and leaves it as it is
    await db.query(`create table ${t} (
      "key" text collate "C" primary key, "value" jsonb not null, "version" bigint not null,
      "updated_at" timestamptz not null default now())`);
    await db.query(`create trigger ${t}_log after insert or update on ${t}
      for each row execute function chaos_log()`);
    await db.query(`create constraint trigger ${t}_check after insert or update on ${t}
      deferrable initially deferred for each row execute function chaos_commit_check()`);
  }
}
