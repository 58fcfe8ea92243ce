/**
 * The RESP listener under pipelines and hostile input, against a real daemon: frames split at every byte
 * boundary on a real socket; 10,000 mixed commands over every strategy answered in order as Redis would;
 * huge and negative lengths, binary keys, garbage, unterminated frames and HTTP on the port each get an
 * error (or a close) and leave the daemon serving; a stop answers every command already read.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { cleanupShared, encodeCommand, plain, RawResp, RespErrorReply } from "./support/resp.js";

const tag = uniqueTag();
const KS = ["aside", "wts", "wte", "around", "wb"] as const;
const tables = [...KS, "rt", "drain"].map((k) => `${tag}_${k}`);
let daemon: Daemon;
let redis: Redis;

const keyspaces = `
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  rt: { strategy: read-through, table: ${tag}_rt }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte }
  around: { strategy: write-around, table: ${tag}_around }
  wb: { strategy: write-behind, table: ${tag}_wb, write_behind: { flush_interval: 100ms } }
  drain: { strategy: write-through, table: ${tag}_drain }
`;

beforeAll(async () => {
  daemon = await startDaemon(`
server: { max_value: 16kb, request_timeout: 1s, headers_timeout: 500ms, resp: { port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL}, pool: 20 }
checker: { enabled: false }
${keyspaces}`);
  redis = new Redis({ port: daemon.respPort!, host: "127.0.0.1", maxRetriesPerRequest: 0 });
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `insert into ${tag}_rt (key, value, version, updated_at) values ('seed', '"from pg"', 1, now())`,
  );
  await db.end();
});

afterAll(async () => {
  redis?.disconnect();
  await daemon?.stop();
  await cleanupShared(tag, tables);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function healthy(): Promise<void> {
  expect((await call(daemon.url, "GET", "/healthz")).status).toBe(200);
  const c = await RawResp.connect(daemon.respPort!);
  try {
    expect(plain(await c.one("PING"))).toBe("PONG");
    expect(plain(await c.one("SET", "aside:alive", "yes"))).toBe("OK");
    expect(plain(await c.one("GET", "aside:alive"))).toBe("yes");
  } finally {
    c.end();
  }
}

describe("split and merged frames on a real socket", () => {
  it("a pipeline of SET, GET, PING split at every byte boundary answers the same each time", async () => {
    const stream = Buffer.concat([
      encodeCommand(["SET", "wb:split", "value-é"]),
      encodeCommand(["GET", "wb:split"]),
      Buffer.from("PING\r\n"),
    ]);
    const c = await RawResp.connect(daemon.respPort!);
    try {
      for (let i = 1; i < stream.length; i++) {
        c.send(stream.subarray(0, i));
        await sleep(1); // a separate TCP segment
        c.send(stream.subarray(i));
        expect((await c.read(3)).map(plain), `split at ${i}`).toEqual(["OK", "value-é", "PONG"]);
      }
      // and one byte per segment
      for (const byte of stream) {
        c.send(Buffer.from([byte]));
        await new Promise((r) => setImmediate(r));
      }
      expect((await c.read(3)).map(plain)).toEqual(["OK", "value-é", "PONG"]);
    } finally {
      c.end();
    }
  });
});

describe("pipelining", () => {
  it("10,000 mixed commands over every strategy are answered in order, as a sequential Redis would", async () => {
    const model = new Map<string, string>();
    const expected: unknown[] = [];
    const p = redis.pipeline();
    for (let i = 0; i < 10_000; i++) {
      const block = Math.floor(i / 10);
      const ks = KS[block % KS.length]!;
      const key = `${ks}:p${block % 37}`;
      const other = `${KS[(block + 2) % KS.length]!}:p${(block * 3) % 37}`;
      const get = (k: string) => model.get(k) ?? null;
      switch (i % 10) {
        case 0:
          p.set(key, `v${i}`);
          model.set(key, `v${i}`);
          expected.push("OK");
          break;
        case 1:
          p.get(key);
          expected.push(get(key));
          break;
        case 2:
          p.mget(key, other, "rt:seed");
          expected.push([get(key), get(other), "from pg"]);
          break;
        case 3:
          p.exists(key, other, key);
          expected.push([key, other, key].filter((k) => model.has(k)).length);
          break;
        case 4:
          p.get("rt:seed");
          expected.push("from pg");
          break;
        case 5:
          if (block % 4 !== 0) {
            p.exists(other);
            expected.push(model.has(other) ? 1 : 0);
            break;
          }
          p.set(other, `nx${i}`, "NX");
          expected.push(model.has(other) ? null : "OK");
          if (!model.has(other)) model.set(other, `nx${i}`);
          break;
        case 6:
          p.ping();
          expected.push("PONG");
          break;
        case 7:
          p.echo(`e${i}`);
          expected.push(`e${i}`);
          break;
        case 8:
          if (block % 4 !== 2) {
            p.mget(other, key);
            expected.push([get(other), get(key)]);
            break;
          }
          p.del(key);
          expected.push(model.delete(key) ? 1 : 0);
          break;
        case 9:
          p.get(other);
          expected.push(get(other));
          break;
      }
    }
    const results = (await p.exec())!;
    expect(results).toHaveLength(10_000);
    const errors = results.filter(([err]) => err !== null);
    expect(errors).toEqual([]);
    const got = results.map(([, v]) => v);
    const firstDiff = got.findIndex((v, i) => JSON.stringify(v) !== JSON.stringify(expected[i]));
    expect(firstDiff, `first difference at command ${firstDiff}`).toBe(-1);
  }, 180_000);

  it("reads in flight together still answer in order: a slow miss before fast hits", async () => {
    await redis.set("aside:hot", "h");
    await redis.get("aside:hot");
    const c = await RawResp.connect(daemon.respPort!);
    try {
      const cmds = [encodeCommand(["MGET", ...Array.from({ length: 40 }, (_, i) => `aside:cold${i}`)])];
      for (let i = 0; i < 50; i++) cmds.push(encodeCommand(["GET", "aside:hot"]));
      c.send(Buffer.concat(cmds));
      const replies = (await c.read(51)).map(plain);
      expect(replies[0]).toEqual(Array.from({ length: 40 }, () => null));
      expect(replies.slice(1)).toEqual(Array.from({ length: 50 }, () => "h"));
    } finally {
      c.end();
    }
  });
});

describe("hostile input", () => {
  /** Sends bytes on a fresh connection; the replies it got before the daemon closed it. */
  async function closedAfter(bytes: Buffer | string): Promise<unknown[]> {
    const c = await RawResp.connect(daemon.respPort!);
    c.send(bytes);
    await c.ended;
    const out: unknown[] = [];
    while (c.rest.length > 0) out.push(plain((await c.read(1))[0]!));
    return out;
  }

  const refused: [string, string | Buffer, RegExp][] = [
    ["a huge bulk length", "*2\r\n$3\r\nGET\r\n$99999999999\r\n", /^ERR Protocol error: invalid bulk length/],
    [
      "a negative bulk length",
      "*2\r\n$3\r\nGET\r\n$-7\r\nabc\r\n",
      /^ERR Protocol error: invalid bulk length/,
    ],
    [
      "a multibulk length of a million",
      "*1000000\r\n$4\r\nPING\r\n",
      /^ERR Protocol error: too many arguments/,
    ],
    ["a length that is no number", "*1\r\n$x\r\nPING\r\n", /^ERR Protocol error: invalid bulk length/],
    ["a type byte where $ belongs", "*1\r\n+PING\r\n", /^ERR Protocol error: expected '\$'/],
    ["a bulk not ended where its length says", "*1\r\n$4\r\nPINGPONG\r\n", /^ERR Protocol error/],
    [
      "binary garbage",
      Buffer.from([0x00, 0x9c, 0x13, 0xff, 0x0a, 0x01, 0x02, 0x0d, 0x0a]),
      /^ERR Protocol error: garbage/,
    ],
    [
      "an inline line 100 KiB long",
      "GET " + "a".repeat(100 * 1024),
      /^ERR Protocol error: an inline command is longer/,
    ],
    ["unbalanced quotes", 'SET aside:q "never closed\r\n', /^ERR Protocol error: unbalanced quotes/],
  ];
  for (const [what, bytes, reply] of refused) {
    it(`${what}: an error, then the daemon closes the connection`, async () => {
      const replies = await closedAfter(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, "latin1"));
      expect(replies.length).toBeGreaterThanOrEqual(1);
      const last = replies[replies.length - 1]!;
      expect(last).toBeInstanceOf(RespErrorReply);
      expect((last as RespErrorReply).message).toMatch(reply);
    });
  }

  it("a negative multibulk length is an empty command, as in Redis; the connection goes on", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      c.send("*-5\r\n*0\r\n*1\r\n$4\r\nPING\r\n");
      expect(plain((await c.read(1))[0]!)).toBe("PONG");
    } finally {
      c.end();
    }
  });

  it("an argument past the limit is skipped as it streams: VALUE_TOO_LARGE, and the connection goes on", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      const big = Buffer.alloc(3 * 1024 * 1024, 0x78);
      c.send(Buffer.concat([encodeCommand(["SET", "aside:big", big]), encodeCommand(["GET", "aside:big"])]));
      const [tooLarge, after] = await c.read(2);
      expect((tooLarge as RespErrorReply).message).toMatch(
        /^VALUE_TOO_LARGE The command holds 3145728 bytes/,
      );
      expect(after).toBeNull();
      expect(plain(await c.one("PING"))).toBe("PONG");
    } finally {
      c.end();
    }
  });

  it("binary keys and values: INVALID_REQUEST for each, the connection goes on", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      for (let b = 0x80; b <= 0xff; b += 0x0f) {
        const key = Buffer.concat([Buffer.from("aside:"), Buffer.from([b, 0x00, b])]);
        const r = (await c.one("SET", key, "v")) as RespErrorReply;
        expect(r.message).toMatch(/^INVALID_REQUEST The key is not valid UTF-8/);
      }
      const r = (await c.one("SET", "aside:bin", Buffer.from([0xc0, 0xaf]))) as RespErrorReply;
      expect(r.message).toMatch(/^INVALID_REQUEST The value is not valid UTF-8/);
      expect(plain(await c.one("EXISTS", "aside:bin"))).toBe(0);
    } finally {
      c.end();
    }
  });

  it("an unterminated frame: a client that goes away costs nothing; one that stalls is closed after request_timeout", async () => {
    for (let i = 0; i < 50; i++) {
      const c = await RawResp.connect(daemon.respPort!);
      c.send(`*3\r\n$3\r\nSET\r\n$9\r\naside:u${i % 10}\r\n$1000\r\nabc`);
      c.end();
    }
    const stalled = await RawResp.connect(daemon.respPort!);
    stalled.send("*2\r\n$3\r\nGET\r\n$10\r\naside:stal");
    const t0 = Date.now();
    await stalled.ended;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const [r] = await stalled.read(1);
    expect((r as RespErrorReply).message).toMatch(/^TIMEOUT The command was not sent in full within 1000 ms/);
    // An idle connection with nothing half-sent stays open, as with Redis.
    const idle = await RawResp.connect(daemon.respPort!);
    await sleep(1_500);
    expect(idle.closed).toBe(false);
    expect(plain(await idle.one("PING"))).toBe("PONG");
    idle.end();
  });

  it("an HTTP request on the RESP port is closed unanswered past its first line", async () => {
    const replies = await closedAfter("POST /v1/kv/aside/x HTTP/1.1\r\nHost: localhost\r\n\r\n{}");
    expect(replies).toEqual([]);
    const get = await closedAfter("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    expect(get).toHaveLength(1);
    expect((get[0] as RespErrorReply).message).toMatch(/^ERR wrong number of arguments for 'get'/);
  });

  it("while a hundred connections send garbage, a well-behaved client sees no error; the daemon stays healthy", async () => {
    let stop = false;
    let served = 0;
    const good = (async () => {
      while (!stop) {
        await redis.set("wb:steady", String(served));
        expect(await redis.get("wb:steady")).toBe(String(served));
        served++;
      }
    })();
    const garbage = Array.from({ length: 100 }, async (_, i) => {
      const c = await RawResp.connect(daemon.respPort!);
      const junk = Buffer.from(Array.from({ length: 2048 }, (_, j) => (i * 31 + j * 17) % 256));
      c.send(i % 2 ? junk : Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$${1e12}\r\n`), junk]));
      await Promise.race([c.ended, sleep(3000)]);
      c.end();
    });
    await Promise.all(garbage);
    stop = true;
    await good;
    expect(served).toBeGreaterThan(0);
    await healthy();
  });
});

describe("limits and shutdown", () => {
  it("past max_connections a connection is answered OVERLOADED and closed; the others work", async () => {
    const small = await startDaemon(`
server: { max_connections: 3, resp: { port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
${keyspaces}`);
    const open: RawResp[] = [];
    try {
      for (let i = 0; i < 3; i++) open.push(await RawResp.connect(small.respPort!));
      for (const c of open) expect(plain(await c.one("PING"))).toBe("PONG");
      const extra = await RawResp.connect(small.respPort!);
      await extra.ended;
      const [r] = await extra.read(1);
      expect((r as RespErrorReply).message).toMatch(
        /^OVERLOADED The daemon holds its limit of 3 connections/,
      );
      open.pop()!.end();
      await sleep(100);
      open.push(await RawResp.connect(small.respPort!));
      expect(plain(await open[2]!.one("PING"))).toBe("PONG");
    } finally {
      for (const c of open) c.end();
      await small.stop();
    }
  });

  it("a stop answers every command already read, then closes; PostgreSQL holds every write answered OK", async () => {
    const d = await startDaemon(`
server: { resp: { port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
${keyspaces}`);
    const c = await RawResp.connect(d.respPort!);
    const n = 200;
    c.send(
      Buffer.concat(Array.from({ length: n }, (_, i) => encodeCommand(["SET", `drain:k${i}`, `v${i}`]))),
    );
    await c.read(1); // the daemon has read them
    const stopped = d.stop();
    const rest = await c.read(n - 1, 30_000);
    expect(rest.map(plain)).toEqual(Array.from({ length: n - 1 }, () => "OK"));
    await c.ended;
    await stopped;
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    const r = await db.query(`select count(*)::int as n from ${tag}_drain`);
    await db.end();
    expect(r.rows[0].n).toBe(n);
  });
});
