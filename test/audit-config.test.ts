/**
 * The audit setting as the configuration file states it (every refusal names the line and the field), and
 * retention: a daemon deletes the records past a keyspace's retention, in batches, and keeps the rest.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import type { AuditEntry, StoreAdapter } from "../src/store/adapter.js";
import { createStore } from "../src/store/index.js";
import { PG_URL, uniqueTag } from "./support/daemon.js";

const FILE = "audit.yaml";

function problem(keyspace: string, extra = ""): string {
  try {
    parseConfig(`keyspaces:\n  users:\n    table: users\n${keyspace}${extra}`, FILE, {});
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
}

describe("audit in the configuration", () => {
  it("takes true, false or { table, retention }", () => {
    const read = (audit: string) =>
      parseConfig(`keyspaces:\n  users:\n    audit: ${audit}\n`, FILE, {}).keyspaces.get("users")!.audit;
    expect(read("true")).toEqual({ table: "sidecache_audit" });
    expect(read("false")).toBeUndefined();
    expect(read("{}")).toEqual({ table: "sidecache_audit" });
    expect(read("{ table: users_audit, retention: 30d }")).toEqual({
      table: "users_audit",
      retentionMs: 30 * 86_400_000,
    });
  });

  it("refuses what it can not use, naming the line and the field", () => {
    expect(problem("    audit: yes please\n")).toBe(
      `${FILE}:4: keyspaces.users.audit: must be true, false, or a mapping with the fields table and retention (e.g. { retention: 30d })`,
    );
    expect(problem("    audit: { table: audit.log }\n")).toMatch(
      /^audit\.yaml:4: keyspaces\.users\.audit\.table: must be a SQL identifier/,
    );
    expect(problem("    audit: { retention: 30 }\n")).toMatch(
      /^audit\.yaml:4: keyspaces\.users\.audit\.retention: .*unit/,
    );
    expect(problem("    audit: { retention: 10s }\n")).toMatch(/keyspaces\.users\.audit\.retention: .*1m/);
    expect(problem("    audit: { keep: 30d }\n")).toMatch(/audit\.keep: is not a known field/);
    expect(problem("    audit: { table: orders }\n", "  orders:\n    table: orders\n")).toBe(
      `${FILE}:4: keyspaces.users.audit.table: names table orders, the table of keyspace orders; the audit log needs a table of its own`,
    );
    expect(problem("    audit: { table: sidecache_tombstones }\n")).toMatch(
      /audit\.table: names table sidecache_tombstones, a name sidecache keeps for its own tables/,
    );
  });
});

describe("audit retention", () => {
  const tag = uniqueTag();
  const table = `audit_ret_${tag}`;
  let db: pg.Client;
  let daemon: Daemon;

  beforeAll(async () => {
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    const config = parseConfig(
      `
cache: { url: "memory:" }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  kept:
    table: kept_${tag}
    audit: { table: ${table}, retention: 1d }
  forever:
    table: forever_${tag}
    audit: { table: ${table} }
`,
      FILE,
      {},
    );
    daemon = await Daemon.start(
      { ...config, server: { ...config.server, port: 0 } },
      { log: silentLogger, auditRetention: { everyMs: 60_000 } },
    );
  });

  afterAll(async () => {
    await daemon?.stop();
    await db.query(`drop table if exists ${table}, kept_${tag}, forever_${tag}`);
    await db.end();
  });

  it("deletes the records past the retention, in batches, and keeps the others", async () => {
    const old = (ks: string, n: number, age: string) =>
      db.query(
        `insert into ${table} (keyspace, key, version, op, at)
         select $1, $2 || i, i, 'put', now() - $2::interval from generate_series(1, $3::int) as i`,
        [ks, age, n],
      );
    await old("kept", 2_500, "2 days");
    await old("kept", 7, "23 hours");
    await old("forever", 5, "400 days");
    const count = async (ks: string) =>
      (await db.query(`select count(*)::int as n from ${table} where keyspace = $1`, [ks])).rows[0]
        .n as number;
    expect(await daemon.auditRetention!.prune()).toBe(2_500);
    expect(await count("kept")).toBe(7);
    expect(await count("forever")).toBe(5);
    expect(await daemon.auditRetention!.prune()).toBe(0);
  });
});

describe("audit on other stores and tables", () => {
  const tag = uniqueTag();
  let db: pg.Client;
  const daemons: Daemon[] = [];
  const start = async (yaml: string) => {
    const config = parseConfig(yaml, FILE, {});
    const d = await Daemon.start({ ...config, server: { ...config.server, port: 0 } }, { log: silentLogger });
    daemons.push(d);
    return d;
  };
  const send = async (d: Daemon, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${d.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return {
      status: r.status,
      body: r.status === 204 ? null : ((await r.json()) as Record<string, unknown>),
    };
  };

  beforeAll(async () => {
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
  });

  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await db.query(`drop table if exists orders_${tag}, audit_${tag}`);
    await db.end();
  });

  it("records writes on the embedded PostgreSQL (PGlite), auth off: no client", async () => {
    const d = await start(`
cache: { url: "memory:" }
store: { url: "pglite:memory" }
checker: { enabled: false }
keyspaces:
  notes: { strategy: write-through, consistency: eventual, audit: true }
`);
    const put = await send(d, "PUT", "/v1/kv/notes/n1", { text: "hi" });
    expect(put.status).toBe(200);
    expect((await send(d, "DELETE", "/v1/kv/notes/n1")).status).toBe(204);
    const page = await send(d, "GET", "/v1/keyspaces/notes/audit");
    expect(page.status).toBe(200);
    const records = page.body!.records as { key: string; version: number; op: string; client: null }[];
    expect(records.map((r) => [r.key, r.op, r.client])).toEqual([
      ["n1", "delete", null],
      ["n1", "put", null],
    ]);
    expect(records[1]!.version).toBe(put.body!.version);
  });

  it("records writes of a mapped table, keyed as the key column holds them", async () => {
    await db.query(
      `create table orders_${tag} (id bigint primary key, status text not null check (status <> 'lost'), version bigint)`,
    );
    const d = await start(`
cache: { url: "memory:" }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  orders:
    table: orders_${tag}
    key_column: id
    columns: [id, status]
    version_column: version
    audit: { table: audit_${tag} }
`);
    const ok = await send(d, "POST", "/v1/kv/orders/_mset", {
      items: { "1": { status: "new" }, "2": { status: "paid" } },
    });
    expect(ok.status).toBe(200);
    const refused = await send(d, "PUT", "/v1/kv/orders/3", { status: "lost" });
    expect(refused.status).toBe(400);
    const notCanonical = await send(d, "PUT", "/v1/kv/orders/01", { status: "new" });
    expect(notCanonical.status).toBe(400);
    const r = await db.query(`select key, version::float8 as v, op from audit_${tag} order by key`);
    const versions = ok.body!.versions as Record<string, number>;
    expect(r.rows).toEqual([
      { key: "1", v: versions["1"], op: "mset" },
      { key: "2", v: versions["2"], op: "mset" },
    ]);
  });
});

describe("a write-behind flush's audit rows, at the store", () => {
  const tag = uniqueTag();
  const table = `flush_${tag}`;
  const audit = `flush_audit_${tag}`;
  let db: pg.Client;
  let store: StoreAdapter;

  beforeAll(async () => {
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    store = await createStore({ url: PG_URL, poolSize: 2, timeoutMs: 5_000 });
  });

  afterAll(async () => {
    await store.close();
    await db.query(`drop table if exists ${table}, ${audit}`);
    await db.query(`delete from sidecache_tombstones where tbl = $1`, [table]);
    await db.end();
  });

  it("records every coalesced write once its key's newest lands, and a replay adds nothing", async () => {
    const t = await store.table({ table, audit: { keyspace: "events", table: audit } });
    const entry = (key: string, version: number, client: string): AuditEntry => ({
      key,
      version,
      op: "put",
      client,
      via: "http",
      acknowledgedAt: 1_700_000_000_000 + version,
    });
    // a: two writes coalesced into version 20; b: one write; c: a row newer than the flush (not applied).
    await t.write([{ key: "c", value: '"newer"' }], { minVersion: 1_000 });
    const ops = [
      { key: "a", value: '"a2"', version: 20 },
      { key: "b", value: '"b1"', version: 15 },
      { key: "c", value: '"c1"', version: 16 },
    ];
    const entries = [entry("a", 10, "x"), entry("a", 20, "y"), entry("b", 15, "x"), entry("c", 16, "y")];
    expect(await t.applyVersioned(ops, entries)).toBe(2);
    expect(await t.applyVersioned(ops, entries)).toBe(0);
    const r = await db.query(
      `select key, version::int as v, client, extract(epoch from acknowledged_at)::float8 * 1000 as ack
       from ${audit} where keyspace = 'events' order by key, version`,
    );
    expect(r.rows).toEqual([
      { key: "a", v: 10, client: "x", ack: 1_700_000_000_010 },
      { key: "a", v: 20, client: "y", ack: 1_700_000_000_020 },
      { key: "b", v: 15, client: "x", ack: 1_700_000_000_015 },
      // the synchronous write that made c's newer row; the flushed c@16 did not land
      { key: "c", v: 1_000, client: null, ack: null },
    ]);
  });
});
