/**
 * The OpenAPI description against a real validator, JSON Schema, the client's generated types, the
 * daemon's error classes, and the live router both ways: every documented operation is served and answers
 * as described (the near cache's tiers, the status page behind auth included); every method and path the
 * description does not have answers 404 or 405.
 */
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import pg from "pg";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLIENT_OPERATIONS } from "../client/src/client.js";
import { CODE_STATUS } from "../client/src/errors.js";
import { renderClientSchema, SCHEMA_FILE } from "../scripts/client-schema.js";
import type { Daemon } from "../src/daemon.js";
import * as daemonErrors from "../src/errors.js";
import { ERROR_CODES, openapiDocument } from "../src/proxy/openapi.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";

type Json = Record<string, unknown>;
interface Operation {
  operationId: string;
  parameters?: { name: string; in: string; schema: Json }[];
  responses: Record<
    string,
    {
      headers?: Record<string, { required?: boolean; schema: Json }>;
      content?: Record<string, { schema: Json }>;
    }
  >;
}
type PathItem = Record<string, unknown> & { parameters?: Operation["parameters"] };

const METHODS = ["get", "head", "put", "post", "delete", "patch", "options"] as const;
const tag = uniqueTag();
const table = `${tag}_wb`;
const KEYSPACES = ["aside", "rt", "wb", "near"];
let daemon: Daemon;
let db: pg.Client;
let http: Pool;
/** the description with every $ref resolved */
let resolved: { paths: Record<string, PathItem> };
const ajv = new Ajv2020({
  strict: true,
  allErrors: true,
  allowUnionTypes: true,
  formats: { "date-time": true },
});

beforeAll(async () => {
  const validator = new Validator();
  await validator.validate(structuredClone(openapiDocument) as unknown as Json);
  resolved = validator.resolveRefs() as typeof resolved;
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${table} (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  daemon = await startDaemon(`
server: { max_value: 4kb }
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside, audit: { table: ${tag}_audit } }
  rt: { strategy: read-through, table: ${tag}_rt }
  near: { strategy: cache-aside, table: ${tag}_near, near_cache: { max_entries: 100, lease: 1s } }
  wb:
    strategy: write-behind
    table: ${table}
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 50ms, batch_size: 100, max_queue: 1000, max_attempts: 1 }
`);
  http = new Pool(daemon.url, { connections: 16 });
});

afterAll(async () => {
  await http?.close();
  await daemon?.stop();
  await db?.query(`drop table if exists ${table}, ${tag}_aside, ${tag}_rt, ${tag}_near, ${tag}_audit`);
  await db?.end();
  const { Redis } = await import("ioredis");
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function send(method: string, path: string, body?: string, headers: Json = {}): Promise<Reply> {
  const h: Record<string, string> = { ...(headers as Record<string, string>) };
  if (body !== undefined && !h["content-type"]) h["content-type"] = "application/json";
  const res = await http.request({ method: method as "GET", path, body, headers: h });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

function operations(): { path: string; method: string; op: Operation }[] {
  const out: { path: string; method: string; op: Operation }[] = [];
  for (const [path, item] of Object.entries(resolved.paths)) {
    for (const method of METHODS) {
      const op = item[method] as Operation | undefined;
      if (op) out.push({ path, method, op });
    }
  }
  return out;
}

const validators = new Map<object, ValidateFunction>();
function validatorFor(schema: Json): ValidateFunction {
  let v = validators.get(schema);
  if (!v) validators.set(schema, (v = ajv.compile(schema)));
  return v;
}

/** Checks an answer against what the description says of this operation and status. */
function expectDescribed(op: Operation, method: string, reply: Reply): void {
  const where = `${op.operationId} ${reply.status} ${reply.text.slice(0, 200)}`;
  const response = op.responses[String(reply.status)];
  expect(response, `${where}: status not described`).toBeDefined();
  for (const [name, h] of Object.entries(response!.headers ?? {})) {
    const value = reply.headers[name.toLowerCase()];
    if (h.required) expect(value, `${where}: header ${name}`).toBeDefined();
    if (value === undefined) continue;
    const ok = validatorFor(h.schema)(/^\d+$/.test(String(value)) ? Number(value) : value);
    expect(ok, `${where}: header ${name}: ${String(value)}`).toBe(true);
  }
  const content = response!.content;
  if (!content || method === "head") {
    if (!content) expect(reply.text, where).toBe("");
    return;
  }
  const type = String(reply.headers["content-type"]).split(";")[0]!;
  const media = content[type];
  expect(media, `${where}: content type ${type}`).toBeDefined();
  if (type !== "application/json") return;
  const validate = validatorFor(media!.schema);
  const ok = validate(JSON.parse(reply.text));
  expect(ok, `${where}: ${JSON.stringify(validate.errors)}`).toBe(true);
}

function opById(id: string): { path: string; method: string; op: Operation } {
  const found = operations().find((o) => o.op.operationId === id);
  if (!found) throw new Error(`no operation ${id}`);
  return found;
}

describe("the description", () => {
  it("is served at GET /openapi.json (and HEAD); other methods answer 405", async () => {
    const r = await send("GET", "/openapi.json");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(r.text)).toEqual(JSON.parse(JSON.stringify(openapiDocument)));
    const head = await send("HEAD", "/openapi.json");
    expect(head.status).toBe(200);
    expect(Number(head.headers["content-length"])).toBe(Buffer.byteLength(r.text));
    const post = await send("POST", "/openapi.json", "{}");
    expect(post.status).toBe(405);
    expect(JSON.parse(post.text).error.code).toBe("method_not_allowed");
  });

  it("is valid OpenAPI 3.1 for a real validator, which refuses a broken copy", async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(openapiDocument) as unknown as Json);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    const broken = structuredClone(openapiDocument) as unknown as { paths: Record<string, Json> };
    (broken.paths["/healthz"]!.get as Json).responses = { "2xx-ish": {} };
    expect((await new Validator().validate(broken as unknown as Json)).valid).toBe(false);
  });

  it("has schemas that compile as strict JSON Schema 2020-12", () => {
    for (const [name, schema] of Object.entries(
      (resolved as unknown as { components: { schemas: Record<string, Json> } }).components.schemas,
    )) {
      expect(() => ajv.compile(schema), name).not.toThrow();
    }
  });

  it("is where the client's types come from: client/src/schema.ts is current", async () => {
    // Regenerate with `npm run generate:client` when this fails.
    expect(readFileSync(SCHEMA_FILE, "utf8")).toBe(await renderClientSchema());
  });

  it("has a client call for every operation on values and keyspaces", () => {
    // not the probes, metrics, this document or the status page: those are for other tools and browsers
    const ids = operations()
      .filter(({ op }) => {
        const tags = (op as Operation & { tags: string[] }).tags;
        return !tags.includes("ops") && !tags.includes("ui");
      })
      .map(({ op }) => op.operationId);
    expect([...CLIENT_OPERATIONS].sort()).toEqual(ids.sort());
  });

  it("lists every error code the daemon's errors carry, and the client's table agrees", () => {
    const documented = new Map<string, number>();
    for (const [status, codes] of Object.entries(ERROR_CODES))
      for (const c of codes) documented.set(c, Number(status));
    expect(Object.fromEntries(documented)).toEqual(CODE_STATUS);
    type AnyError = new (...args: unknown[]) => daemonErrors.SidecacheError;
    const classes = (Object.values(daemonErrors) as unknown[]).filter(
      (c): c is AnyError =>
        typeof c === "function" &&
        c.prototype instanceof daemonErrors.SidecacheError &&
        // errors a client is never answered with (the daemon retries)
        !(c as { internal?: boolean }).internal,
    );
    expect(classes.length).toBeGreaterThanOrEqual(15);
    for (const C of classes) {
      // every constructor takes a message or a name first; MethodNotAllowedError takes the Allow list second
      const err = new C("x", ["GET"]);
      expect(documented.get(err.code), `${C.name}: ${err.code}`).toBe(err.status);
    }
  });
});

describe("the live router against the description", () => {
  it("serves every documented operation as described", async () => {
    // Two dead letters to list, replay and drop.
    for (const [key, qty] of [
      ["neg1", -1],
      ["neg2", -2],
    ] as const) {
      expect((await send("PUT", `/v1/kv/wb/${key}`, JSON.stringify({ id: key, qty }))).status).toBe(202);
    }
    expect((await send("POST", "/v1/keyspaces/wb/flush")).status).toBe(200);
    const letters = JSON.parse((await send("GET", "/v1/keyspaces/wb/dead-letters")).text).dead_letters as {
      id: string;
    }[];
    expect(letters).toHaveLength(2);

    const probes: [string, string, string?][] = [
      ["putValue", "/v1/kv/aside/k", JSON.stringify({ a: [1, "two", null] })],
      ["getValue", "/v1/kv/aside/k"],
      ["mset", "/v1/kv/aside/_mset", JSON.stringify({ items: { m1: 1, m2: { b: true } } })],
      ["mget", "/v1/kv/aside/_mget", JSON.stringify({ keys: ["m1", "m2", "absent"] })],
      ["deleteValue", "/v1/kv/aside/k"],
      ["listKeyspaces", "/v1/keyspaces"],
      ["listAudit", "/v1/keyspaces/aside/audit?limit=2"],
      ["flush", "/v1/keyspaces/wb/flush"],
      ["check", "/v1/keyspaces/aside/check", JSON.stringify({ sample: 10 })],
      ["listDeadLetters", "/v1/keyspaces/wb/dead-letters?count=10"],
      ["warm", "/v1/keyspaces/aside/warm", JSON.stringify({ from: "hot", limit: 10 })],
      ["warmProgress", "/v1/keyspaces/aside/warm"],
      ["uiStatus", "/ui/status"],
      ["uiStatusHead", "/ui/status"],
      ["statusPage", "/ui"],
      ["statusPageHead", "/ui"],
      ["replayDeadLetter", `/v1/keyspaces/wb/dead-letters/${letters[0]!.id}/replay`],
      ["dropDeadLetter", `/v1/keyspaces/wb/dead-letters/${letters[1]!.id}`],
      ["healthz", "/healthz"],
      ["healthzHead", "/healthz"],
      ["readyz", "/readyz"],
      ["readyzHead", "/readyz"],
      ["metrics", "/metrics"],
      ["metricsHead", "/metrics"],
      ["openapi", "/openapi.json"],
      ["openapiHead", "/openapi.json"],
    ];
    const all = operations().map((o) => o.op.operationId);
    expect(probes.map((p) => p[0]).sort()).toEqual([...all].sort());
    for (const [id, path, body] of probes) {
      const { method, op } = opById(id);
      const reply = await send(method.toUpperCase(), path, body);
      expect(reply.status, `${id}: ${reply.text}`).toBeLessThan(300);
      expectDescribed(op, method, reply);
    }
  });

  it("answers error statuses the description lists for the operation, in its shape", async () => {
    const cases: [string, string, string?, Json?][] = [
      ["getValue", "/v1/kv/aside/..", undefined],
      ["getValue", "/v1/kv/aside/absent"],
      ["getValue", "/v1/kv/nope/k"],
      ["putValue", "/v1/kv/aside/k", "{not json"],
      ["putValue", "/v1/kv/rt/k", "1"],
      ["putValue", "/v1/kv/aside/k", "1", { "if-match": '"1"' }],
      ["putValue", "/v1/kv/aside/k", "1", { "if-match": "*" }],
      ["putValue", "/v1/kv/aside/k", JSON.stringify("x".repeat(5000))],
      ["putValue", "/v1/kv/aside/k", "1", { "content-type": "text/plain" }],
      ["deleteValue", "/v1/kv/rt/k"],
      ["deleteValue", "/v1/kv/aside/k", undefined, { "if-match": '"1"' }],
      ["mget", "/v1/kv/aside/_mget", JSON.stringify({ keys: "k" })],
      ["mset", "/v1/kv/aside/_mset", JSON.stringify({ items: {} })],
      ["mset", "/v1/kv/rt/_mset", JSON.stringify({ items: { a: 1 } })],
      ["flush", "/v1/keyspaces/nope/flush"],
      ["check", "/v1/keyspaces/aside/check", JSON.stringify({ sample: -1 })],
      ["listDeadLetters", "/v1/keyspaces/aside/dead-letters"],
      ["listDeadLetters", "/v1/keyspaces/wb/dead-letters?count=0"],
      ["dropDeadLetter", "/v1/keyspaces/wb/dead-letters/1-0"],
      ["replayDeadLetter", "/v1/keyspaces/wb/dead-letters/bad/replay"],
      ["warm", "/v1/keyspaces/aside/warm", JSON.stringify({ from: "cold" })],
      ["warm", "/v1/keyspaces/aside/warm", JSON.stringify({ from: "query" })],
      ["warm", "/v1/keyspaces/aside/warm", "{}"],
      ["warm", "/v1/keyspaces/aside/warm", JSON.stringify({ limit: 0 })],
      ["warm", "/v1/keyspaces/aside/warm", "[]", { "content-type": "text/plain" }],
      ["warm", "/v1/keyspaces/aside/warm", JSON.stringify({ pad: "x".repeat(70_000) })],
      ["warm", "/v1/keyspaces/nope/warm", "{}"],
      ["warmProgress", "/v1/keyspaces/rt/warm"],
      ["warmProgress", "/v1/keyspaces/nope/warm"],
      ["listAudit", "/v1/keyspaces/rt/audit"],
      ["listAudit", "/v1/keyspaces/aside/audit?since=soon"],
      ["listAudit", "/v1/keyspaces/nope/audit"],
    ];
    const seen = new Set<number>();
    for (const [id, path, body, headers] of cases) {
      const { method, op } = opById(id);
      const reply = await send(method.toUpperCase(), path, body, headers);
      expect(reply.status, `${id} ${path}`).toBeGreaterThanOrEqual(400);
      seen.add(reply.status);
      expectDescribed(op, method, reply);
    }
    expect([...seen].sort()).toEqual([400, 404, 405, 412, 413, 415]);
  });

  it("answers 404 or 405 to every method and path the description does not have", async () => {
    const templates = Object.keys(resolved.paths);
    const documented = (method: string, template: string) => Boolean(resolved.paths[template]![method]);
    // Concrete paths match before templated ones (/_mget before /{key}), as OpenAPI has it.
    const regexes = templates
      .map((t) => ({
        t,
        re: new RegExp(`^${t.replace(/\{[^}]+\}/g, "([^/]+)").replace(/\./g, "\\.")}$`),
        names: [...t.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!),
      }))
      .sort((a, b) => a.names.length - b.names.length);
    const keyspaces = new Set(KEYSPACES);

    // Path segments the description and the routing code name: a route the description lacks uses some.
    const words = new Set<string>(["x", "1-0"]);
    for (const t of templates) for (const s of t.split("/")) if (s && !s.startsWith("{")) words.add(s);
    for (const file of [
      "router.ts",
      "kv-routes.ts",
      "admin-routes.ts",
      "warm-routes.ts",
      "audit-routes.ts",
      "ui-routes.ts",
      "openapi.ts",
    ]) {
      const src = readFileSync(`src/proxy/${file}`, "utf8");
      // literals a path or a segment is compared with, and path-like literals
      for (const m of src.matchAll(/(?:===|!==)\s*"([^"]*)"|"(\/[a-z][\w./-]*)"/g)) {
        for (const s of (m[1] ?? m[2]!).split("/")) if (s && !/^[A-Z]+$/.test(s)) words.add(s);
      }
    }
    const concrete = (t: string) =>
      t.replace("{keyspace}", "wb").replace("{key}", "k").replace("{id}", "1-0").split("/");
    const paths = new Set<string>(["/", "/v1", "/v1/kv", "/v1/kv/wb", "/v1/keyspaces/wb"]);
    for (const t of templates) {
      const segs = concrete(t);
      paths.add(segs.slice(0, -1).join("/") || "/");
      for (const w of words) {
        paths.add([...segs, w].join("/"));
        for (let i = 1; i < segs.length; i++) paths.add(segs.map((s, j) => (j === i ? w : s)).join("/"));
      }
    }
    for (const w of words) paths.add(`/${w}`);

    const matching = (path: string) => regexes.filter((r) => r.re.test(path));
    const probes: [string, string][] = [];
    for (const path of paths) {
      for (const method of METHODS) {
        if (matching(path).some((m) => documented(method, m.t))) continue;
        probes.push([method, path]);
      }
    }
    expect(probes.length).toBeGreaterThan(1000);
    const failures: string[] = [];
    const check = async ([method, path]: [string, string]) => {
      const reply = await send(method.toUpperCase(), path);
      const matches = matching(path);
      const match = matches[matches.length - 1];
      const code = method === "head" || reply.text === "" ? undefined : JSON.parse(reply.text).error?.code;
      let ok: boolean;
      if (match) {
        const values = Object.fromEntries(match.names.map((n, i) => [n, match.re.exec(path)![i + 1]!]));
        const item = resolved.paths[match.t]!;
        const badParam = (item.parameters ?? []).some(
          (p) =>
            p.in === "path" &&
            typeof p.schema.pattern === "string" &&
            !new RegExp(p.schema.pattern).test(values[p.name]!),
        );
        if (values.keyspace !== undefined && !keyspaces.has(values.keyspace)) {
          ok = reply.status === 404 && (code === undefined || code === "unknown_keyspace");
        } else if (badParam) {
          ok = reply.status === 400 || reply.status === 405;
        } else {
          const allow = String(reply.headers.allow ?? "").split(/,\s*/);
          ok =
            reply.status === 405 && allow.every((m) => matches.some((x) => documented(m.toLowerCase(), x.t)));
        }
      } else if (path.startsWith("/v1/kv/wb/") && path.split("/").length > 5) {
        // a key holding a slash that was not encoded
        ok = reply.status === 400 && (code === undefined || code === "invalid_key");
      } else {
        ok =
          reply.status === 404 && (code === undefined || code === "not_found" || code === "unknown_keyspace");
      }
      if (!ok)
        failures.push(`${method.toUpperCase()} ${path} -> ${reply.status} ${reply.text.slice(0, 120)}`);
    };
    for (let i = 0; i < probes.length; i += 64) await Promise.all(probes.slice(i, i + 64).map(check));
    expect(failures).toEqual([]);
  });
});

describe("the near cache as described", () => {
  it("GET answers X-Cache-Tier DB, then L1; Cache-Control: no-cache skips the near cache (L2)", async () => {
    const { method, op } = opById("getValue");
    const mget = opById("mget");
    expect((await send("PUT", "/v1/kv/near/n", JSON.stringify({ n: 1 }))).status).toBe(200);
    const first = await send("GET", "/v1/kv/near/n");
    expectDescribed(op, method, first);
    expect([first.headers["x-cache"], first.headers["x-cache-tier"]]).toEqual(["MISS", "DB"]);
    // the near cache serves once the daemon's lease on the invalidation channel runs
    const deadline = Date.now() + 10_000;
    let hit = await send("GET", "/v1/kv/near/n");
    while (hit.headers["x-cache-tier"] !== "L1" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      hit = await send("GET", "/v1/kv/near/n");
    }
    expectDescribed(op, method, hit);
    expect([hit.headers["x-cache"], hit.headers["x-cache-tier"], JSON.parse(hit.text)]).toEqual([
      "HIT",
      "L1",
      { n: 1 },
    ]);
    for (const cc of ["no-cache", "max-age=0, No-Cache"]) {
      const skipped = await send("GET", "/v1/kv/near/n", undefined, { "cache-control": cc });
      expectDescribed(op, method, skipped);
      expect([skipped.headers["x-cache"], skipped.headers["x-cache-tier"]]).toEqual(["HIT", "L2"]);
    }
    // other directives do not skip it
    const other = await send("GET", "/v1/kv/near/n", undefined, { "cache-control": "no-store" });
    expect(other.headers["x-cache-tier"]).toBe("L1");

    // _mget takes the header too; it answers X-Cache, not X-Cache-Tier
    const many = await send("POST", "/v1/kv/near/_mget", JSON.stringify({ keys: ["n"] }), {
      "cache-control": "no-cache",
    });
    expectDescribed(mget.op, mget.method, many);
    expect(many.headers["x-cache"]).toBe("HIT");
    expect(many.headers["x-cache-tier"]).toBeUndefined();
  });

  it("a 404 not_found carries X-Cache and X-Cache-Tier (ETag once a delete's version is known); unknown_keyspace does not", async () => {
    const { method, op } = opById("getValue");
    const absent = await send("GET", "/v1/kv/near/never");
    expectDescribed(op, method, absent);
    expect([absent.headers["x-cache"], absent.headers["x-cache-tier"], absent.headers.etag]).toEqual([
      "MISS",
      "DB",
      undefined,
    ]);
    expect((await send("PUT", "/v1/kv/near/gone", "1")).status).toBe(200);
    expect((await send("DELETE", "/v1/kv/near/gone")).status).toBe(204);
    const deleted = await send("GET", "/v1/kv/near/gone");
    expectDescribed(op, method, deleted);
    expect(deleted.headers["x-cache-tier"]).toBeDefined();
    const again = await send("GET", "/v1/kv/near/gone");
    expectDescribed(op, method, again);
    expect(again.status).toBe(404);
    expect(again.headers.etag).toMatch(/^"\d+"$/);
    const unknown = await send("GET", "/v1/kv/nope/k");
    expectDescribed(op, method, unknown);
    expect([unknown.headers["x-cache"], unknown.headers["x-cache-tier"]]).toEqual([undefined, undefined]);
  });
});

describe("the status page and its data behind auth, as described", () => {
  const authTag = uniqueTag();
  const ADMIN = `admin-${authTag}-0123456789`;
  const OPS = `ops-${authTag}-0123456789`;
  const READER = `reader-${authTag}-0123456789`;
  let secured: Daemon;
  let get: (path: string, headers?: Record<string, string>, method?: string) => Promise<Reply>;

  beforeAll(async () => {
    secured = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${authTag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
auth:
  protect_ops: true
  tokens:
    - { name: admin, token: "${ADMIN}", allow: { "*": admin } }
    - { name: ops, token: "${OPS}", allow: { aside: admin } }
    - { name: reader, token: "${READER}", allow: { aside: read } }
keyspaces:
  aside: { strategy: cache-aside, table: ${authTag}_aside }
  wb: { strategy: write-behind, table: ${authTag}_wb }
`);
    const pool = new Pool(secured.url);
    get = async (path, headers = {}, method = "GET") => {
      const res = await pool.request({ method: method as "GET", path, headers });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    };
    return async () => {
      await pool.close();
      await secured.stop();
      await db.query(`drop table if exists ${authTag}_aside, ${authTag}_wb`);
      const { Redis } = await import("ioredis");
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${authTag}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    };
  });

  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const basic = (t: string) => ({ authorization: `Basic ${Buffer.from(`anyone:${t}`).toString("base64")}` });

  it("/ui asks a browser for Basic auth, and takes the token as a bearer token or a Basic password", async () => {
    for (const method of ["get", "head"] as const) {
      const { op } = opById(method === "get" ? "statusPage" : "statusPageHead");
      const none = await get("/ui", {}, method.toUpperCase());
      expectDescribed(op, method, none);
      expect(none.status).toBe(401);
      expect(none.headers["www-authenticate"]).toBe('Basic realm="sidecache", charset="UTF-8"');
      const wrong = await get("/ui", basic("not-a-token"), method.toUpperCase());
      expect(wrong.status).toBe(401);
      expectDescribed(op, method, wrong);
      for (const h of [basic(READER), bearer(READER)]) {
        const page = await get("/ui", h, method.toUpperCase());
        expectDescribed(op, method, page);
        expect(page.status).toBe(200);
        expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
      }
    }
    // also at /ui/, as the description says
    const slash = await get("/ui/", bearer(READER));
    expect([slash.status, slash.headers["content-type"]]).toEqual([200, "text/html; charset=utf-8"]);
  });

  it("/ui/status needs admin on some keyspace, and lists dead letters only where the token is admin", async () => {
    const { method, op } = opById("uiStatus");
    const none = await get("/ui/status");
    expectDescribed(op, method, none);
    expect([none.status, none.headers["www-authenticate"]]).toEqual([401, 'Bearer realm="sidecache"']);
    const basicOnly = await get("/ui/status", basic(ADMIN));
    expect(basicOnly.status).toBe(401);
    const reader = await get("/ui/status", bearer(READER));
    expectDescribed(op, method, reader);
    expect(JSON.parse(reader.text).error.code).toBe("forbidden");

    type Snapshot = { keyspaces: { name: string; dead_letters?: unknown[] }[] };
    const seen = async (token: string) => {
      const r = await get("/ui/status", bearer(token));
      expectDescribed(op, method, r);
      expect(r.status).toBe(200);
      const wb = (JSON.parse(r.text) as Snapshot).keyspaces.find((k) => k.name === "wb")!;
      return wb.dead_letters;
    };
    expect(await seen(ADMIN)).toEqual([]);
    expect(await seen(OPS)).toBeUndefined();
    const head = await get("/ui/status", bearer(OPS), "HEAD");
    expectDescribed(opById("uiStatusHead").op, "head", head);
    expect([head.status, head.text]).toEqual([200, ""]);
  });

  it("warming needs admin on the keyspace", async () => {
    for (const id of ["warm", "warmProgress"]) {
      const { method, op } = opById(id);
      const r = await get("/v1/keyspaces/wb/warm", bearer(OPS), method.toUpperCase());
      expectDescribed(op, method, r);
      expect(JSON.parse(r.text).error.code).toBe("forbidden");
    }
  });
});
