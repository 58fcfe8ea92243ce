/**
 * Property tests (fast-check) against a daemon on real Redis and PostgreSQL:
 * - any legal key and any JSON value round-trips exactly through every strategy (semantic equality:
 *   jsonb does not keep the order of object keys);
 * - any byte string as a key, a path or a body gets an answer in the contract's shape, and the daemon
 *   stays up.
 * Two documented exclusions: PostgreSQL's text and jsonb can not hold U+0000, so keys and strings here
 * carry none (such writes are refused with 400, see test/hostile.test.ts).
 */
import net from "node:net";
import fc from "fast-check";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call, seg } from "./support/http.js";

const tag = uniqueTag();
let daemon: Daemon;
let db: pg.Client;
let redis: Redis;

const writable = [
  "cache-aside",
  "write-through-strict",
  "write-through-eventual",
  "write-around",
  "write-behind",
];

beforeAll(async () => {
  daemon = await startDaemon(`
server: { port: 0, max_value: 64kb }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  cache-aside: { strategy: cache-aside, table: ${tag}_ca }
  read-through: { strategy: read-through, table: ${tag}_rt }
  write-through-strict: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  write-through-eventual: { strategy: write-through, consistency: eventual, table: ${tag}_wte }
  write-around: { strategy: write-around, table: ${tag}_wa }
  write-behind: { strategy: write-behind, table: ${tag}_wb, write_behind: { flush_interval: 50ms } }
`);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await daemon?.stop();
  for (const t of ["ca", "rt", "wts", "wte", "wa", "wb"]) await db?.query(`drop table if exists ${tag}_${t}`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

const noNul = (s: string) => !s.includes("\u0000");

/** 1 to 512 bytes of UTF-8, not "." or "..", no U+0000. */
const legalKey = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 120 })
  .filter((k) => k !== "." && k !== ".." && noNul(k) && Buffer.byteLength(k) <= 512);

/** Any JSON value whose strings are valid Unicode without U+0000. */
const jsonValue = fc
  .jsonValue({ maxDepth: 4, stringUnit: "grapheme" })
  .filter((v) => noNul(JSON.stringify(v)))
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown); // -0 is 0 in JSON

describe("round trips", () => {
  for (const ks of writable) {
    it(`${ks}: PUT, then GET (miss and hit) and _mget return the value exactly`, async () => {
      await fc.assert(
        fc.asyncProperty(legalKey, jsonValue, async (key, value) => {
          const put = await call(daemon.url, "PUT", `/v1/kv/${ks}/${seg(key)}`, JSON.stringify(value));
          expect([200, 202]).toContain(put.status);
          const { version } = put.json() as { version: number };
          for (let i = 0; i < 2; i++) {
            const got = await call(daemon.url, "GET", `/v1/kv/${ks}/${seg(key)}`);
            expect(got.status).toBe(200);
            expect(got.json()).toEqual(value);
            expect(got.headers.etag).toBe(`"${version}"`);
          }
          const many = await call(daemon.url, "POST", `/v1/kv/${ks}/_mget`, { keys: [key] });
          const values = (many.json() as { values: Record<string, unknown> }).values;
          expect(Object.getOwnPropertyDescriptor(values, key)?.value).toEqual(value);
        }),
        { numRuns: 40 },
      );
    });
  }

  it("write-behind: once flushed, PostgreSQL holds every value exactly", async () => {
    await call(daemon.url, "POST", "/v1/keyspaces/write-behind/flush");
    const r = await db.query(`select key, value from ${tag}_wb`);
    expect(r.rowCount).toBeGreaterThan(0);
    for (const row of r.rows as { key: string; value: unknown }[]) {
      const got = await call(daemon.url, "GET", `/v1/kv/write-behind/${seg(row.key)}`);
      expect(got.json()).toEqual(row.value);
    }
  });

  it("read-through: a row written in PostgreSQL is read back exactly", async () => {
    await fc.assert(
      fc.asyncProperty(legalKey, jsonValue, async (key, value) => {
        await db.query(
          `insert into ${tag}_rt (key, value, version, updated_at) values ($1, $2::jsonb, 1, now())
           on conflict (key) do nothing`,
          [key, JSON.stringify(value)],
        );
        const row = await db.query(`select value from ${tag}_rt where key = $1`, [key]);
        for (let i = 0; i < 2; i++) {
          const got = await call(daemon.url, "GET", `/v1/kv/read-through/${seg(key)}`);
          expect(got.status).toBe(200);
          expect(got.json()).toEqual(row.rows[0].value);
        }
      }),
      { numRuns: 40 },
    );
  });
});

const CODES = new Map<number, string[]>([
  [400, ["invalid_key", "invalid_json", "invalid_request"]],
  [401, ["unauthorized"]],
  [404, ["not_found", "unknown_keyspace"]],
  [405, ["method_not_allowed"]],
  [412, ["version_mismatch"]],
  [413, ["value_too_large"]],
  [415, ["unsupported_media_type"]],
  [431, ["invalid_request"]],
]);

function expectContractShape(status: number, contentType: unknown, text: string): void {
  if (status === 204) return expect(text).toBe("");
  expect(contentType).toBe("application/json");
  const body = JSON.parse(text) as { error?: { code: string; message: string } };
  if (status < 300) return;
  expect(CODES.get(status), `status ${status}: ${text}`).toBeDefined();
  expect(CODES.get(status)).toContain(body.error?.code);
  expect(body.error?.message.length).toBeGreaterThan(5);
}

const anyBytes = fc.uint8Array({ minLength: 0, maxLength: 300 });
const percentEncoded = (b: Uint8Array) => [...b].map((x) => `%${x.toString(16).padStart(2, "0")}`).join("");

describe("any bytes get an answer in the contract's shape", () => {
  it("as a percent-encoded key, with any body, on any method and keyspace", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyBytes,
        anyBytes,
        fc.constantFrom("GET", "PUT", "DELETE", "POST", "PATCH"),
        fc.constantFrom(...writable, "read-through", "nope"),
        async (keyBytes, body, method, ks) => {
          const r = await call(
            daemon.url,
            method,
            `/v1/kv/${ks}/${percentEncoded(keyBytes)}`,
            method === "GET" || method === "DELETE" ? undefined : Buffer.from(body),
          );
          expectContractShape(r.status, r.headers["content-type"], r.text);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("as a batch body", async () => {
    await fc.assert(
      fc.asyncProperty(anyBytes, fc.constantFrom("_mget", "_mset"), async (body, op) => {
        const r = await call(daemon.url, "POST", `/v1/kv/cache-aside/${op}`, Buffer.from(body));
        expectContractShape(r.status, r.headers["content-type"], r.text);
      }),
      { numRuns: 200 },
    );
  });

  it("as raw bytes in the request path, on the socket", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 100 }), async (bytes) => {
        const text = await rawRequest(
          Buffer.concat([
            Buffer.from("GET /v1/kv/cache-aside/"),
            bytes,
            Buffer.from(" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
          ]),
        );
        const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
        expect(m, JSON.stringify(text.slice(0, 100))).not.toBeNull();
        const contentType = /content-type: ([^\r]+)/i.exec(m![2]!)?.[1];
        expectContractShape(Number(m![1]), contentType, m![3]!);
      }),
      { numRuns: 200 },
    );
    expect((await call(daemon.url, "GET", "/healthz")).status).toBe(200);
  });
});

function rawRequest(bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(daemon.port, "127.0.0.1", () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
    socket.on("error", reject);
    socket.setTimeout(5000, () => reject(new Error("no answer")));
  });
}
