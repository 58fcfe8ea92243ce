/**
 * The client's retries and deadlines against real faults: a private Redis stopped (503), frozen (504, and
 * the client's own deadline), a daemon at its connection limit (503 with Retry-After), nothing listening.
 * How many requests reached the daemon is read from its metrics.
 */
import net from "node:net";
import { once } from "node:events";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "../../test/support/daemon.js";
import { startPrivateRedis, type PrivateRedis } from "../../test/support/redis-server.js";
import {
  ConnectionError,
  SidecacheClient,
  SidecacheError,
  TimeoutError,
  UnavailableError,
} from "../src/index.js";
import { cleanup, metric, until } from "./support.js";

const tag = uniqueTag();
const tables = [`${tag}_wts`, `${tag}_aside`, `${tag}_slow`, `${tag}_busy`];
let redis: PrivateRedis;
/** fails fast when Redis is away: 300 ms per Redis call */
let quick: Daemon;
/** waits long on Redis (5 s), answers 504 after 400 ms */
let deadline: Daemon;
/** one connection at most */
let busy: Daemon;

beforeAll(async () => {
  redis = await startPrivateRedis();
  [quick, deadline, busy] = await Promise.all([
    startDaemon(`
cache: { url: ${redis.url}, prefix: ${tag}q, timeout: 300ms, breaker: { failures: 3, cooldown: 300ms } }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  aside: { strategy: cache-aside, table: ${tag}_aside }
`),
    startDaemon(`
server: { request_deadline: 400ms }
cache: { url: ${redis.url}, prefix: ${tag}d, timeout: 5s }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  slow: { strategy: cache-aside, table: ${tag}_slow }
`),
    startDaemon(`
server: { max_connections: 1 }
cache: { url: "${REDIS_URL}", prefix: ${tag}b }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  busy: { strategy: cache-aside, table: ${tag}_busy }
`),
  ]);
});

afterAll(async () => {
  await Promise.all([quick?.stop(), deadline?.stop(), busy?.stop()]);
  await redis?.kill();
  await cleanup(tag, tables);
});

async function failure(p: Promise<unknown>): Promise<SidecacheError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SidecacheError);
  return e as SidecacheError;
}

const refused = (ks: string, op = "put") =>
  metric(quick.url, "sidecache_requests_total", { keyspace: ks, op, status: "503" });

describe("503 backend_unavailable: Redis stopped under a write-through strict keyspace", () => {
  it("is retried with backoff and stops after its retries, each attempt reaching the daemon", async () => {
    const sc = new SidecacheClient({ url: quick.url });
    try {
      await sc.keyspace("wts").put("k", 0);
      await redis.stop();
      const before = await refused("wts");
      const err = await failure(
        sc.keyspace("wts").put("k", 1, { retry: { retries: 2, baseDelayMs: 50, maxDelayMs: 100 } }),
      );
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err).toMatchObject({ code: "backend_unavailable", status: 503, attempts: 3 });
      expect((await refused("wts")) - before).toBe(3);
      // Nothing was changed: reads fall back to PostgreSQL, which still holds 0.
      expect(await sc.keyspace<number>("aside").get("none")).toBeNull();
    } finally {
      await sc.close();
    }
  });

  it("stops when the next wait would pass the retry budget", async () => {
    const sc = new SidecacheClient({
      url: quick.url,
      retry: { retries: 100, budgetMs: 500, baseDelayMs: 200, maxDelayMs: 200 },
    });
    try {
      const before = await refused("wts");
      const started = Date.now();
      const err = await failure(sc.keyspace("wts").put("k", 2));
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.attempts).toBeGreaterThanOrEqual(3);
      expect(err.attempts).toBeLessThan(100);
      expect((await refused("wts")) - before).toBe(err.attempts);
      // waits of at most 200 ms each, at most 500 ms of them, plus each attempt's own time
      expect(elapsed).toBeLessThan(500 + err.attempts * 400);
    } finally {
      await sc.close();
    }
  });

  it("a write retried through the outage is taken once Redis is back", async () => {
    const sc = new SidecacheClient({
      url: quick.url,
      timeoutMs: 20_000,
      retry: { retries: 100, budgetMs: 15_000, baseDelayMs: 100, maxDelayMs: 300 },
    });
    try {
      const before = await refused("wts");
      const restart = new Promise((r) => setTimeout(r, 600)).then(() => redis.start());
      const w = await sc.keyspace<number>("wts").put("k", 3);
      await restart;
      expect((await refused("wts")) - before).toBeGreaterThanOrEqual(1);
      expect(await sc.keyspace<number>("wts").get("k")).toMatchObject({ value: 3, version: w.version });
    } finally {
      await sc.close();
    }
  });
});

describe("deadlines: Redis frozen (SIGSTOP)", () => {
  let pid = 0;
  beforeAll(async () => {
    // Wait until the daemon reads from Redis again (it stops trusting a cache that went away until a
    // repair sweep has run), so that the reads below meet the frozen Redis. The Redis restart above
    // makes the first write wait about a second for the cache, past this daemon's 400 ms deadline.
    const sc = new SidecacheClient({ url: deadline.url });
    await until("a write within the deadline", () =>
      sc
        .keyspace("slow")
        .put("warm", 1)
        .then(
          () => true,
          (e: unknown) => {
            if (e instanceof TimeoutError && e.status === 504) return false;
            throw e;
          },
        ),
    );
    await until("reads hit the cache", async () => (await sc.keyspace("slow").get("warm"))?.cache === "HIT");
    await sc.close();
    const direct = new Redis(redis.url);
    pid = Number(/process_id:(\d+)/.exec(await direct.info("server"))![1]);
    direct.disconnect();
    process.kill(pid, "SIGSTOP");
  });
  afterAll(() => {
    if (pid) process.kill(pid, "SIGCONT");
  });

  it("504 timeout: the daemon's deadline passed; not retried", async () => {
    const sc = new SidecacheClient({ url: deadline.url });
    try {
      const started = Date.now();
      const err = await failure(sc.keyspace("slow").get("k"));
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err).toMatchObject({ code: "timeout", status: 504, attempts: 1 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    } finally {
      await sc.close();
    }
  });

  it("the client's own deadline aborts the request: TimeoutError with status 0", async () => {
    const sc = new SidecacheClient({ url: deadline.url, timeoutMs: 150 });
    try {
      const started = Date.now();
      const err = await failure(sc.keyspace("slow").get("k"));
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err).toMatchObject({ code: "timeout", status: 0 });
      expect(elapsed).toBeGreaterThanOrEqual(145);
      expect(elapsed).toBeLessThan(390);
      // A call's own timeoutMs overrides the client's.
      const err2 = await failure(sc.keyspace("slow").get("k", { timeoutMs: 50 }));
      expect(err2).toMatchObject({ code: "timeout", status: 0 });
    } finally {
      await sc.close();
    }
  });

  it("the deadline covers retries and their waits", async () => {
    const sc = new SidecacheClient({
      url: quick.url,
      timeoutMs: 1000,
      retry: { retries: 100, budgetMs: 60_000, baseDelayMs: 100, maxDelayMs: 100 },
    });
    try {
      const started = Date.now();
      const err = await failure(sc.keyspace("wts").put("frozen", 1));
      expect(Date.now() - started).toBeLessThan(1200);
      expect(err.code === "timeout" || err.code === "backend_unavailable").toBe(true);
    } finally {
      await sc.close();
    }
  });

  it("an AbortSignal aborts the call with its reason", async () => {
    const sc = new SidecacheClient({ url: deadline.url });
    try {
      const stop = new Error("the user left");
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(stop), 100);
      const started = Date.now();
      await expect(sc.keyspace("slow").get("k", { signal: ctl.signal })).rejects.toBe(stop);
      expect(Date.now() - started).toBeLessThan(390);
    } finally {
      await sc.close();
    }
  });
});

describe("503 overloaded: the daemon at its connection limit", () => {
  async function hold(): Promise<net.Socket> {
    const socket = net.connect(busy.port, "127.0.0.1");
    await once(socket, "connect");
    // The daemon counts the connection when it accepts it: let it.
    await new Promise((r) => setTimeout(r, 50));
    return socket;
  }

  it("answers 503 overloaded with Retry-After", async () => {
    const held = await hold();
    const sc = new SidecacheClient({ url: busy.url, retry: false });
    try {
      const err = await failure(sc.keyspace("busy").get("k"));
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err).toMatchObject({ code: "overloaded", status: 503, retryAfterMs: 1000, attempts: 1 });
    } finally {
      held.destroy();
      await sc.close();
    }
  });

  it("the client waits Retry-After, and the retry is served once a connection is free", async () => {
    const held = await hold();
    const sc = new SidecacheClient({ url: busy.url });
    try {
      setTimeout(() => held.destroy(), 300);
      const started = Date.now();
      expect(await sc.keyspace("busy").get("k")).toBeNull();
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    } finally {
      held.destroy();
      await sc.close();
    }
  });
});

describe("nothing listening", () => {
  it("a refused connection is a ConnectionError, retried within the budget", async () => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r));
    const sc = new SidecacheClient({
      url: `http://127.0.0.1:${port}`,
      retry: { retries: 2, baseDelayMs: 10 },
    });
    try {
      const err = await failure(sc.keyspace("x").put("k", 1));
      expect(err).toBeInstanceOf(ConnectionError);
      expect(err).toMatchObject({ code: "connection_failed", status: 0, refused: true, attempts: 3 });
      // An AbortSignal also ends a wait between attempts. The backoff's full jitter would sometimes draw
      // a wait shorter than the 100 ms before the abort: it draws the whole 5 s here.
      const jitter = vi.spyOn(Math, "random").mockReturnValue(1);
      const ctl = new AbortController();
      const stop = new Error("enough");
      setTimeout(() => ctl.abort(stop), 100);
      const started = Date.now();
      const slow = sc.keyspace("x").get("k", {
        signal: ctl.signal,
        retry: { baseDelayMs: 5000, maxDelayMs: 5000, retries: 1, budgetMs: 10_000 },
      });
      await expect(slow).rejects.toBe(stop);
      expect(Date.now() - started).toBeLessThan(1000);
      jitter.mockRestore();
    } finally {
      vi.restoreAllMocks();
      await sc.close();
    }
  });
});
