/**
 * What the managed tables' version trigger costs PostgreSQL's write path: the same statements against
 * two managed tables, one with the trigger and one without, run one at a time on one connection. Per
 * change: WAL bytes (pg_current_wal_lsn before and after), statements executed (pg_stat_statements with
 * track = all, so those run inside the trigger count) and time. Outside writers' INSERT, UPDATE that
 * leaves the version alone and DELETE, and sidecache's own write and delete (TableStore.write).
 */
import pg from "pg";
import { installTriggers } from "../../src/cdc/setup.js";
import { PostgresDriver } from "../../src/store/postgres.js";
import { SqlStoreAdapter } from "../../src/store/sql-store.js";
import type { TableStore } from "../../src/store/adapter.js";
import { nextVersion } from "../../src/version.js";

export interface CostRow {
  op: string;
  /** per change, without the trigger / with it */
  walBytes: [number, number];
  statements: [number, number];
  micros: [number, number];
}

export interface TriggerCostResult {
  /** changes per figure per round; figures are the mean over the rounds */
  changes: number;
  rounds: number;
  rows: CostRow[];
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const ROUNDS = 4;
const CHUNK = 100;

interface Measured {
  walBytes: number;
  statements: number;
  micros: number;
}

export async function triggerCost(pgUrl: string, tag: string, n: number): Promise<TriggerCostResult> {
  const db = new pg.Client({ connectionString: pgUrl });
  db.on("error", () => {}); // a lost connection fails the next query
  await db.connect();
  await db.query(`create extension if not exists pg_stat_statements`);
  const adapter = new SqlStoreAdapter(new PostgresDriver({ url: pgUrl, poolSize: 1, timeoutMs: 30_000 }));
  const plainName = `${tag}_plain`;
  const trigName = `${tag}_trig`;
  const plain = await adapter.table({ table: plainName });
  const trig = await adapter.table({ table: trigName });
  await installTriggers(db, [trigName]);

  // The WAL position and the statements executed so far, less this query's own.
  const counters = async () => {
    const r = await db.query(
      `select pg_current_wal_lsn()::text as lsn,
              (select coalesce(sum(calls), 0) from pg_stat_statements
               where query not ilike '%pg_stat_statements%')::float8 as calls`,
    );
    return { lsn: String(r.rows[0].lsn), calls: Number(r.rows[0].calls) };
  };

  /** Totals over one run of changes (no reset of the statistics: entries are not created anew each time). */
  async function measure(run: () => Promise<void>): Promise<Measured> {
    const before = await counters();
    const started = performance.now();
    await run();
    const micros = (performance.now() - started) * 1000;
    const after = await counters();
    const wal = await db.query(`select pg_wal_lsn_diff($1, $2)::float8 as bytes`, [after.lsn, before.lsn]);
    return { walBytes: Number(wal.rows[0].bytes), statements: after.calls - before.calls, micros };
  }

  const value = JSON.stringify({ name: "a value of some forty bytes", n: 1 });
  type Op = (t: string, store: TableStore, keys: string[]) => () => Promise<void>;
  const ops: [string, Op][] = [
    [
      "outside INSERT",
      (t, _s, keys) => async () => {
        for (const k of keys) {
          await db.query(`insert into "${t}" (key, value, version) values ($1, $2, $3)`, [
            k,
            value,
            nextVersion(),
          ]);
        }
      },
    ],
    [
      "outside UPDATE (version untouched)",
      (t, _s, keys) => async () => {
        for (const k of keys) await db.query(`update "${t}" set value = $2 where key = $1`, [k, value]);
      },
    ],
    [
      "outside DELETE",
      (t, _s, keys) => async () => {
        for (const k of keys) await db.query(`delete from "${t}" where key = $1`, [k]);
      },
    ],
    [
      "sidecache PUT (new key)",
      (_t, store, keys) => async () => {
        for (const k of keys) await store.write([{ key: k, value }], { minVersion: nextVersion() });
      },
    ],
    [
      "sidecache PUT (existing key)",
      (_t, store, keys) => async () => {
        for (const k of keys) await store.write([{ key: k, value }], { minVersion: nextVersion() });
      },
    ],
    [
      "sidecache DELETE",
      (_t, store, keys) => async () => {
        for (const k of keys) await store.write([{ key: k, value: null }], { minVersion: nextVersion() });
      },
    ],
  ];
  // Rounds alternate which table goes first, so neither gains from a warmer cache or a quieter moment.
  const sums = ops.map(() => [
    { walBytes: 0, statements: 0, micros: 0 },
    { walBytes: 0, statements: 0, micros: 0 },
  ]);
  const tables: [string, TableStore][] = [
    [plainName, plain],
    [trigName, trig],
  ];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const keys = Array.from({ length: n }, (_, i) => `r${round}-${i}`);
      for (const [o, [, make]] of ops.entries()) {
        // Chunks alternate between the tables, so a busy moment of the machine weighs on both alike.
        for (let from = 0; from < n; from += CHUNK) {
          const chunk = keys.slice(from, from + CHUNK);
          for (const side of (round + from / CHUNK) % 2 === 0 ? [0, 1] : [1, 0]) {
            const [name, store] = tables[side]!;
            const m = await measure(make(name, store, chunk));
            const sum = sums[o]![side]!;
            sum.walBytes += m.walBytes;
            sum.statements += m.statements;
            sum.micros += m.micros;
          }
        }
      }
    }
  } finally {
    await db.query(`drop table if exists "${plainName}", "${trigName}"`);
    await db.query(`delete from sidecache_tombstones where tbl in ($1, $2)`, [plainName, trigName]);
    await db.end();
    await adapter.close();
  }
  const changes = n * ROUNDS;
  const rows: CostRow[] = ops.map(([op], o) => {
    const [a, b] = sums[o]!;
    return {
      op,
      walBytes: [round(a!.walBytes / changes, 1), round(b!.walBytes / changes, 1)],
      statements: [round(a!.statements / changes), round(b!.statements / changes)],
      micros: [round(a!.micros / changes, 1), round(b!.micros / changes, 1)],
    };
  });
  return { changes: n, rounds: ROUNDS, rows };
}
