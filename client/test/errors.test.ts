/**
 * Every error code the client can meet, made to happen against a real daemon with auth and small limits:
 * each arrives as its family's class with the contract's code and status, and changes nothing. 429
 * `queue_full` is retried after Retry-After, and not retried when Retry-After passes the call's budget.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "../../test/support/daemon.js";
import { call } from "../../test/support/http.js";
import { errorFromAnswer, FAMILIES, type ErrorStatus } from "../src/errors.js";
import {
  BadRequestError,
  CODE_STATUS,
  ForbiddenError,
  MethodNotAllowedError,
  NotFoundError,
  QueueFullError,
  SidecacheClient,
  SidecacheError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  ValueTooLargeError,
  VersionMismatchError,
  type ErrorCode,
} from "../src/index.js";
import { cleanup, metric } from "./support.js";

const tag = uniqueTag();
const tables = ["aside", "rt", "wbfull", "wbslow"].map((t) => `${tag}_${t}`);
let daemon: Daemon;
let admin: SidecacheClient;

beforeAll(async () => {
  daemon = await startDaemon(`
server: { max_value: 2kb, max_batch: 4 }
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
auth:
  tokens:
    - { name: admin, token: admin-secret-token-0001, allow: { "*": admin } }
    - { name: reader, token: reader-secret-token-001, allow: { aside: read } }
    - { name: writer, token: writer-secret-token-001, allow: { aside: write } }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  rt: { strategy: read-through, table: ${tag}_rt }
  wbfull:
    strategy: write-behind
    table: ${tag}_wbfull
    write_behind: { flush_interval: 1s, batch_size: 500, max_queue: 3 }
  wbslow:
    strategy: write-behind
    table: ${tag}_wbslow
    write_behind: { flush_interval: 10m, batch_size: 500, max_queue: 1 }
`);
  admin = new SidecacheClient({ url: daemon.url, token: "admin-secret-token-0001" });
});

afterAll(async () => {
  await admin?.close();
  await daemon?.stop();
  await cleanup(tag, tables);
});

/** The error a call throws (fails the test when it does not throw). */
async function failure(p: Promise<unknown>): Promise<SidecacheError> {
  const outcome = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error(`expected an error, got ${JSON.stringify(outcome.v)}`);
  expect(outcome.e).toBeInstanceOf(SidecacheError);
  return outcome.e as SidecacheError;
}

function nested(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("400 BadRequestError", () => {
  it("invalid_key: '.', '..', empty, longer than 512 bytes, also inside mget; nothing is written", async () => {
    const ks = admin.keyspace("aside");
    for (const key of [".", "..", "", "é".repeat(257)]) {
      const err = await failure(ks.put(key, 1));
      expect(err).toBeInstanceOf(BadRequestError);
      expect(err).toMatchObject({ code: "invalid_key", status: 400 });
      expect(err.requestId).toMatch(/.+/);
    }
    expect(await failure(ks.mget(["ok", ".."]))).toMatchObject({ code: "invalid_key", status: 400 });
    // A lone surrogate can not be sent at all: refused by the client, status 0.
    expect(await failure(ks.get("\ud800"))).toMatchObject({ code: "invalid_key", status: 0 });
    expect(await ks.mget(["é".repeat(256)])).toEqual(new Map([["é".repeat(256), null]]));
  });

  it("invalid_json: a value nested deeper than the daemon takes", async () => {
    const err = await failure(admin.keyspace("aside").put("deep", nested(600)));
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.code).toBe("invalid_json");
    expect(await admin.keyspace("aside").get("deep")).toBeNull();
  });

  it("invalid_request: U+0000 in a key, an mset over max_batch, bad check and page fields", async () => {
    const ks = admin.keyspace("aside");
    expect(await failure(ks.put("nul\u0000key", 1))).toMatchObject({ code: "invalid_request", status: 400 });
    const five = { a: 1, b: 2, c: 3, d: 4, e: 5 };
    const err = await failure(ks.mset(five));
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.code).toBe("invalid_request");
    expect((await ks.mget(["a", "b", "c", "d"])).get("a")).toBeNull();
    // More keys than the daemon's max_batch, from a client told a larger maxBatch.
    expect(await failure(ks.mget(Object.keys(five)))).toMatchObject({ code: "invalid_request" });
    expect(await failure(ks.check({ sample: 0 }))).toMatchObject({ code: "invalid_request" });
    expect(await failure(admin.deadLetters("wbfull", { count: 5000 }))).toMatchObject({
      code: "invalid_request",
    });
  });

  it("mget splits more keys than max_batch into several requests; mset never splits", async () => {
    const small = new SidecacheClient({ url: daemon.url, token: "admin-secret-token-0001", maxBatch: 4 });
    try {
      await small.keyspace("aside").mset({ k1: 1, k2: 2, k3: 3 });
      const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
      const read = await small.keyspace<number>("aside").mget(keys);
      expect([...read.values()]).toEqual([null, 1, 2, 3, null, null, null, null, null, null]);
    } finally {
      await small.close();
    }
  });
});

describe("401, 403", () => {
  it("UnauthorizedError without a token and with a wrong one", async () => {
    for (const token of [undefined, "wrong"]) {
      const c = new SidecacheClient({ url: daemon.url, token });
      try {
        const err = await failure(c.keyspace("aside").get("x"));
        expect(err).toBeInstanceOf(UnauthorizedError);
        expect(err).toMatchObject({ code: "unauthorized", status: 401 });
      } finally {
        await c.close();
      }
    }
  });

  it("ForbiddenError for a reader that writes and a writer that flushes", async () => {
    const reader = new SidecacheClient({ url: daemon.url, token: "reader-secret-token-001" });
    const writer = new SidecacheClient({ url: daemon.url, token: "writer-secret-token-001" });
    try {
      expect(await reader.keyspace("aside").get("nothing")).toBeNull();
      const err = await failure(reader.keyspace("aside").put("r", 1));
      expect(err).toBeInstanceOf(ForbiddenError);
      expect(err).toMatchObject({ code: "forbidden", status: 403 });
      expect(await failure(reader.keyspace("rt").get("r"))).toBeInstanceOf(ForbiddenError);
      await writer.keyspace("aside").put("w", 1);
      expect(await failure(writer.flush("aside"))).toBeInstanceOf(ForbiddenError);
      expect(await failure(writer.keyspaces())).toMatchObject({ code: "forbidden" });
      expect((await admin.keyspace("aside").get("r")) === null).toBe(true);
    } finally {
      await reader.close();
      await writer.close();
    }
  });
});

describe("404, 405, 412, 413, 415", () => {
  it("NotFoundError: unknown_keyspace, and not_found for dead letters; get answers null", async () => {
    const err = await failure(admin.keyspace("nope").get("k"));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ code: "unknown_keyspace", status: 404 });
    expect(await admin.keyspace("aside").get("absent")).toBeNull();
    expect(await failure(admin.deadLetters("aside"))).toMatchObject({ code: "not_found", status: 404 });
    expect(await failure(admin.dropDeadLetter("wbfull", "1-0"))).toMatchObject({ code: "not_found" });
  });

  it("MethodNotAllowedError: a write to a read-through keyspace", async () => {
    const err = await failure(admin.keyspace("rt").put("k", 1));
    expect(err).toBeInstanceOf(MethodNotAllowedError);
    expect(err).toMatchObject({ code: "method_not_allowed", status: 405, allow: ["GET"] });
  });

  it("VersionMismatchError: If-Match of another version, If-None-Match: * on an existing key", async () => {
    const ks = admin.keyspace("aside");
    const w = await ks.put("v", "one");
    const err = await failure(ks.put("v", "two", { ifMatch: w.version + 1 }));
    expect(err).toBeInstanceOf(VersionMismatchError);
    expect(err).toMatchObject({ code: "version_mismatch", status: 412 });
    expect(await failure(ks.create("v", "three"))).toBeInstanceOf(VersionMismatchError);
    expect((await ks.get("v"))!.value).toBe("one");
  });

  it("ValueTooLargeError: a value over max_value, in put and in mset", async () => {
    const ks = admin.keyspace("aside");
    const big = "x".repeat(3000);
    const err = await failure(ks.put("big", big));
    expect(err).toBeInstanceOf(ValueTooLargeError);
    expect(err).toMatchObject({ code: "value_too_large", status: 413 });
    expect(await failure(ks.mset({ small: 1, big }))).toBeInstanceOf(ValueTooLargeError);
    expect((await ks.mget(["big", "small"])).get("small")).toBeNull();
  });

  it("UnsupportedMediaTypeError: the client always sends JSON, so the daemon's real answer is mapped", async () => {
    const r = await call(daemon.url, "PUT", "/v1/kv/aside/t", "text", {
      "content-type": "text/plain",
      authorization: "Bearer admin-secret-token-0001",
    });
    expect(r.status).toBe(415);
    const err = errorFromAnswer(r.status, r.text, {});
    expect(err).toBeInstanceOf(UnsupportedMediaTypeError);
    expect(err.code).toBe("unsupported_media_type");
  });

  it("every code of the description maps to its family's class and status", () => {
    for (const [code, status] of Object.entries(CODE_STATUS) as [ErrorCode, ErrorStatus][]) {
      const err = errorFromAnswer(status, JSON.stringify({ error: { code, message: "m" } }), {});
      expect(err).toBeInstanceOf(FAMILIES[status]);
      expect(err).toMatchObject({ code, status, message: "m" });
    }
    const odd = errorFromAnswer(502, "<html>bad gateway</html>", {});
    expect(odd.constructor).toBe(SidecacheError);
    expect(odd).toMatchObject({ code: "unexpected_response", status: 502 });
  });
});

describe("429 QueueFullError and Retry-After", () => {
  const rejected = (ks: string) =>
    metric(daemon.url, "sidecache_requests_total", { keyspace: ks, op: "put", status: "429" });

  it("a full queue answers 429 with Retry-After; the client waits that long and the retry is taken", async () => {
    const ks = admin.keyspace("wbfull");
    for (let i = 0; i < 3; i++) await ks.put(`q${i}`, i);
    const noRetry = await failure(ks.put("q3", 3, { retry: false }));
    expect(noRetry).toBeInstanceOf(QueueFullError);
    expect(noRetry).toMatchObject({ code: "queue_full", status: 429, retryAfterMs: 1000, attempts: 1 });

    const before = await rejected("wbfull");
    const started = Date.now();
    const w = await ks.put("q3", 3);
    const elapsed = Date.now() - started;
    expect(w.queued).toBe(true);
    const refusals = (await rejected("wbfull")) - before;
    expect(refusals).toBeGreaterThanOrEqual(1);
    // Each refusal was followed by a wait of Retry-After (1 s) before the next attempt.
    expect(elapsed).toBeGreaterThanOrEqual(1000 * refusals);
    expect(elapsed).toBeLessThan(admin.retry.budgetMs + 1000);
    expect((await ks.get("q3"))!.value).toBe(3);
  });

  it("a Retry-After longer than the call's budget is not waited for: thrown at once", async () => {
    const ks = admin.keyspace("wbslow");
    await ks.put("first", 1);
    const before = await rejected("wbslow");
    const started = Date.now();
    const err = await failure(ks.put("second", 2));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err).toBeInstanceOf(QueueFullError);
    expect(err.retryAfterMs).toBe(600_000);
    expect(err.attempts).toBe(1);
    expect((await rejected("wbslow")) - before).toBe(1);
    expect(await ks.get("second")).toBeNull();
  });
});
