/**
 * The Redis protocol front end against a real daemon, Redis and PostgreSQL: every command over ioredis
 * (RESP2) and a raw socket (RESP2 and RESP3), on every strategy; the value rule (text byte for byte, JSON
 * objects and arrays as JSON); each error a client can cause; the protocol label on the request metrics.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call, seg } from "./support/http.js";
import { cleanupShared, plain, RawResp, RespErrorReply } from "./support/resp.js";

const tag = uniqueTag();
const WRITABLE = ["aside", "wts", "wte", "around", "wb"] as const;
const tables = [...WRITABLE, "rt"].map((k) => `${tag}_${k}`);
let daemon: Daemon;
let redis: Redis;
let db: pg.Client;

beforeAll(async () => {
  daemon = await startDaemon(`
server: { max_value: 8kb, max_batch: 50, resp: { port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  rt: { strategy: read-through, table: ${tag}_rt }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte }
  around: { strategy: write-around, table: ${tag}_around }
  wb: { strategy: write-behind, table: ${tag}_wb, write_behind: { flush_interval: 100ms } }
`);
  redis = new Redis({
    port: daemon.respPort!,
    host: "127.0.0.1",
    maxRetriesPerRequest: 0,
    lazyConnect: true,
  });
  await redis.connect(); // resolves once ready: after AUTH, CLIENT SETINFO and the INFO ready check
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  redis?.disconnect();
  await daemon?.stop();
  await db?.end();
  await cleanupShared(tag, tables);
});

/** The error an ioredis call failed with, as its message ("QUEUE_FULL ..."). */
async function failure(p: Promise<unknown>): Promise<string> {
  return p.then(
    (v) => `no error: ${JSON.stringify(v)}`,
    (e: Error) => e.message,
  );
}

async function row(ks: string, key: string): Promise<{ value: unknown; version: string } | undefined> {
  const r = await db.query(`select value, version from ${tag}_${ks} where key = $1`, [key]);
  return r.rows[0] as { value: unknown; version: string } | undefined;
}

describe("connecting and the connection's commands", () => {
  it("ioredis connects (INFO ready check, CLIENT SETINFO) and PINGs", async () => {
    expect(redis.status).toBe("ready");
    expect(await redis.ping()).toBe("PONG");
    expect(await redis.ping("hi")).toBe("hi");
    expect(await redis.echo("é\r\nx")).toBe("é\r\nx");
  });

  it("HELLO 3 switches to RESP3 (maps, _ for null), HELLO 2 back; other versions NOPROTO", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      expect(plain(await c.one("GET", "aside:none"))).toBe(null);
      expect(c.rest.length).toBe(0);
      c.command("HELLO", "3");
      const [hello] = await c.read();
      expect(hello).toHaveProperty("map");
      expect(plain(hello!)).toMatchObject({ server: "redis", proto: 3, mode: "standalone", role: "master" });
      c.send("*2\r\n$3\r\nGET\r\n$10\r\naside:none\r\n");
      await c.read(1);
      // RESP3's null is "_"
      c.command("CLIENT", "GETNAME");
      const raw = await waitRaw(c);
      expect(raw).toBe("_\r\n");
      // answered in the protocol it switches to: RESP2 has no maps, a flat array instead
      expect(plain(await c.one("HELLO", "2"))).toEqual(expect.arrayContaining(["proto", 2, "mode"]));
      c.command("CLIENT", "GETNAME");
      expect(await waitRaw(c)).toBe("$-1\r\n");
      const bad = await c.one("HELLO", "4");
      expect(bad).toBeInstanceOf(RespErrorReply);
      expect((bad as RespErrorReply).code).toBe("NOPROTO");
      expect(plain(await c.one("HELLO", "3", "SETNAME", "app-1"))).toMatchObject({ proto: 3 });
      expect(plain(await c.one("CLIENT", "GETNAME"))).toBe("app-1");
    } finally {
      c.end();
    }
  });

  it("CLIENT SETNAME, GETNAME, ID, SETINFO, INFO; SELECT 0 only; QUIT answers then closes", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    expect(plain(await c.one("CLIENT", "SETNAME", "worker-7"))).toBe("OK");
    expect(plain(await c.one("CLIENT", "GETNAME"))).toBe("worker-7");
    const id = await c.one("CLIENT", "ID");
    expect(typeof id).toBe("number");
    expect(plain(await c.one("CLIENT", "SETINFO", "LIB-NAME", "mylib"))).toBe("OK");
    expect(plain(await c.one("CLIENT", "SETINFO", "lib-ver", "1.2.3"))).toBe("OK");
    const info = String(plain(await c.one("CLIENT", "INFO")));
    expect(info).toContain(`id=${id as number}`);
    expect(info).toContain("name=worker-7");
    expect(info).toContain("lib-name=mylib lib-ver=1.2.3");
    expect(await c.one("CLIENT", "SETNAME", "has space")).toBeInstanceOf(RespErrorReply);
    expect((await c.one("CLIENT", "NOPE")) as RespErrorReply).toMatchObject({
      message: expect.stringMatching(/^ERR unknown subcommand/),
    });
    expect(plain(await c.one("SELECT", "0"))).toBe("OK");
    expect(((await c.one("SELECT", "1")) as RespErrorReply).message).toBe("ERR DB index is out of range");
    c.command("QUIT");
    c.command("PING");
    expect(plain((await c.read(1))[0]!)).toBe("OK");
    await c.ended;
    expect(c.rest.length).toBe(0); // the PING after QUIT is not answered
  });

  it("COMMAND COUNT, LIST, INFO, DOCS and INFO (loading:0) answer what clients probe", async () => {
    const count = (await redis.call("COMMAND", "COUNT")) as number;
    expect(count).toBe(16);
    const list = (await redis.call("COMMAND", "LIST")) as string[];
    expect(list).toEqual(expect.arrayContaining(["get", "set", "del", "unlink", "exists", "mget", "mset"]));
    const infos = (await redis.call("COMMAND", "INFO", "get", "mset", "hgetall")) as unknown[];
    expect(infos[0]).toEqual(["get", 2, ["readonly", "fast"], 1, 1, 1, ["@string"], [], [], []]);
    expect((infos[1] as unknown[]).slice(0, 6)).toEqual(["mset", -3, ["write", "denyoom"], 1, -1, 2]);
    expect(infos[2]).toBeNull();
    expect(((await redis.call("COMMAND")) as unknown[]).length).toBe(count);
    const docs = (await redis.call("COMMAND", "DOCS", "set")) as unknown[];
    expect(docs[0]).toBe("set");
    expect(docs[1]).toEqual(expect.arrayContaining(["summary", "since", "group", "string"]));
    const info = await redis.info();
    expect(info).toMatch(/^# Server\r\nredis_version:7\.2\.0\r\n/);
    expect(info).toContain("loading:0\r\n");
    expect(info).toContain("role:master\r\n");
    expect(info).toContain(`tcp_port:${daemon.respPort}\r\n`);
    const server = await redis.info("server");
    expect(server).toContain("redis_mode:standalone");
    expect(server).not.toContain("loading:");
  });

  it("anything else is -ERR unknown command; a wrong argument count is -ERR wrong number of arguments", async () => {
    expect(await failure(redis.call("HGETALL", "aside:x"))).toBe(
      "ERR unknown command 'HGETALL', with args beginning with: 'aside:x'",
    );
    expect(await failure(redis.call("FLUSHALL"))).toMatch(/^ERR unknown command 'FLUSHALL'/);
    expect(await failure(redis.call("GET"))).toBe("ERR wrong number of arguments for 'get' command");
    expect(await failure(redis.call("GET", "a:b", "c"))).toBe(
      "ERR wrong number of arguments for 'get' command",
    );
    expect(await failure(redis.call("MSET", "aside:a", "1", "aside:b"))).toMatch(/wrong number of arguments/);
    expect(await failure(redis.call("AUTH", "sometoken"))).toMatch(/^ERR AUTH <password> called without/);
    expect(await redis.ping()).toBe("PONG");
  });
});

describe("GET, SET, DEL, UNLINK, EXISTS, MGET, MSET on every strategy that writes", () => {
  for (const ks of WRITABLE) {
    it(`${ks}: each command does what Redis does, and PostgreSQL holds the result`, async () => {
      const k = (n: string) => `${ks}:${n}`;
      expect(await redis.get(k("a"))).toBeNull();
      expect(await redis.set(k("a"), "one")).toBe("OK");
      expect(await redis.get(k("a"))).toBe("one");
      expect(await redis.set(k("a"), "two", "NX")).toBeNull();
      expect(await redis.set(k("b"), "bee", "NX")).toBe("OK");
      expect(await redis.set(k("c"), "x", "XX")).toBeNull();
      expect(await redis.exists(k("c"))).toBe(0);
      expect(await redis.set(k("a"), "three", "XX")).toBe("OK");
      expect(await redis.set(k("a"), "four", "GET")).toBe("three");
      expect(await redis.set(k("d"), "dee", "GET")).toBeNull();
      expect(await redis.set(k("d"), "again", "NX", "GET")).toBe("dee");
      expect(await redis.get(k("d"))).toBe("dee");
      expect(await redis.call("SET", k("a"), "five", "XX", "GET", "KEEPTTL")).toBe("four");
      expect(await redis.mget(k("a"), k("b"), k("none"), k("a"))).toEqual(["five", "bee", null, "five"]);
      expect(await redis.exists(k("a"), k("b"), k("none"), k("a"))).toBe(3);
      expect(await redis.mset(k("m1"), "1", k("m2"), "2", k("m1"), "last")).toBe("OK");
      expect(await redis.mget(k("m1"), k("m2"))).toEqual(["last", "2"]);
      expect(await redis.del(k("a"), k("none"), k("b"))).toBe(2);
      expect(await redis.unlink(k("m1"), k("m2"))).toBe(2);
      expect(await redis.del(k("a"))).toBe(0);
      expect(await redis.mget(k("a"), k("b"), k("m1"))).toEqual([null, null, null]);
      expect(await redis.exists(k("a"), k("b"), k("d"))).toBe(1);

      // PostgreSQL is the source of truth: write-behind once flushed, the others at the answer.
      if (ks === "wb") expect((await call(daemon.url, "POST", "/v1/keyspaces/wb/flush")).status).toBe(200);
      expect((await row(ks, "d"))?.value).toBe("dee");
      expect(await row(ks, "a")).toBeUndefined();
      expect(await row(ks, "m1")).toBeUndefined();
    });
  }

  it("read-through: reads rows written in PostgreSQL; every write is METHOD_NOT_ALLOWED, present key or not", async () => {
    await db.query(
      `insert into ${tag}_rt (key, value, version, updated_at) values ('seed', '"from pg"', 1, now())`,
    );
    expect(await redis.get("rt:seed")).toBe("from pg");
    expect(await redis.mget("rt:seed", "rt:none")).toEqual(["from pg", null]);
    expect(await redis.exists("rt:seed", "rt:none")).toBe(1);
    for (const cmd of [
      redis.set("rt:seed", "x"),
      redis.set("rt:none", "x", "XX"),
      redis.set("rt:none", "x", "NX"),
      redis.del("rt:seed"),
      redis.del("rt:none"),
      redis.mset("rt:a", "1"),
    ]) {
      expect(await failure(cmd)).toMatch(/^METHOD_NOT_ALLOWED Keyspace "rt" is read-through/);
    }
    expect(await redis.get("rt:seed")).toBe("from pg");
  });

  it("MGET and EXISTS span keyspaces; MSET across keyspaces is refused, nothing written", async () => {
    await redis.set("aside:x1", "A");
    await redis.set("wb:x1", "B");
    expect(await redis.mget("wb:x1", "aside:x1", "wts:x1", "rt:seed")).toEqual(["B", "A", null, "from pg"]);
    expect(await redis.exists("wb:x1", "aside:x1", "wts:x1")).toBe(2);
    expect(await redis.del("wb:x1", "aside:x1", "wts:x1")).toBe(2);
    expect(await failure(redis.mset("aside:y1", "1", "wts:y1", "2"))).toMatch(
      /^INVALID_REQUEST MSET writes all or nothing within one keyspace/,
    );
    expect(await redis.exists("aside:y1", "wts:y1")).toBe(0);
  });
});

describe("the value rule", () => {
  const TEXTS = [
    "hello",
    "",
    "  spaced  ",
    'quote " and \\ backslash',
    "line\nbreak\ttab\r\n",
    "42",
    "true",
    "null",
    '"quoted"',
    "{not json",
    ' {"a":1}',
    "[1,2",
    "ünïcødé ✓ 🎉",
  ];

  it("any UTF-8 text that is not a JSON object or array is stored as a JSON string, read back byte for byte", async () => {
    for (const [i, text] of TEXTS.entries()) {
      expect(await redis.set(`aside:t${i}`, text)).toBe("OK");
      expect((await redis.getBuffer(`aside:t${i}`))!.equals(Buffer.from(text))).toBe(true);
      // the same value over HTTP is that JSON string, and so is PostgreSQL's row
      const http = await call(daemon.url, "GET", `/v1/kv/aside/t${i}`);
      expect(http.json()).toBe(text);
      expect((await row("aside", `t${i}`))?.value).toBe(text);
    }
  });

  it("a JSON object or array is stored as that JSON: HTTP reads the object, RESP its JSON text", async () => {
    const obj = '{"name":"Ada","tags":["x","y"],"n":1.5,"ok":true,"none":null}';
    expect(await redis.set("wts:obj", obj)).toBe("OK");
    expect(JSON.parse((await redis.get("wts:obj"))!)).toEqual(JSON.parse(obj));
    expect((await call(daemon.url, "GET", "/v1/kv/wts/obj")).json()).toEqual(JSON.parse(obj));
    expect((await row("wts", "obj"))?.value).toEqual(JSON.parse(obj));
    expect(await redis.set("wts:arr", "[1,[2,{}]]")).toBe("OK");
    expect((await row("wts", "arr"))?.value).toEqual([1, [2, {}]]);
  });

  it("values written over HTTP read over RESP: strings as their text, other JSON as JSON text", async () => {
    const put = (key: string, body: string) =>
      call(daemon.url, "PUT", `/v1/kv/around/${seg(key)}`, body).then((r) => expect(r.status).toBe(200));
    await put("s", '"text"');
    await put("n", "42");
    await put("o", '{"x": [1, 2]}');
    await put("z", "null");
    expect(await redis.get("around:s")).toBe("text");
    expect(await redis.get("around:n")).toBe("42");
    expect(JSON.parse((await redis.get("around:o"))!)).toEqual({ x: [1, 2] });
    expect(await redis.get("around:z")).toBe("null");
    expect(await redis.exists("around:z")).toBe(1);
  });

  it("keys: KEYSPACE:KEY split at the first colon, under the HTTP key rules", async () => {
    expect(await redis.set("aside:a:b:c", "colons")).toBe("OK");
    expect((await call(daemon.url, "GET", `/v1/kv/aside/${seg("a:b:c")}`)).json()).toBe("colons");
    expect(await redis.set("aside:ключ/é", "utf8")).toBe("OK");
    expect((await call(daemon.url, "GET", `/v1/kv/aside/${seg("ключ/é")}`)).json()).toBe("utf8");
  });

  it("refuses what the value rule and the key rules do not allow, and the connection goes on", async () => {
    const bad: [Promise<unknown>, RegExp][] = [
      [
        redis.set("aside:v", Buffer.from([0x61, 0xff, 0xfe])),
        /^INVALID_REQUEST The value is not valid UTF-8/,
      ],
      [redis.set("aside:v", "a\u0000b"), /^INVALID_REQUEST The value holds a NUL character/],
      [redis.set("aside:v", '{"a":"\\u0000"}'), /^INVALID_REQUEST The value holds a NUL character/],
      [
        redis.set(Buffer.from([0x61, 0x73, 0x69, 0x64, 0x65, 0x3a, 0xc3]), "v"),
        /^INVALID_REQUEST The key is not valid UTF-8/,
      ],
      [redis.get(Buffer.from("aside:\xff\xfe", "latin1")), /^INVALID_REQUEST The key is not valid UTF-8/],
      [redis.get("nocolon"), /^INVALID_KEY The key "nocolon" names no keyspace/],
      [redis.get("aside:"), /^INVALID_KEY The key is empty/],
      [redis.get("aside:.."), /^INVALID_KEY/],
      [redis.get(`aside:${"k".repeat(513)}`), /^INVALID_KEY The key is 513 bytes/],
      [redis.get("aside:a\u0000b"), /^INVALID_REQUEST The key holds a NUL character/],
      [redis.get("nope:a"), /^UNKNOWN_KEYSPACE No keyspace named "nope"/],
      [redis.mget("aside:a", "nope:b"), /^UNKNOWN_KEYSPACE/],
      [
        redis.set("aside:v", `${"[".repeat(600)}${"]".repeat(600)}`),
        /^INVALID_JSON The value is JSON nested more than 512/,
      ],
      [redis.set("aside:v", "x".repeat(9000)), /^VALUE_TOO_LARGE/],
      [redis.set("aside:v", "\\".repeat(5000)), /^VALUE_TOO_LARGE/], // 5,000 bytes, 10,002 once escaped
      [redis.set("aside:v", "x".repeat(100_000)), /^VALUE_TOO_LARGE The command holds 100000 bytes/],
      [redis.set("aside:v", "x", "EX", "10"), /^INVALID_REQUEST SET \.\.\. EX is refused/],
      [redis.set("aside:v", "x", "PX", "10"), /^INVALID_REQUEST SET \.\.\. PX is refused/],
      [redis.call("SET", "aside:v", "x", "NX", "XX"), /^ERR syntax error/],
      [
        redis.mget(...Array.from({ length: 51 }, (_, i) => `aside:k${i}`)),
        /^INVALID_REQUEST At most 50 keys fit in one MGET; got 51/,
      ],
    ];
    for (const [p, message] of bad) expect(await failure(p)).toMatch(message);
    expect(await redis.exists("aside:v")).toBe(0);
    expect(await redis.ping()).toBe("PONG");
  });
});

describe("metrics", () => {
  it('every keyspace exports its request series at 0 from start-up for protocol="resp" too; without server.resp, none', async () => {
    const text = (await call(daemon.url, "GET", "/metrics")).text;
    expect(text).toMatch(
      /^sidecache_requests_total\{keyspace="rt",op="get",status="503",protocol="resp"\} 0$/m,
    );
    expect(text).toMatch(
      /^sidecache_requests_total\{keyspace="wb",op="put",status="429",protocol="resp"\} 0$/m,
    );
    expect(text).toMatch(
      /^sidecache_requests_total\{keyspace="wb",op="put",status="429",protocol="http"\} 0$/m,
    );
    const plainHttp = await startDaemon(`
cache: { url: "memory:" }
store: { url: "pglite:memory" }
checker: { enabled: false }
keyspaces:
  solo: { strategy: cache-aside }
`);
    try {
      const other = (await call(plainHttp.url, "GET", "/metrics")).text;
      expect(other).toMatch(
        /^sidecache_requests_total\{keyspace="solo",op="get",status="200",protocol="http"\} 0$/m,
      );
      expect(other).not.toContain('protocol="resp"');
    } finally {
      await plainHttp.stop();
    }
  });

  it('requests over RESP count under protocol="resp", HTTP ones under protocol="http", by keyspace, op and status', async () => {
    await redis.set("aside:metric", "1");
    await redis.get("aside:metric");
    await redis.get("aside:metric-none");
    await redis.mget("aside:metric", "wb:metric");
    await redis.del("aside:metric");
    await redis.set("wb:metric", "1");
    await redis.get("nope:x").catch(() => {});
    await call(daemon.url, "GET", "/v1/kv/aside/metric");
    const text = (await call(daemon.url, "GET", "/metrics")).text;
    const count = (labels: string) => {
      const m = new RegExp(`^sidecache_requests_total\\{${labels}\\} (\\d+)$`, "m").exec(text);
      return Number(m?.[1] ?? 0);
    };
    expect(count('keyspace="aside",op="put",status="200",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="aside",op="get",status="200",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="aside",op="get",status="404",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="wb",op="mget",status="200",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="aside",op="delete",status="204",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="wb",op="put",status="202",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="\\(unknown\\)",op="get",status="404",protocol="resp"')).toBeGreaterThanOrEqual(1);
    expect(count('keyspace="aside",op="get",status="404",protocol="http"')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(
      /sidecache_request_duration_seconds_count\{keyspace="aside",op="get",protocol="resp"\} \d+/,
    );
    expect(text).not.toContain("metric-none"); // labels by keyspace, never by key
  });
});

/** The raw bytes of the next reply (for the RESP3 types that decode alike). */
async function waitRaw(c: RawResp): Promise<string> {
  const deadline = Date.now() + 5000;
  while (c.rest.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 20));
  const text = c.rest.toString("latin1");
  await c.read(1);
  return text;
}
