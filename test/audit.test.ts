/**
 * The audit log, against real PostgreSQL and Redis: every committed write of every strategy has exactly one
 * row (token name, front end, operation, condition, version); a write refused by a failed If-Match, a
 * constraint or a deferred constraint at the commit has none while the writes that shared its statement
 * have theirs; _mset is all or nothing, rows included; write-behind writes are audited by the flush that
 * applies them; the admin route pages with a stable cursor and refuses bad input; the CLI prints it.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForbiddenError, SidecacheClient } from "../client/src/index.js";
import { runOpsCommand, type OpsOptions } from "../src/cli/ops-commands.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call, seg } from "./support/http.js";

const run = promisify(execFile);
const tag = uniqueTag();
const AUDIT = `audit_${tag}`;
const TOKENS = {
  writer: `writer-token-${tag}`,
  other: `other-token-${tag}`,
  admin: `admin-token-${tag}`,
  reader: `reader-token-${tag}`,
};
const STRATEGIES = {
  aside: "strategy: cache-aside",
  around: "strategy: write-around",
  strict: "strategy: write-through\n    consistency: strict",
  eventual: "strategy: write-through\n    consistency: eventual",
  behind: "strategy: write-behind\n    write_behind: { flush_interval: 1h }",
} as const;
type Ks = keyof typeof STRATEGIES;

let daemon: Daemon;
let db: pg.Client;
let redis: Redis;

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

function yaml(): string {
  const keyspaces = Object.entries(STRATEGIES)
    .map(([ks, s]) => `  ${ks}:\n    ${s}\n    table: ${ks}_${tag}\n    audit: { table: ${AUDIT} }`)
    .join("\n");
  return `
server: { resp: { host: 127.0.0.1, port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
auth:
  tokens:
    - { name: writer, token: ${TOKENS.writer}, allow: { "*": write } }
    - { name: other, token: ${TOKENS.other}, allow: { "*": write } }
    - { name: admin, token: ${TOKENS.admin}, allow: { "*": admin } }
    - { name: reader, token: ${TOKENS.reader}, allow: { "*": read } }
keyspaces:
${keyspaces}
  plain:
    strategy: cache-aside
    table: plain_${tag}
`;
}

interface Row {
  keyspace: string;
  key: string;
  version: number;
  op: string;
  if_match: number | null;
  if_none_match: boolean;
  client: string | null;
  via: string | null;
  acked: boolean;
}

async function rows(ks: string): Promise<Row[]> {
  const r = await db.query(
    `select keyspace, key, version::float8 as version, op, if_match::float8 as if_match, if_none_match, client,
       via, acknowledged_at is not null as acked
     from ${AUDIT} where keyspace = $1 order by key, version`,
    [ks],
  );
  return r.rows as Row[];
}

async function tombstone(ks: string, key: string): Promise<number> {
  const r = await db.query(
    `select version::float8 as v from sidecache_tombstones where tbl = $1 and key = $2`,
    [`${ks}_${tag}`, key],
  );
  return r.rows[0]?.v ?? 0;
}

const put = (ks: string, key: string, value: unknown, token: string, headers: Record<string, string> = {}) =>
  call(daemon.url, "PUT", `/v1/kv/${ks}/${seg(key)}`, value, { ...auth(token), ...headers });

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
  // A managed table made in advance, with a constraint checked at the commit: {"late": "refuse"} is refused.
  for (const ks of Object.keys(STRATEGIES)) {
    const t = `${ks}_${tag}`;
    await db.query(
      `create table ${t} ("key" text collate "C" primary key, "value" jsonb not null, "version" bigint not null,
         "updated_at" timestamptz not null default now(), constraint ${t}_small check (("value"->>'n')::int is distinct from 13))`,
    );
    await db.query(`create function ${t}_late() returns trigger language plpgsql as $$
      begin if new."value"->>'late' = 'refuse' then
        raise exception 'refused at the commit' using errcode = 'check_violation'; end if; return null; end $$`);
    await db.query(`create constraint trigger ${t}_late after insert or update on ${t}
      deferrable initially deferred for each row execute function ${t}_late()`);
  }
  daemon = await startDaemon(yaml());
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  for (const ks of [...Object.keys(STRATEGIES), "plain"]) {
    await db.query(`drop table if exists ${ks}_${tag}`);
    await db.query(`drop function if exists ${ks}_${tag}_late`);
    await db.query(`delete from sidecache_tombstones where tbl = $1`, [`${ks}_${tag}`]);
  }
  await db.query(`drop table if exists ${AUDIT}`);
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

describe("every committed write has exactly one audit row", () => {
  for (const ks of Object.keys(STRATEGIES) as Ks[]) {
    it(`${ks}: puts, conditional puts, deletes and _mset, with the token's name and the version`, async () => {
      const behind = ks === "behind";
      const a1 = await put(ks, "a", { v: 1 }, TOKENS.writer);
      expect(a1.status).toBe(behind ? 202 : 200);
      const v1 = (a1.json() as { version: number }).version;
      const a2 = await put(ks, "a", { v: 2 }, TOKENS.other, { "if-match": `"${v1}"` });
      expect(a2.status).toBe(behind ? 202 : 200);
      const v2 = (a2.json() as { version: number }).version;
      const n1 = await put(ks, "new", 1, TOKENS.writer, { "if-none-match": "*" });
      const vn = (n1.json() as { version: number }).version;
      const del = await call(daemon.url, "DELETE", `/v1/kv/${ks}/a`, undefined, auth(TOKENS.writer));
      expect(del.status).toBe(behind ? 202 : 204);
      const m = await call(
        daemon.url,
        "POST",
        `/v1/kv/${ks}/_mset`,
        { items: { b: 1, c: 2 } },
        auth(TOKENS.other),
      );
      const mv = (m.json() as { versions: Record<string, number> }).versions;
      if (behind) {
        expect(await rows(ks)).toEqual([]);
        const f = await call(daemon.url, "POST", `/v1/keyspaces/${ks}/flush`, undefined, auth(TOKENS.admin));
        expect(f.status).toBe(200);
      }
      const deleted = behind ? (del.json() as { version: number }).version : await tombstone(ks, "a");
      expect(deleted).toBeGreaterThan(v2);
      const base = { keyspace: ks, if_match: null, if_none_match: false, via: "http", acked: behind };
      expect(await rows(ks)).toEqual([
        { ...base, key: "a", version: v1, op: "put", client: "writer" },
        { ...base, key: "a", version: v2, op: "put", client: "other", if_match: v1 },
        { ...base, key: "a", version: deleted, op: "delete", client: "writer" },
        { ...base, key: "b", version: mv.b, op: "mset", client: "other" },
        { ...base, key: "c", version: mv.c, op: "mset", client: "other" },
        { ...base, key: "new", version: vn, op: "put", client: "writer", if_none_match: true },
      ]);
    });
  }

  it("writes over the Redis protocol carry the token's name and via resp", async () => {
    const c = new Redis({ port: daemon.respPort!, password: TOKENS.writer, lazyConnect: true });
    await c.connect();
    try {
      expect(await c.set("aside:r1", "one")).toBe("OK");
      expect(await c.mset("aside:r2", "two", "aside:r3", "three")).toBe("OK");
      expect(await c.del("aside:r1")).toBe(1);
    } finally {
      c.disconnect();
    }
    const mine = (await rows("aside")).filter((r) => r.key.startsWith("r"));
    expect(mine.map((r) => [r.key, r.op, r.client, r.via, r.if_match !== null])).toEqual([
      ["r1", "put", "writer", "resp", false],
      // DEL reads, then deletes on condition of the version read
      ["r1", "delete", "writer", "resp", true],
      ["r2", "mset", "writer", "resp", false],
      ["r3", "mset", "writer", "resp", false],
    ]);
  });

  it("a keyspace without audit writes none", async () => {
    expect((await put("plain", "p", 1, TOKENS.writer)).status).toBe(200);
    const r = await db.query(`select count(*)::int as n from ${AUDIT} where keyspace = 'plain'`);
    expect(r.rows[0].n).toBe(0);
  });
});

/** Polls until `n` sessions wait on a lock the session `holder` holds, or fails after 10 s. */
async function waitForBlocked(holder: number, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await db.query(
      `select count(*)::int as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))`,
      [holder],
    );
    if (r.rows[0].n >= n) return;
    if (Date.now() > deadline) throw new Error(`only ${r.rows[0].n} writes wait on a lock, not ${n}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe("a refused write leaves no audit row; the others of its statement have theirs", () => {
  for (const ks of ["aside", "strict"] as const) {
    it(`${ks}: failed If-Match, a check constraint and a deferred one refusing the commit`, async () => {
      const table = `${ks}_${tag}`;
      const seed = await put(ks, "cond", 0, TOKENS.writer);
      const seeded = (seed.json() as { version: number }).version;
      // Four statements held in flight (the most at once) by locks on their keys: the writes sent next wait
      // and go out together in one statement once the locks go.
      const gate = new pg.Client({ connectionString: PG_URL });
      await gate.connect();
      const gatePid = (await gate.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      const gates = ["g0", "g1", "g2", "g3"];
      await gate.query(`select pg_advisory_lock(hashtext($1), hashtext(k)) from unnest($2::text[]) as k`, [
        table,
        gates,
      ]);
      const gated: ReturnType<typeof put>[] = [];
      for (const g of gates) {
        gated.push(put(ks, g, 1, TOKENS.writer));
        await waitForBlocked(gatePid, gated.length);
      }
      const writes = {
        ok1: put(ks, "ok1", { n: 1 }, TOKENS.writer),
        ok2: put(ks, "ok2", { n: 2 }, TOKENS.other),
        mismatch: put(ks, "cond", 1, TOKENS.writer, { "if-match": `"${seeded + 1}"` }),
        check: put(ks, "check", { n: 13 }, TOKENS.writer),
        late: put(ks, "late", { late: "refuse" }, TOKENS.writer),
        ok3: put(ks, "ok3", { n: 3 }, TOKENS.other),
      };
      await new Promise((res) => setTimeout(res, 150));
      await gate.query("select pg_advisory_unlock_all()");
      await gate.end();
      for (const g of await Promise.all(gated)) expect(g.status).toBe(200);
      const answers = Object.fromEntries(
        await Promise.all(Object.entries(writes).map(async ([k, p]) => [k, await p] as const)),
      );
      expect(answers.mismatch!.status).toBe(412);
      expect(answers.check!.status).toBe(400);
      expect(answers.late!.status).toBe(400);
      const audited = new Map((await rows(ks)).map((r) => [`${r.key}@${r.version}`, r.client]));
      for (const k of ["ok1", "ok2", "ok3"]) {
        expect(answers[k]!.status).toBe(200);
        const v = (answers[k]!.json() as { version: number }).version;
        expect(audited.get(`${k}@${v}`)).toBe(k === "ok1" ? "writer" : "other");
      }
      const keys = (await rows(ks)).map((r) => r.key);
      expect(keys.filter((k) => k === "check" || k === "late")).toEqual([]);
      expect(keys.filter((k) => k === "cond")).toEqual(["cond"]); // the seed only
      // Every row of the table's keys is audited, at its version, once.
      const stored = await db.query(`select key, version::float8 as v from ${table}`);
      for (const r of stored.rows) expect(audited.has(`${r.key}@${r.v}`)).toBe(true);
    });
  }

  it("_mset is all or nothing, its audit rows too", async () => {
    const refused = await call(
      daemon.url,
      "POST",
      "/v1/kv/eventual/_mset",
      { items: { m1: { n: 1 }, m2: { n: 13 }, m3: { n: 3 } } },
      auth(TOKENS.writer),
    );
    expect(refused.status).toBe(400);
    const late = await call(
      daemon.url,
      "POST",
      "/v1/kv/eventual/_mset",
      { items: { m1: { n: 1 }, m4: { late: "refuse" } } },
      auth(TOKENS.writer),
    );
    expect(late.status).toBe(400);
    expect((await rows("eventual")).filter((r) => r.key.startsWith("m"))).toEqual([]);
    const ok = await call(
      daemon.url,
      "POST",
      "/v1/kv/eventual/_mset",
      { items: { m1: { n: 1 }, m2: { n: 2 } } },
      auth(TOKENS.writer),
    );
    expect(ok.status).toBe(200);
    const v = (ok.json() as { versions: Record<string, number> }).versions;
    expect(
      (await rows("eventual")).filter((r) => r.key.startsWith("m")).map((r) => [r.key, r.version, r.op]),
    ).toEqual([
      ["m1", v.m1, "mset"],
      ["m2", v.m2, "mset"],
    ]);
  });
});

describe("GET /v1/keyspaces/{ks}/audit", () => {
  const get = (path: string, token = TOKENS.admin) => call(daemon.url, "GET", path, undefined, auth(token));
  interface Page {
    keyspace: string;
    records: { key: string; version: number; op: string; client: string; at: string }[];
    next_cursor: string | null;
  }

  it("pages newest first with a stable cursor, and filters by key and time", async () => {
    const before = new Date().toISOString();
    const versions: number[] = [];
    for (let i = 0; i < 5; i++) {
      versions.push(((await put("around", "paged", i, TOKENS.writer)).json() as { version: number }).version);
    }
    const after = new Date(Date.now() + 1).toISOString();
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q = new URLSearchParams({ key: "paged", limit: "2", ...(cursor ? { cursor } : {}) });
      const r = await get(`/v1/keyspaces/around/audit?${q}`);
      expect(r.status).toBe(200);
      const page = r.json() as Page;
      expect(page.records.length).toBeLessThanOrEqual(2);
      seen.push(...page.records.map((x) => x.version));
      cursor = page.next_cursor;
      pages++;
      // A write made while paging lands above the cursor: the pages go on where they were.
      if (pages === 1) await put("around", "paged", 99, TOKENS.writer);
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...versions].reverse());
    const all = (await get(`/v1/keyspaces/around/audit?key=paged`)).json() as Page;
    expect(all.records.map((x) => x.version).slice(1)).toEqual([...versions].reverse());
    const times = all.records.map((x) => x.at);
    expect([...times].sort().reverse()).toEqual(times);
    const windowed = (
      await get(`/v1/keyspaces/around/audit?key=paged&since=${before}&until=${after}`)
    ).json() as Page;
    expect(windowed.records.map((x) => x.version)).toEqual([...versions].reverse());
    const recent = (await get(`/v1/keyspaces/around/audit?since=1h&limit=1000`)).json() as Page;
    expect(recent.records.filter((x) => x.key === "paged")).toHaveLength(6);
    const none = (await get(`/v1/keyspaces/around/audit?key=paged&until=${before}`)).json() as Page;
    expect(none).toEqual({ keyspace: "around", records: [], next_cursor: null });
  });

  it("refuses bad input with invalid_request, an unaudited keyspace and tokens without admin", async () => {
    const count = async () => (await db.query(`select count(*)::int as n from ${AUDIT}`)).rows[0].n as number;
    const n = await count();
    const bad = [
      "limit=0",
      "limit=1001",
      "limit=ten",
      "since=yesterday",
      "until=2026-13-01T00:00:00Z",
      "cursor=bm90LWEtY3Vyc29y",
      "cursor=%%%",
      "sort=asc",
      "key=a&key=b",
      "key=..",
    ];
    for (const q of bad) {
      const r = await get(`/v1/keyspaces/aside/audit?${q}`);
      expect(r.status, q).toBe(400);
      expect((r.json() as { error: { code: string } }).error.code, q).toMatch(/^invalid_(request|key)$/);
    }
    const plain = await get(`/v1/keyspaces/plain/audit`);
    expect(plain.status).toBe(404);
    expect(plain.json()).toEqual({
      error: { code: "not_found", message: expect.stringContaining("audit: true") },
    });
    expect((await get(`/v1/keyspaces/nope/audit`)).status).toBe(404);
    expect((await get(`/v1/keyspaces/aside/audit`, TOKENS.writer)).status).toBe(403);
    expect((await get(`/v1/keyspaces/aside/audit`, TOKENS.reader)).status).toBe(403);
    expect((await call(daemon.url, "GET", `/v1/keyspaces/aside/audit`)).status).toBe(401);
    const post = await call(daemon.url, "POST", `/v1/keyspaces/aside/audit`, {}, auth(TOKENS.admin));
    expect(post.status).toBe(405);
    expect(await count()).toBe(n);
  });
});

describe("the client's audit()", () => {
  it("reads a page and follows next_cursor; a token without admin gets ForbiddenError", async () => {
    for (let i = 0; i < 3; i++) await put("eventual", "client", i, TOKENS.other);
    const client = new SidecacheClient({ url: daemon.url, token: TOKENS.admin });
    const denied = new SidecacheClient({ url: daemon.url, token: TOKENS.writer, retry: false });
    try {
      const ks = client.keyspace("eventual");
      const first = await ks.audit({ key: "client", limit: 2, since: new Date(Date.now() - 60_000) });
      expect(first.records.map((r) => [r.key, r.op, r.client, r.via])).toEqual([
        ["client", "put", "other", "http"],
        ["client", "put", "other", "http"],
      ]);
      const rest = await ks.audit({ key: "client", limit: 2, cursor: first.next_cursor! });
      expect(rest.records).toHaveLength(1);
      expect(rest.next_cursor).toBeNull();
      expect(rest.records[0]!.version).toBeLessThan(first.records[1]!.version);
      await expect(denied.keyspace("eventual").audit()).rejects.toBeInstanceOf(ForbiddenError);
    } finally {
      await client.close();
      await denied.close();
    }
  });
});

describe("sidecache audit", () => {
  async function ops(
    args: string[],
    o: OpsOptions = {},
  ): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const code = await runOpsCommand(
      args,
      { url: daemon.url, token: TOKENS.admin, ...o },
      { out: (t) => (out += t), err: (t) => (err += t), env: {} },
    );
    return { code, out, err };
  }

  it("prints the records of a key as a table, pages with --cursor, and says why it is refused", async () => {
    const v1 = ((await put("strict", "cli", 1, TOKENS.writer)).json() as { version: number }).version;
    const v2 = (
      (await put("strict", "cli", 2, TOKENS.other, { "if-match": `"${v1}"` })).json() as {
        version: number;
      }
    ).version;
    const first = await ops(["audit", "strict"], { key: "cli", limit: "1" });
    expect(first.code).toBe(0);
    const lines = first.out.trim().split("\n");
    expect(lines[0]).toMatch(/^AT\s+KEY\s+VERSION\s+OP\s+CONDITION\s+CLIENT\s+VIA\s+ACKNOWLEDGED$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\s+"cli"\\s+${v2}\\s+put\\s+if-match ${v1}\\s+other\\s+http\\s+-$`,
      ),
    );
    const cursor = /^more: add --cursor (\S+)$/.exec(lines[2]!)?.[1];
    expect(cursor).toBeDefined();
    const second = await ops(["audit", "strict"], { key: "cli", limit: "1", cursor });
    expect(second.out).toMatch(new RegExp(`"cli"\\s+${v1}\\s+put\\s+-\\s+writer\\s+http`));
    expect(second.out).not.toContain("more:");
    const json = await ops(["audit", "strict"], { key: "cli", json: true });
    expect((JSON.parse(json.out) as { records: unknown[] }).records).toHaveLength(2);
    const refused = await ops(["audit", "strict"], { token: TOKENS.writer });
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("403 forbidden");
    const bad = await ops(["audit", "strict"], { since: "last tuesday" });
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("400 invalid_request: since must be");
    expect((await ops(["audit"])).code).toBe(2);
  });

  it("runs as the executable, options parsed from the command line", async () => {
    const { stdout } = await run(
      process.execPath,
      [
        "dist/cmd/sidecache.js",
        "audit",
        "strict",
        "--key",
        "cli",
        "--since",
        "1h",
        "--limit",
        "5",
        "--url",
        daemon.url,
      ],
      { env: { ...process.env, SIDECACHE_TOKEN: TOKENS.admin }, timeout: 30_000 },
    );
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(1, 4).join(" "))).toEqual([
      expect.stringMatching(/^"cli" \d+ put$/),
      expect.stringMatching(/^"cli" \d+ put$/),
    ]);
  });
});
