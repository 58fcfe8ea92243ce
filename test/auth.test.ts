/**
 * The access matrix: every route with no token, a wrong or malformed token, and each scope (read, write,
 * admin, "*", another keyspace); ops routes open or protected; tokens read from the environment and never
 * echoed or logged.
 */
import { Writable } from "node:stream";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, uniqueTag } from "./support/daemon.js";
import { call, type Reply } from "./support/http.js";

const tag = uniqueTag();
const env = {
  READER: `reader-${tag}-0123456789`,
  WRITER: `writer-${tag}-0123456789`,
  ADMIN: `admin-${tag}-0123456789`,
  STAR: `star-${tag}-0123456789`,
  OTHER: `other-${tag}-0123456789`,
};
const WRONG = `wrong-${tag}-0123456789`;
const secrets = [...Object.values(env), WRONG];

function yaml(protectOps: boolean): string {
  return `
server: { port: 0 }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
auth:
  protect_ops: ${protectOps}
  tokens:
    - { name: reader, token: "\${READER}", allow: { users: read } }
    - { name: writer, token: "\${WRITER}", allow: { users: write } }
    - { name: admin, token: "\${ADMIN}", allow: { users: admin } }
    - { name: star, token: "\${STAR}", allow: { "*": read } }
    - { name: other, token: "\${OTHER}", allow: { orders: write } }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users }
  orders: { strategy: cache-aside, table: ${tag}_orders }
`;
}

const logged: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _e, done) {
    logged.push(chunk.toString());
    done();
  },
});

let open: Daemon;
let guarded: Daemon;
let db: pg.Client;

beforeAll(async () => {
  const start = (protectOps: boolean) => {
    const config = parseConfig(yaml(protectOps), "auth.yaml", env);
    return Daemon.start(config, { log: pino({ level: "trace" }, sink) });
  };
  [open, guarded] = await Promise.all([start(false), start(true)]);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  await Promise.all([open?.stop(), guarded?.stop()]);
  await db?.query(`drop table if exists ${tag}_users, ${tag}_orders`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
});

type Need = "read" | "write" | "admin";
interface Route {
  name: string;
  method: string;
  path: (ks: string) => string;
  body?: unknown;
  need: Need;
}

const routes: Route[] = [
  { name: "GET key", method: "GET", path: (ks) => `/v1/kv/${ks}/k1`, need: "read" },
  { name: "PUT key", method: "PUT", path: (ks) => `/v1/kv/${ks}/k1`, body: { a: 1 }, need: "write" },
  { name: "DELETE key", method: "DELETE", path: (ks) => `/v1/kv/${ks}/k1`, need: "write" },
  { name: "_mget", method: "POST", path: (ks) => `/v1/kv/${ks}/_mget`, body: { keys: ["k1"] }, need: "read" },
  {
    name: "_mset",
    method: "POST",
    path: (ks) => `/v1/kv/${ks}/_mset`,
    body: { items: { k2: 2 } },
    need: "write",
  },
  { name: "flush", method: "POST", path: (ks) => `/v1/keyspaces/${ks}/flush`, need: "admin" },
  { name: "check", method: "POST", path: (ks) => `/v1/keyspaces/${ks}/check`, body: {}, need: "admin" },
  { name: "dead letters", method: "GET", path: (ks) => `/v1/keyspaces/${ks}/dead-letters`, need: "admin" },
  {
    name: "dead letter replay",
    method: "POST",
    path: (ks) => `/v1/keyspaces/${ks}/dead-letters/1-0/replay`,
    need: "admin",
  },
  {
    name: "dead letter drop",
    method: "DELETE",
    path: (ks) => `/v1/keyspaces/${ks}/dead-letters/1-0`,
    need: "admin",
  },
];

const rank: Record<Need, number> = { read: 1, write: 2, admin: 3 };
/** What each token may do per keyspace. */
const grants: Record<keyof typeof env, Record<string, Need | undefined>> = {
  READER: { users: "read" },
  WRITER: { users: "write" },
  ADMIN: { users: "admin" },
  STAR: { users: "read", orders: "read" },
  OTHER: { orders: "write" },
};

function expectError(r: Reply, status: number, code: string): void {
  expect(r.status).toBe(status);
  expect(r.json()).toMatchObject({ error: { code } });
  for (const s of secrets) expect(r.text).not.toContain(s);
}

async function rows(ks: string): Promise<number> {
  const r = await db.query(`select count(*)::int as n from ${tag}_${ks}`);
  return r.rows[0].n;
}

describe("keyspace routes", () => {
  for (const route of routes) {
    for (const ks of ["users", "orders"]) {
      it(`${route.name} on ${ks}: no token, malformed and wrong tokens are 401`, async () => {
        const before = await rows(ks);
        for (const headers of [
          {},
          { authorization: WRONG },
          { authorization: `Basic ${Buffer.from(`x:${env.ADMIN}`).toString("base64")}` },
          { authorization: "Bearer" },
          { authorization: `Bearer ${WRONG}` },
          { authorization: `Bearer ${env.ADMIN}x` },
          { authorization: `Bearer ${env.ADMIN.slice(0, -1)}` },
        ] as Record<string, string>[]) {
          const r = await call(open.url, route.method, route.path(ks), route.body, headers);
          expectError(r, 401, "unauthorized");
          expect(r.headers["www-authenticate"]).toMatch(/^Bearer/);
        }
        expect(await rows(ks)).toBe(before);
      });

      for (const token of Object.keys(env) as (keyof typeof env)[]) {
        const have = grants[token][ks];
        const allowed = have !== undefined && rank[have] >= rank[route.need];
        it(`${route.name} on ${ks} with ${token.toLowerCase()}: ${allowed ? "allowed" : "403"}`, async () => {
          const before = await rows(ks);
          const r = await call(open.url, route.method, route.path(ks), route.body, {
            authorization: `Bearer ${env[token]}`,
          });
          if (allowed) {
            expect([401, 403]).not.toContain(r.status);
            expect(r.status).toBeLessThan(500);
          } else {
            expectError(r, 403, "forbidden");
            expect(r.json()).toMatchObject({
              error: { message: expect.stringContaining(token.toLowerCase()) },
            });
            expect(await rows(ks)).toBe(before);
          }
        });
      }
    }
  }

  it("a token is compared whole: case, spaces and a second token do not pass", async () => {
    for (const authorization of [
      `bearer ${env.WRITER}`, // the scheme is case-insensitive
      `Bearer   ${env.WRITER}  `,
    ]) {
      expect((await call(open.url, "GET", "/v1/kv/users/x", undefined, { authorization })).status).toBe(404);
    }
    for (const authorization of [`Bearer ${env.WRITER.toUpperCase()}`, `Bearer ${env.WRITER} ${env.ADMIN}`]) {
      expectError(
        await call(open.url, "GET", "/v1/kv/users/x", undefined, { authorization }),
        401,
        "unauthorized",
      );
    }
  });
});

describe("GET /v1/keyspaces needs admin", () => {
  for (const [token, status] of [
    [undefined, 401],
    [WRONG, 401],
    [env.READER, 403],
    [env.WRITER, 403],
    [env.STAR, 403],
    [env.OTHER, 403],
    [env.ADMIN, 200],
  ] as const) {
    it(`${token ? token.split("-")[0] : "no token"}: ${status}`, async () => {
      const r = await call(
        open.url,
        "GET",
        "/v1/keyspaces",
        undefined,
        token ? { authorization: `Bearer ${token}` } : {},
      );
      expect(r.status).toBe(status);
      if (status !== 200) expectError(r, status, status === 401 ? "unauthorized" : "forbidden");
      else
        expect(Object.keys((r.json() as { keyspaces: object }).keyspaces).sort()).toEqual([
          "orders",
          "users",
        ]);
    });
  }
});

describe("operations routes", () => {
  for (const path of ["/metrics", "/healthz", "/readyz"]) {
    it(`${path} is open by default`, async () => {
      expect((await call(open.url, "GET", path)).status).toBe(200);
    });
    it(`${path} with protect_ops: 401 without or with a wrong token, 200 with any token`, async () => {
      expectError(await call(guarded.url, "GET", path), 401, "unauthorized");
      expectError(
        await call(guarded.url, "GET", path, undefined, { authorization: `Bearer ${WRONG}` }),
        401,
        "unauthorized",
      );
      for (const t of Object.values(env)) {
        expect(
          (await call(guarded.url, "GET", path, undefined, { authorization: `Bearer ${t}` })).status,
        ).toBe(200);
      }
    });
  }
});

describe("secrets", () => {
  it("tokens appear in no log line, at any level", async () => {
    await call(open.url, "PUT", "/v1/kv/users/logged", { v: 1 }, { authorization: `Bearer ${env.WRITER}` });
    const all = logged.join("");
    expect(all).toContain('"msg":"request"');
    expect(all).toContain('"client":"writer"'); // the token's name is logged, never the token
    for (const s of secrets) expect(all).not.toContain(s);
  });

  it("listening beyond loopback without auth logs a warning at start-up", async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const config = parseConfig(
      `server: { host: 0.0.0.0, port: 0 }\n` +
        `cache: { url: "memory:" }\nstore: { url: ${PG_URL} }\nchecker: { enabled: false }\nkeyspaces: {}\n`,
      "wide.yaml",
    );
    const d = await Daemon.start(config, { log: pino({ level: "info" }, stream) });
    await d.stop();
    const warning = lines.map((l) => JSON.parse(l)).find((l) => l.level === 40);
    expect(warning?.msg).toMatch(/without auth/);
  });
});
