/**
 * `store.cdc` in the configuration, and what `sidecache validate` and start-up say when PostgreSQL can
 * not stream changes: each names the setting to change.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { CdcSetupError } from "../src/errors.js";
import { silentLogger } from "../src/log.js";
import { cdcYaml, sqlClient } from "./support/cdc.js";
import { PG_URL, uniqueTag } from "./support/daemon.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const run = promisify(execFile);
const tag = uniqueTag();

function yaml(storeUrl: string, prefix = tag): string {
  return cdcYaml({
    storeUrl,
    prefix,
    slot: `${tag}_slot`,
    publication: `${tag}_pub`,
    keyspaces: { users: ["strategy: cache-aside", `table: ${tag}_users`] },
  });
}

/** `sidecache validate --config FILE`: exit code and what it printed. */
async function validate(text: string): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "sidecache-cdc-"));
  const file = join(dir, "sidecache.yaml");
  writeFileSync(file, text);
  try {
    const r = await run(process.execPath, ["dist/cmd/sidecache.js", "validate", "--config", file]);
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

describe("store.cdc in the configuration", () => {
  const base = (cdc: string, url = PG_URL) => `store:\n  url: ${url}\n  cdc:${cdc}\nkeyspaces:\n`;

  it("takes slot and publication, both sidecache by default", () => {
    expect(parseConfig(base(" {}"), "c.yaml").store.cdc).toEqual({
      slot: "sidecache",
      publication: "sidecache",
    });
    expect(parseConfig(base("\n    slot: s1\n    publication: p1"), "c.yaml").store.cdc).toEqual({
      slot: "s1",
      publication: "p1",
    });
    expect(parseConfig(`store:\n  url: ${PG_URL}\nkeyspaces:\n`, "c.yaml").store.cdc).toBeUndefined();
  });

  it("refuses bad names, unknown fields, an empty value and the embedded store, saying where", () => {
    expect(() => parseConfig(base("\n    slot: Bad-Slot"), "c.yaml")).toThrow(
      /c\.yaml:4: store\.cdc\.slot: must be 1 to 63 lower-case letters, digits or _; got "Bad-Slot"/,
    );
    expect(() => parseConfig(base("\n    slots: x"), "c.yaml")).toThrow(
      /store\.cdc\.slots: is not a known field/,
    );
    expect(() => parseConfig(base(""), "c.yaml")).toThrow(/store\.cdc: needs a mapping/);
    expect(() => parseConfig(base(" {}", "pglite:memory"), "c.yaml")).toThrow(
      /store\.cdc: needs a PostgreSQL server .*PGlite has no logical replication/,
    );
  });
});

describe("validate and start-up name what PostgreSQL lacks", () => {
  let server: PrivatePostgres;
  let db: pg.Client;
  let shared: pg.Client;

  beforeAll(async () => {
    server = await startPrivatePostgres({ wal_level: "logical", max_replication_slots: 2 });
    db = await sqlClient(server.url);
    shared = await sqlClient(PG_URL);
  });

  afterAll(async () => {
    await db?.end();
    await shared?.query(`drop table if exists ${tag}_users`);
    await shared?.end();
    await server?.cleanup();
  });

  it("wal_level, on the shared server (replica): validate exits 1 and start-up refuses", async () => {
    const r = await validate(yaml(PG_URL));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/store\.cdc: wal_level is replica: set wal_level = logical/);
    const start = Daemon.start(parseConfig(yaml(PG_URL), "c.yaml"), { log: silentLogger });
    await expect(start).rejects.toThrow(CdcSetupError);
    await expect(start).rejects.toThrow(/wal_level is replica: set wal_level = logical/);
    // refused before anything was created
    const created = await shared.query(`select to_regclass($1) as t`, [`${tag}_users`]);
    expect(created.rows[0].t).toBeNull();
  });

  it("the replication privilege", async () => {
    await db.query(`create role ${tag}_plain login`);
    await db.query(`grant create on database postgres to ${tag}_plain`);
    const r = await validate(yaml(server.url.replace("postgres@", `${tag}_plain@`)));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      new RegExp(`the role ${tag}_plain has no replication privilege: ALTER ROLE ${tag}_plain REPLICATION`),
    );
    expect(r.out).not.toMatch(/wal_level/);
  });

  it("max_replication_slots, when every slot is taken", async () => {
    expect((await validate(yaml(server.url))).code).toBe(0);
    await db.query(`select pg_create_logical_replication_slot('${tag}_other1', 'pgoutput')`);
    await db.query(`select pg_create_logical_replication_slot('${tag}_other2', 'pgoutput')`);
    try {
      const r = await validate(yaml(server.url));
      expect(r.code).toBe(1);
      expect(r.out).toMatch(
        /max_replication_slots is 2 and all of them are in use: raise max_replication_slots/,
      );
    } finally {
      await db.query(`select pg_drop_replication_slot('${tag}_other1')`);
      await db.query(`select pg_drop_replication_slot('${tag}_other2')`);
    }
  });

  it("an unreachable server", async () => {
    const r = await validate(yaml("postgres://postgres@127.0.0.1:1/test"));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/store\.cdc: PostgreSQL can not be reached to check it/);
  });
});
