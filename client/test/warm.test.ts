/**
 * Cache warming through the client, against a real daemon with auth: `warm()` starts a run and answers its
 * progress, `warmProgress()` follows it (null before any run), the keys it warmed are then read as hits
 * and the others are not; bad requests, unknown keyspaces and tokens without admin come back as their
 * error classes and start nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "../../test/support/daemon.js";
import {
  BadRequestError,
  ForbiddenError,
  NotFoundError,
  SidecacheClient,
  type WarmProgress,
} from "../src/index.js";
import { cleanup, until } from "./support.js";

const tag = uniqueTag();
const tables = [`${tag}_users`, `${tag}_plain`];
const ADMIN = `admin-${tag}-0123456789`;
const APP = `app-${tag}-0123456789`;
let daemon: Daemon;
let sc: SidecacheClient;
let app: SidecacheClient;

beforeAll(async () => {
  daemon = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
auth:
  tokens:
    - { name: admin, token: "${ADMIN}", allow: { "*": admin } }
    - { name: app, token: "${APP}", allow: { users: write, plain: write } }
keyspaces:
  users:
    strategy: cache-aside
    table: ${tag}_users
    warm: { from: query, query: "select key from ${tag}_users where key like 'w%' order by key", on_start: false, rate: 10000 }
  plain: { strategy: cache-aside, table: ${tag}_plain }
`);
  sc = new SidecacheClient({ url: daemon.url, token: ADMIN });
  app = new SidecacheClient({ url: daemon.url, token: APP });
});

afterAll(async () => {
  await sc?.close();
  await app?.close();
  await daemon?.stop();
  await cleanup(tag, tables);
});

async function finished(keyspace: string): Promise<WarmProgress> {
  let last: WarmProgress | null = null;
  await until(`warming of ${keyspace}`, async () => {
    last = await sc.warmProgress(keyspace);
    return last !== null && last.state !== "running";
  });
  return last!;
}

describe("warm()", () => {
  it("warms the keys of the keyspace's query: they are then hits, the others misses", async () => {
    const users = app.keyspace<{ n: number }>("users");
    await app
      .keyspace("users")
      .mset(Object.fromEntries([...Array(20).keys()].map((i) => [`w${i}`, { n: i }])));
    await users.mset({ x1: { n: 1 }, x2: { n: 2 } });
    expect(await sc.warmProgress("users")).toBeNull();

    const started = await sc.keyspace("users").warm();
    expect(started).toMatchObject({
      keyspace: "users",
      from: "query",
      state: "running",
      warmed: 0,
      rate: 10000,
    });
    expect(Date.parse(started.started_at)).toBeGreaterThan(Date.now() - 60_000);

    const done = await finished("users");
    expect(done).toMatchObject({ state: "done", from: "query", total: 20, warmed: 20, found: 20 });
    expect(done.error).toBeUndefined();
    expect(Date.parse(done.finished_at!)).toBeGreaterThanOrEqual(Date.parse(done.started_at));

    expect(await users.get("w7")).toMatchObject({ value: { n: 7 }, cache: "HIT", tier: "L2" });
    expect(await users.get("x1")).toMatchObject({ value: { n: 1 }, cache: "MISS", tier: "DB" });
  });

  it("takes a limit and a source; a keyspace without a warm: section warms from hot keys", async () => {
    const limited = await sc.warm("users", { limit: 5 });
    expect(limited.state).toBe("running");
    expect(await finished("users")).toMatchObject({ state: "done", total: 5, warmed: 5 });
    expect(await sc.keyspace("users").warmProgress()).toMatchObject({ total: 5 });

    expect(await sc.warmProgress("plain")).toBeNull();
    const hot = await sc.warm("plain", { from: "hot", limit: 3 });
    expect(hot).toMatchObject({ keyspace: "plain", from: "hot" });
    const done = await finished("plain");
    expect(done.state).toBe("done");
    expect(done.total).toBeLessThanOrEqual(3);
  });

  it("refuses what can not be warmed, and tokens without admin, starting nothing", async () => {
    const before = [await sc.warmProgress("users"), await sc.warmProgress("plain")];
    expect(before.map((p) => p?.state)).toEqual(["done", "done"]);
    const bad = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(BadRequestError);
      expect(e).toMatchObject({ code: "invalid_request", status: 400 });
    };
    await bad(sc.warm("plain")); // no warm: section and no source
    await bad(sc.warm("plain", { from: "query" })); // no query to warm from
    await bad(sc.warm("users", { limit: 0 }));
    await bad(sc.warm("users", { from: "cold" } as never));
    await bad(sc.warm("users", { keys: ["w1"] } as never));

    const unknown = await sc.warm("nope").catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(NotFoundError);
    expect(unknown).toMatchObject({ code: "unknown_keyspace", status: 404 });
    // unknown_keyspace is an error; only not_found (no run yet) is null
    await expect(sc.warmProgress("nope")).rejects.toMatchObject({ code: "unknown_keyspace" });

    for (const p of [app.warm("users"), app.warmProgress("users")]) {
      const e = await p.catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ForbiddenError);
      expect(e).toMatchObject({ code: "forbidden", status: 403 });
    }
    expect([await sc.warmProgress("users"), await sc.warmProgress("plain")]).toEqual(before);
  });
});
