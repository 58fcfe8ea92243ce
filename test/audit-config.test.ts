/**
 * The audit setting as the configuration file states it (every refusal names the line and the field), and
 * retention: a daemon deletes the records past a keyspace's retention, in batches, and keeps the rest.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
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
