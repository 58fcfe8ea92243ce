/**
 * Divergence made behind the daemon's back (rows updated, deleted and inserted in PostgreSQL, cache
 * entries overwritten and deleted in Redis), found, classified and repaired by each policy, and alerted
 * to a real HTTP receiver: firing once, then resolved.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { runCheckCommand } from "../src/checker/command.js";
import { parseConfig } from "../src/config/load.js";
import { call } from "./support/http.js";
import {
  clients,
  daemonWith,
  dropPrefix,
  PG_URL,
  rawEntry,
  receiver,
  REDIS_URL,
  until,
  writeEntry,
} from "./checker-support.js";

const tag = `t${randomBytes(4).toString("hex")}`;
const prefix = `sc_chk_${tag}`;
const tables = { inv: `chk_inv_${tag}`, rw: `chk_rw_${tag}`, rep: `chk_rep_${tag}` };
const { redis, pg } = clients();
let daemon: Daemon;
let hooks: Awaited<ReturnType<typeof receiver>>;

function yaml(hookUrl: string): string {
  return `
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
alerts:
  webhooks:
    - { url: "${hookUrl}/json", format: json }
    - { url: "${hookUrl}/api/v2/alerts", format: alertmanager }
checker: { enabled: false, sample: 100, alert_ratio: 0.01 }
keyspaces:
  inv: { strategy: cache-aside, table: ${tables.inv}, ttl: 1h, checker: { repair: invalidate } }
  rw: { strategy: cache-aside, table: ${tables.rw}, ttl: 1h, checker: { repair: rewrite } }
  rep: { strategy: cache-aside, table: ${tables.rep}, ttl: 1h, checker: { repair: report } }
`;
}

interface Report {
  keyspace: string;
  sampled: number;
  inconsistent: number;
  by_kind: Record<string, number>;
  repaired: number;
  ratio: number;
  ratio_upper_95: number;
  nines: { estimate: number | null; lower_95: number };
  skipped: number;
  findings: { key: string; kind: string; repaired: boolean }[];
  started_at: string;
  duration_ms: number;
}

async function check(ks: string, body: unknown = { full: true }): Promise<Report> {
  const r = await call(daemon.url, "POST", `/v1/keyspaces/${ks}/check`, body);
  expect(r.status, r.text).toBe(200);
  return r.json() as Report;
}

async function row(
  ks: keyof typeof tables,
  key: string,
): Promise<{ value: unknown; version: number } | undefined> {
  const r = await pg.query(`select value, version from ${tables[ks]} where key = $1`, [key]);
  return r.rows[0] ? { value: r.rows[0].value, version: Number(r.rows[0].version) } : undefined;
}

/** 20 keys written and read through the daemon (so cached), then six kinds of divergence made directly. */
async function diverge(ks: keyof typeof tables): Promise<{ k1: number; k3: number; k4: number }> {
  for (let i = 0; i < 20; i++) {
    expect((await call(daemon.url, "PUT", `/v1/kv/${ks}/k${i}`, { i })).status).toBe(200);
    expect((await call(daemon.url, "GET", `/v1/kv/${ks}/k${i}`)).status).toBe(200);
  }
  expect((await call(daemon.url, "GET", `/v1/kv/${ks}/fresh`)).status).toBe(404); // cached as absent
  const v = async (key: string) => (await row(ks, key))!.version;
  const versions = { k1: await v("k1"), k3: await v("k3"), k4: await v("k4") };
  const t = tables[ks];
  // stale: the row moved on without the daemon
  await pg.query(`update ${t} set value = '{"i": "updated"}', version = version + 10 where key = 'k1'`);
  // orphan: the row is gone
  await pg.query(`delete from ${t} where key = 'k2'`);
  // mismatch: same version, another value in the cache
  await writeEntry(redis, prefix, ks, "k3", versions.k3, '{"i":"forged"}');
  // missing_write: the cache holds a version PostgreSQL never had
  await writeEntry(redis, prefix, ks, "k4", versions.k4 + 1000, '{"i":"lost"}');
  // stale negative entry: a row appears for a key cached as absent
  await pg.query(
    `insert into ${t} (key, value, version, updated_at) values ('fresh', '"hello"', $1, now())`,
    [versions.k4 + 5],
  );
  // a cache entry deleted: nothing cached is no lie
  await redis.del(`${prefix}:kv:{${ks}}:k5`);
  return versions;
}

beforeAll(async () => {
  hooks = await receiver();
  daemon = await daemonWith(yaml(hooks.url), { limits: { recheckDelayMs: 20 }, alerts: { baseDelayMs: 50 } });
});

afterAll(async () => {
  await daemon?.stop();
  await hooks?.close();
  for (const t of Object.values(tables)) await pg.query(`drop table if exists ${t}`);
  await pg.query(`delete from sidecache_tombstones where tbl = any($1)`, [Object.values(tables)]);
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await pg.end();
});

describe("the consistency checker against real divergence", () => {
  it("invalidate: finds and classifies each kind, tombstones what PostgreSQL can answer, keeps the lost write, alerts once", async () => {
    const versions = await diverge("inv");
    const report = await check("inv");
    expect(report).toMatchObject({
      keyspace: "inv",
      inconsistent: 5,
      by_kind: { stale: 2, orphan: 1, mismatch: 1, missing_write: 1 },
      repaired: 4,
      skipped: 0,
    });
    expect(report.sampled).toBe(21);
    expect(report.ratio).toBeCloseTo(5 / 21, 5);
    expect(report.ratio_upper_95).toBeGreaterThan(report.ratio);
    const kinds = Object.fromEntries(report.findings.map((f) => [f.key, f.kind]));
    expect(kinds).toEqual({ k1: "stale", k2: "orphan", k3: "mismatch", k4: "missing_write", fresh: "stale" });
    expect(report.findings.find((f) => f.key === "k4")!.repaired).toBe(false);

    // Readers now get PostgreSQL's truth, except the lost write, which stays in the cache for an operator.
    expect((await call(daemon.url, "GET", "/v1/kv/inv/k1")).json()).toEqual({ i: "updated" });
    expect((await call(daemon.url, "GET", "/v1/kv/inv/k2")).status).toBe(404);
    expect((await call(daemon.url, "GET", "/v1/kv/inv/k3")).json()).toEqual({ i: 3 });
    expect((await call(daemon.url, "GET", "/v1/kv/inv/fresh")).json()).toBe("hello");
    expect((await rawEntry(redis, prefix, "inv", "k4"))!.version).toBe(versions.k4 + 1000);
    expect((await call(daemon.url, "GET", "/v1/kv/inv/k4")).json()).toEqual({ i: "lost" });

    // One firing alert per webhook, in each format.
    await until(() => hooks.got.length >= 2, "firing alerts");
    const json = hooks.got.find((g) => g.path === "/json")!.body as Record<string, unknown>;
    expect(json).toMatchObject({
      alert: "SidecacheInconsistent",
      status: "firing",
      keyspace: "inv",
      alert_ratio: 0.01,
    });
    const am = hooks.got.find((g) => g.path === "/api/v2/alerts")!.body as Record<string, unknown>[];
    expect(am).toHaveLength(1);
    expect(am[0]).toMatchObject({ labels: { alertname: "SidecacheInconsistent", keyspace: "inv" } });
    expect(Date.parse(am[0]!.endsAt as string)).toBeGreaterThan(Date.now());

    // Still over the line: only the lost write is left; no second alert.
    const again = await check("inv");
    expect(again).toMatchObject({ inconsistent: 1, by_kind: { missing_write: 1 }, repaired: 0 });
    // The operator deals with it: back under the line, one resolved alert each.
    await redis.del(`${prefix}:kv:{inv}:k4`);
    const clean = await check("inv");
    expect(clean).toMatchObject({ inconsistent: 0, by_kind: {}, ratio: 0 });
    expect(clean.nines.estimate).toBeNull();
    expect(clean.nines.lower_95).toBeGreaterThan(0.5);
    await until(() => hooks.got.length >= 4, "resolved alerts");
    const statuses = hooks.got
      .filter((g) => g.path === "/json")
      .map((g) => (g.body as { status: string }).status);
    expect(statuses).toEqual(["firing", "resolved"]);
    const resolved = hooks.got.filter((g) => g.path === "/api/v2/alerts")[1]!.body as { endsAt: string }[];
    expect(Date.parse(resolved[0]!.endsAt)).toBeLessThanOrEqual(Date.now());
    expect(await check("inv")).toMatchObject({ inconsistent: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(hooks.got).toHaveLength(4);

    // The last report is on GET /v1/keyspaces, and the metrics carry the counts.
    const list = (await call(daemon.url, "GET", "/v1/keyspaces")).json() as {
      keyspaces: Record<string, { last_check: Report | null }>;
    };
    expect(list.keyspaces.inv!.last_check).toMatchObject({ keyspace: "inv", inconsistent: 0 });
    const metrics = (await call(daemon.url, "GET", "/metrics")).text;
    expect(metrics).toMatch(/sidecache_consistency_inconsistent_total\{keyspace="inv",kind="stale"\} 2/);
    expect(metrics).toMatch(
      /sidecache_consistency_inconsistent_total\{keyspace="inv",kind="missing_write"\} 2/,
    );
    expect(metrics).toMatch(/sidecache_consistency_repaired_total\{keyspace="inv",kind="orphan"\} 1/);
    expect(metrics).toMatch(/sidecache_consistency_checked_total\{keyspace="inv",kind="consistent"\} \d+/);
    expect(metrics).toMatch(/sidecache_consistency_ratio\{keyspace="inv"\} 0\n/);
  });

  it("rewrite: the cache takes PostgreSQL's rows, the lost write is restored into PostgreSQL", async () => {
    const versions = await diverge("rw");
    const report = await check("rw");
    expect(report).toMatchObject({
      inconsistent: 5,
      by_kind: { stale: 2, orphan: 1, mismatch: 1, missing_write: 1 },
      repaired: 5,
    });
    const k1 = await rawEntry(redis, prefix, "rw", "k1");
    expect(k1).toMatchObject({ kind: "v", version: (await row("rw", "k1"))!.version });
    expect(JSON.parse(k1!.value)).toEqual({ i: "updated" });
    const k3 = await rawEntry(redis, prefix, "rw", "k3");
    expect(k3!.version).toBe(versions.k3);
    expect(JSON.parse(k3!.value)).toEqual({ i: 3 });
    expect(await row("rw", "k4")).toEqual({ value: { i: "lost" }, version: versions.k4 + 1000 });
    expect((await rawEntry(redis, prefix, "rw", "k2"))?.kind).toBe("t");
    expect(await check("rw")).toMatchObject({ inconsistent: 0 });
  });

  it("report: finds the same and changes nothing", async () => {
    const versions = await diverge("rep");
    const before = await redis.get(`${prefix}:kv:{rep}:k3`);
    const report = await check("rep", { sample: 1000 });
    expect(report).toMatchObject({ inconsistent: 5, repaired: 0 });
    expect(await redis.get(`${prefix}:kv:{rep}:k3`)).toBe(before);
    expect((await row("rep", "k4"))!.version).toBe(versions.k4);
    expect(await check("rep", { sample: 1000 })).toMatchObject({ inconsistent: 5 });
  });

  it("sidecache check prints the reports and exits 1 while a keyspace is inconsistent, 0 once it is not", async () => {
    const config = parseConfig(yaml(hooks.url), "test.yaml");
    let printed = "";
    const code = await runCheckCommand(
      { ...config, log: { level: "silent", access: false } },
      { keyspace: "rep", full: true },
      (t) => {
        printed += t;
      },
    );
    expect(code).toBe(1);
    expect(JSON.parse(printed)).toMatchObject({ keyspace: "rep", inconsistent: 5, repaired: 0 });
    printed = "";
    const ok = await runCheckCommand(
      { ...config, log: { level: "silent", access: false } },
      { keyspace: "rw", full: false },
      (t) => {
        printed += t;
      },
    );
    expect(ok).toBe(0);
    expect(JSON.parse(printed)).toMatchObject({ keyspace: "rw", inconsistent: 0 });
    expect(await runCheckCommand(config, { keyspace: "nope", full: false }, () => {})).toBe(1);
  });
});
