/**
 * TLS on the listener (server.tls cert and key files) with bearer tokens over it, and the access log:
 * one JSON line per request with request id, keyspace, op, status and duration, never values, keys or
 * tokens at info level.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { PG_URL, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { selfSignedCert } from "./support/tls.js";

const tag = uniqueTag();
const dir = mkdtempSync(join(tmpdir(), "sidecache-tls-"));
const TOKEN = `tls-token-${tag}-0123456789`;
const lines: Record<string, unknown>[] = [];
let daemon: Daemon;
let ca: Buffer;

function httpsCall(
  path: string,
  o: { method?: string; body?: string; headers?: Record<string, string>; ca?: Buffer } = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: daemon.port,
        path,
        method: o.method ?? "GET",
        headers: { "content-type": "application/json", ...o.headers },
        ca: o.ca,
        servername: "localhost",
        agent: false,
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

beforeAll(async () => {
  ca = (await selfSignedCert(dir)).cert;
  const yaml = `
server: { port: 0, tls: { cert: ${join(dir, "cert.pem")}, key: ${join(dir, "key.pem")} } }
cache: { url: "memory:" }
store: { url: ${PG_URL} }
checker: { enabled: false }
log: { level: info, access: true }
auth:
  tokens:
    - { name: app, token: "\${TLS_TOKEN}", allow: { "*": write } }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users }
`;
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  const config = parseConfig(yaml, "tls.yaml", { TLS_TOKEN: TOKEN });
  daemon = await Daemon.start(config, { log: pino({ level: config.log.level }, sink) });
});

afterAll(async () => {
  await daemon?.stop();
  const pg = await import("pg");
  const db = new pg.default.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(`drop table if exists ${tag}_users`);
  await db.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db.end();
  rmSync(dir, { recursive: true, force: true });
});

describe("TLS", () => {
  it("serves HTTPS with the configured certificate; tokens work over it", async () => {
    expect(daemon.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const put = await httpsCall("/v1/kv/users/secret-key", {
      method: "PUT",
      body: '{"secret":"value-42"}',
      headers: auth,
      ca,
    });
    expect(put.status).toBe(200);
    const get = await httpsCall("/v1/kv/users/secret-key", { headers: auth, ca });
    expect(get.status).toBe(200);
    expect(JSON.parse(get.text)).toEqual({ secret: "value-42" });
    expect((await httpsCall("/v1/kv/users/secret-key", { ca })).status).toBe(401);
  });

  it("refuses clients that do not trust the certificate, and plain HTTP", async () => {
    await expect(httpsCall("/healthz")).rejects.toThrow(/self[- ]signed|certificate/i);
    await expect(call(`http://127.0.0.1:${daemon.port}`, "GET", "/healthz")).rejects.toThrow();
  });

  it("a missing certificate file stops start-up with a message naming it", async () => {
    const config = parseConfig(
      `server: { port: 0, tls: { cert: ${dir}/nope.pem, key: ${dir}/key.pem } }\ncache: { url: "memory:" }\nstore: { url: ${PG_URL} }\nchecker: { enabled: false }\nkeyspaces: {}\n`,
      "bad-tls.yaml",
    );
    await expect(Daemon.start(config, { log: pino({ level: "silent" }) })).rejects.toThrow(
      /nope\.pem.*ENOENT/,
    );
  });
});

describe("access log", () => {
  it("one line per request: request id, method, keyspace, op, client, status, duration; no values, keys or tokens", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const given = "trace-abc.123";
    await httpsCall("/v1/kv/users/secret-key", { headers: { ...auth, "x-request-id": given }, ca });
    await httpsCall("/v1/kv/users/_mset", {
      method: "POST",
      body: '{"items":{"other-secret-key":{"secret":"value-43"}}}',
      headers: auth,
      ca,
    });
    const access = lines.filter((l) => l.msg === "request");
    const get = access.find((l) => l.reqId === given);
    expect(get).toMatchObject({
      level: 30,
      method: "GET",
      keyspace: "users",
      op: "get",
      client: "app",
      status: 200,
    });
    expect(typeof get!.ms).toBe("number");
    const mset = access.find((l) => l.op === "mset");
    expect(mset).toMatchObject({ status: 200, keyspace: "users" });
    expect(String(mset!.reqId)).toMatch(/^[0-9a-f-]{36}$/);
    const all = JSON.stringify(lines);
    for (const s of ["secret-key", "value-42", "value-43", TOKEN]) expect(all).not.toContain(s);
  });

  it("echoes a tame X-Request-Id and replaces any other", async () => {
    let r = await httpsCall("/healthz", { headers: { "x-request-id": "abc-123" }, ca });
    expect(r.headers["x-request-id"]).toBe("abc-123");
    r = await httpsCall("/healthz", { headers: { "x-request-id": "x".repeat(500) }, ca });
    expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    r = await httpsCall("/healthz", { headers: { "x-request-id": "a b<script>" }, ca });
    expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });
});
