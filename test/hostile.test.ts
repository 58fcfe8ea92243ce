/**
 * Hostile input: malformed HTTP on the raw socket, huge headers, slow and idle clients, too many
 * connections, invalid UTF-8, JSON bombs, injection-shaped keys and __proto__ payloads. Each gets an
 * answer in the contract's shape (or a closed socket for a client that never finishes), nothing is
 * written that should not be, nothing leaks, and the daemon keeps serving.
 */
import net from "node:net";
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
let port: number;

beforeAll(async () => {
  daemon = await startDaemon(`
server: { port: 0, max_value: 16kb, max_batch: 20, headers_timeout: 1s, request_timeout: 2s, max_connections: 20, request_deadline: 5s }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users }
  wt: { strategy: write-through, table: ${tag}_wt }
`);
  port = daemon.port;
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.query(`drop table if exists ${tag}_users, ${tag}_wt`);
  await db?.query(`delete from sidecache_tombstones where tbl like '${tag}%'`).catch(() => {});
  await db?.end();
  const keys = await redis.keys(`${tag}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
});

interface Raw {
  /** everything the server sent before it closed (or before the wait ran out) */
  text: string;
  closed: boolean;
  ms: number;
}

/** Sends bytes on a fresh socket (in pieces, with pauses, when asked) and reads until the server closes. */
function raw(chunks: (string | Buffer)[], o: { gapMs?: number; waitMs?: number } = {}): Promise<Raw> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), o.waitMs ?? 5000);
    socket.on("data", (d) => (text += d.toString("latin1")));
    socket.on("close", () => finish(true));
    socket.on("error", () => finish(true));
    socket.on("connect", async () => {
      for (const c of chunks) {
        if (socket.destroyed) return;
        socket.write(c);
        if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
      }
    });
  });
}

function parse(r: Raw): { status: number; body: { error?: { code: string; message: string } } } {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(r.text);
  const sep = r.text.indexOf("\r\n\r\n");
  expect(m, `no HTTP answer in ${JSON.stringify(r.text.slice(0, 200))}`).not.toBeNull();
  return { status: Number(m![1]), body: JSON.parse(r.text.slice(sep + 4)) };
}

/** What an error body may never show: stack frames, file paths, driver internals. */
function expectNoLeak(text: string): void {
  expect(text).not.toMatch(/\bat .+:\d+:\d+|node_modules|\/work\/|\.ts\b|\bErrno\b|SELECT|INSERT/i);
}

async function rowCount(t = "users"): Promise<number> {
  return (await db.query(`select count(*)::int as n from ${tag}_${t}`)).rows[0].n;
}

async function stillServes(): Promise<void> {
  expect((await call(daemon.url, "GET", "/healthz")).status).toBe(200);
}

describe("malformed HTTP on the raw socket", () => {
  const cases: [string, string | Buffer][] = [
    ["garbage request line", "GARBAGE\r\n\r\n"],
    ["binary junk", Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a])],
    ["unknown HTTP version", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"],
    ["header without colon", "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n"],
    ["non-numeric Content-Length", "PUT /v1/kv/users/a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n1"],
    [
      "Content-Length and Transfer-Encoding together (smuggling)",
      "PUT /v1/kv/users/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    ],
    [
      "two Content-Lengths",
      "PUT /v1/kv/users/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n12",
    ],
    [
      "bad chunk size",
      "PUT /v1/kv/users/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n1\r\n0\r\n\r\n",
    ],
    ["CR in a header value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rb\r\n\r\n"],
    ["space before the colon", "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n"],
  ];
  for (const [name, bytes] of cases) {
    it(`${name}: 400 invalid_request and the socket closes`, async () => {
      const before = await rowCount();
      const r = await raw([bytes]);
      expect(r.closed).toBe(true);
      const { status, body } = parse(r);
      expect(status).toBe(400);
      expect(body.error?.code).toBe("invalid_request");
      expectNoLeak(r.text);
      expect(await rowCount()).toBe(before);
      await stillServes();
    });
  }

  it("a request line over the header limit: 431 in the contract's shape", async () => {
    const r = await raw([`GET /v1/kv/users/${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`]);
    const { status, body } = parse(r);
    expect(status).toBe(431);
    expect(body.error?.code).toBe("invalid_request");
  });

  it("huge headers: one of 64 KiB, and thousands of small ones", async () => {
    let r = await raw([`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(64 * 1024)}\r\n\r\n`]);
    expect(parse(r).status).toBe(431);
    const many = Array.from({ length: 5000 }, (_, i) => `X-H${i}: v\r\n`).join("");
    r = await raw([`GET /healthz HTTP/1.1\r\nHost: x\r\n${many}\r\n`]);
    expect(parse(r).status).toBe(431);
    await stillServes();
  });

  it("pipelined requests with a bad one behind them: an answer, then a 400, then the socket closes", async () => {
    const r = await raw([
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
    ]);
    expect(r.closed).toBe(true);
    // Node reads the whole chunk at once: the parse error closes the connection after the first answer.
    expect(r.text.startsWith("HTTP/1.1 200")).toBe(true);
    expect(r.text).toContain("HTTP/1.1 400");
    expect(r.text).toContain('"code":"invalid_request"');
  });
});

describe("slow, idle and too many clients", () => {
  it("headers sent one byte at a time are cut off: 408 timeout and closed, others still served", async () => {
    const request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + "s".repeat(200) + "\r\n\r\n";
    const slow = raw(
      [...request].map((c) => c),
      { gapMs: 50, waitMs: 8000 },
    );
    await stillServes();
    const r = await slow;
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(4000);
    const { status, body } = parse(r);
    expect(status).toBe(408);
    expect(body.error?.code).toBe("timeout");
  });

  it("a body that trickles in is cut off at the request timeout and nothing is written", async () => {
    const r = await raw(
      [
        "PUT /v1/kv/users/trickle HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        ..."[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]",
      ],
      { gapMs: 200, waitMs: 10_000 },
    );
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(5000);
    expect((await db.query(`select 1 from ${tag}_users where key = 'trickle'`)).rowCount).toBe(0);
  });

  it("a client that stops reading its answers is closed after request_timeout, others still served", async () => {
    const value = JSON.stringify({ pad: "x".repeat(15_000) });
    expect((await call(daemon.url, "PUT", "/v1/kv/users/big", value)).status).toBe(200);
    // About 60 MB of answers asked for at once and not read: more than the kernel's buffers hold on both
    // sides, so the daemon is left holding answers it can not send.
    const asked = 4_000;
    const request = "GET /v1/kv/users/big HTTP/1.1\r\nHost: x\r\n\r\n";
    const socket = net.connect(port, "127.0.0.1");
    socket.pause();
    socket.on("error", () => {});
    let text = "";
    let closed = false;
    socket.on("close", () => (closed = true));
    socket.on("data", (d) => (text += d.toString("latin1")));
    socket.on("connect", () => socket.write(request.repeat(asked)));
    // the daemon goes on answering others meanwhile
    await new Promise((r) => setTimeout(r, 500));
    await stillServes();
    // past request_timeout (2 s) and the once-a-second look: the client reads again, and gets what the
    // kernel's buffers held, then the end
    await new Promise((r) => setTimeout(r, 4_500));
    socket.resume();
    const deadline = Date.now() + 10_000;
    while (!closed) {
      expect(Date.now(), "the daemon kept the connection").toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    const answered = (text.match(/HTTP\/1\.1 200/g) ?? []).length;
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(asked);
    await stillServes();
  });

  it("a client that reads its answers slowly is not cut off", async () => {
    const value = JSON.stringify({ pad: "y".repeat(15_000) });
    expect((await call(daemon.url, "PUT", "/v1/kv/users/big2", value)).status).toBe(200);
    const request = "GET /v1/kv/users/big2 HTTP/1.1\r\nHost: x\r\n\r\n";
    const wanted = 400;
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    let text = "";
    let closed = false;
    socket.on("close", () => (closed = true));
    socket.on("data", (d) => (text += d.toString("latin1")));
    socket.on("connect", () => socket.write(request.repeat(wanted)));
    // Read in sips for longer than request_timeout: the answers keep moving, so the connection stays.
    const t0 = Date.now();
    while (Date.now() - t0 < 4_500) {
      socket.pause();
      await new Promise((r) => setTimeout(r, 300));
      socket.resume();
      await new Promise((r) => setTimeout(r, 5));
    }
    socket.resume();
    const deadline = Date.now() + 10_000;
    while ((text.match(/HTTP\/1\.1 200/g) ?? []).length < wanted && !closed) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    socket.destroy();
    expect(closed).toBe(false);
    expect((text.match(/HTTP\/1\.1 200/g) ?? []).length).toBe(wanted);
  });

  it("a connection that sends nothing is closed", async () => {
    const r = await raw([], { waitMs: 6000 });
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(4000);
  });

  it("past max_connections a new connection is answered 503 overloaded, and served again once others close", async () => {
    const idle = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, "127.0.0.1", () => resolve(s));
            s.on("error", () => {});
          }),
      ),
    );
    try {
      const r = await call(daemon.url, "GET", "/healthz");
      expect(r.status).toBe(503);
      expect(r.json()).toMatchObject({ error: { code: "overloaded" } });
      expect(r.headers["retry-after"]).toBe("1");
    } finally {
      for (const s of idle) s.destroy();
    }
    const deadline = Date.now() + 5000;
    while ((await call(daemon.url, "GET", "/healthz")).status !== 200) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});

describe("invalid UTF-8", () => {
  it("in a key, a keyspace name, a body and a header: refused or ignored, never stored", async () => {
    const before = await rowCount();
    for (const path of [
      "/v1/kv/users/%C0%AF",
      "/v1/kv/users/%ED%A0%80",
      "/v1/kv/users/%F4%90%80%80",
      "/v1/kv/users/%E2%82",
    ]) {
      const r = await call(daemon.url, "PUT", path, "1");
      expect(r.status, path).toBe(400);
      expect(r.json()).toMatchObject({ error: { code: "invalid_key" } });
    }
    const ks = await call(daemon.url, "GET", "/v1/kv/%FF/a");
    expect(ks.status).toBe(400);
    for (const body of [
      Buffer.from([0x22, 0xc3, 0x28, 0x22]),
      Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d]),
    ]) {
      const r = await call(daemon.url, "PUT", "/v1/kv/users/utf", body);
      expect(r.status).toBe(400);
      expect(r.json()).toMatchObject({ error: { code: "invalid_json" } });
    }
    // Raw non-ASCII bytes in the request line and in a header.
    const r = await raw([
      Buffer.concat([
        Buffer.from("GET /v1/kv/users/"),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(" HTTP/1.1\r\nHost: x\r\nX-Request-Id: "),
        Buffer.from([0xc3, 0x28]),
        Buffer.from("\r\nConnection: close\r\n\r\n"),
      ]),
    ]);
    const { status } = parse(r);
    expect([400, 404]).toContain(status);
    expect(r.text).not.toMatch(/x-request-id: [^\r]*[\x80-\xff]/i);
    expect(await rowCount()).toBe(before);
  });

  it("JSON escapes of lone surrogates are refused in batch keys", async () => {
    const r = await call(daemon.url, "POST", "/v1/kv/users/_mset", '{"items": {"\\ud800": 1}}');
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: { code: "invalid_key" } });
  });
});

describe("JSON bombs", () => {
  it("deep nesting in a value, a batch and a check body is invalid_json, answered fast", async () => {
    const before = await rowCount();
    for (const [path, body] of [
      ["/v1/kv/users/deep", "[".repeat(7000) + "]".repeat(7000)],
      ["/v1/kv/users/deep", '{"a":'.repeat(2500) + "1" + "}".repeat(2500)],
      ["/v1/kv/users/_mset", `{"items": {"k": ${"[".repeat(5000)}${"]".repeat(5000)}}}`],
      ["/v1/kv/users/_mget", `{"keys": ${"[".repeat(5000)}${"]".repeat(5000)}}`],
    ] as const) {
      const t0 = Date.now();
      const r = await call(daemon.url, path.endsWith("deep") ? "PUT" : "POST", path, body);
      expect(r.status, path).toBe(400);
      expect(r.json()).toMatchObject({ error: { code: "invalid_json" } });
      expect(Date.now() - t0).toBeLessThan(1000);
    }
    expect(await rowCount()).toBe(before);
  });

  it("wide bombs: too many batch items, a body past the limit, a huge Content-Length", async () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `k${i}`);
    let r = await call(daemon.url, "POST", "/v1/kv/users/_mget", { keys });
    expect([400, 413]).toContain(r.status);
    const items = Object.fromEntries(keys.slice(0, 21).map((k) => [k, 1]));
    r = await call(daemon.url, "POST", "/v1/kv/users/_mset", { items });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: { code: "invalid_request" } });
    r = await call(daemon.url, "PUT", "/v1/kv/users/wide", JSON.stringify(Array(20_000).fill(0)));
    expect(r.status).toBe(413);
    const lie = await raw([
      "PUT /v1/kv/users/lie HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}",
    ]);
    expect(parse(lie).status).toBe(413);
    expect((await db.query(`select 1 from ${tag}_users where key in ('wide','lie')`)).rowCount).toBe(0);
  });

  it("a chunked body that grows past the limit: 413 once it passes it, the connection closed, nothing written", async () => {
    const head =
      "PUT /v1/kv/users/chunky HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    const piece = `["${"x".repeat(4000)}",`;
    const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`;
    // 5 pieces of 4 kB pass the 16 kB limit; the body never ends, the answer comes all the same
    const r = await raw([head, ...Array.from({ length: 5 }, () => chunk)], { gapMs: 20 });
    expect(r.closed).toBe(true);
    const answer = parse(r);
    expect(answer.status).toBe(413);
    expect(answer.body.error?.code).toBe("value_too_large");
    expect((await db.query(`select 1 from ${tag}_users where key = 'chunky'`)).rowCount).toBe(0);
    await stillServes();
  });

  it("numbers PostgreSQL can not hold and NUL characters are refused, not crashed on", async () => {
    for (const body of ["1e999999", "-1e999999", '"a\\u0000b"', '{"k\\u0000": 1}']) {
      const r = await call(daemon.url, "PUT", "/v1/kv/users/odd", body);
      expect(r.status, body).toBeGreaterThanOrEqual(400);
      expect(r.status, body).toBeLessThan(500);
      expectNoLeak(r.text);
    }
    expect((await db.query(`select 1 from ${tag}_users where key = 'odd'`)).rowCount).toBe(0);
    await stillServes();
  });
});

describe("injection-shaped keys and payloads", () => {
  const keys = [
    "'; DROP TABLE users; --",
    "$1",
    "1' OR '1'='1",
    "\\x00",
    "%00",
    "{users}",
    "*",
    "[a-z]?",
    "key\r\nSET injected 1\r\n",
    "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n",
    "../../../etc/passwd",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "__proto__",
    "constructor",
  ];

  it("each key round-trips exactly, lands as one row, and Redis holds no stray keys", async () => {
    for (const key of keys) {
      const put = await call(daemon.url, "PUT", `/v1/kv/wt/${seg(key)}`, { key });
      expect(put.status, key).toBe(200);
      const got = await call(daemon.url, "GET", `/v1/kv/wt/${seg(key)}`);
      expect(got.status, key).toBe(200);
      expect(got.json()).toEqual({ key });
      const row = await db.query(`select value from ${tag}_wt where key = $1`, [key]);
      expect(row.rows[0]?.value).toEqual({ key });
    }
    expect(await rowCount("wt")).toBe(keys.length);
    expect(await redis.exists("injected", "x")).toBe(0);
    const r = await call(daemon.url, "POST", "/v1/kv/wt/_mget", { keys });
    const values = (r.json() as { values: Record<string, unknown> }).values;
    for (const key of keys) expect(Object.getOwnPropertyDescriptor(values, key)?.value).toEqual({ key });
    // The tables are still there.
    expect((await db.query(`select to_regclass('${tag}_users') is not null as ok`)).rows[0].ok).toBe(true);
  });

  it("a NUL byte in a key is refused", async () => {
    const r = await call(daemon.url, "PUT", "/v1/kv/users/a%00b", "1");
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect((await db.query(`select 1 from ${tag}_users where key like 'a%'`)).rowCount).toBe(0);
  });

  it("__proto__ payloads are stored as data and pollute nothing", async () => {
    const payload = '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted2": true}}}';
    let r = await call(daemon.url, "PUT", "/v1/kv/users/proto", payload);
    expect(r.status).toBe(200);
    r = await call(daemon.url, "GET", "/v1/kv/users/proto");
    expect(JSON.parse(r.text)).toEqual(JSON.parse(payload));
    expect(Object.keys(JSON.parse(r.text))).toContain("__proto__");

    r = await call(
      daemon.url,
      "POST",
      "/v1/kv/users/_mset",
      '{"items": {"__proto__": {"polluted": true}, "toString": 1, "hasOwnProperty": 2}}',
    );
    expect(r.status).toBe(200);
    const versions = JSON.parse(r.text).versions;
    expect(Object.keys(versions).sort()).toEqual(["__proto__", "hasOwnProperty", "toString"]);
    r = await call(daemon.url, "POST", "/v1/kv/users/_mget", { keys: ["__proto__", "toString", "valueOf"] });
    expect(JSON.parse(r.text).values).toEqual(
      JSON.parse('{"__proto__": {"polluted": true}, "toString": 1, "valueOf": null}'),
    );

    // A second "keys" hidden in the prototype is not read.
    r = await call(daemon.url, "POST", "/v1/kv/users/_mget", '{"__proto__": {"keys": ["proto"]}}');
    expect(r.status).toBe(400);
    r = await call(daemon.url, "POST", "/v1/keyspaces/users/check", '{"__proto__": {"full": true}}');
    expect(r.status).toBe(400);

    // The daemon runs in this process: any pollution would show here.
    const probe = {} as Record<string, unknown>;
    expect(probe.polluted).toBeUndefined();
    expect(probe.polluted2).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted")).toBe(false);
  });

  it("long hostile names are not echoed back in full", async () => {
    const name = "<x>".repeat(1000);
    const r = await call(daemon.url, "GET", `/v1/kv/${seg(name)}/a`);
    expect(r.status).toBe(404);
    expect(r.text.length).toBeLessThan(600);
    const u = await call(daemon.url, "GET", `/${"z".repeat(5000)}`);
    expect(u.text.length).toBeLessThan(600);
  });
});

describe("afterwards", () => {
  it("the daemon is up, ready, and every answer carried a request id", async () => {
    const r = await call(daemon.url, "GET", "/readyz");
    expect(r.status).toBe(200);
    expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });
});
