/**
 * The near cache through the client, against two real daemons sharing Redis: `get` reports the tier that
 * answered (DB, L1 from the daemon's memory, L2 from Redis), `skipNear` reads past the daemon's memory
 * (for `get`, `mget` and `update`), and a write through one daemon is read at once through the other.
 * What the near cache served is read from the daemon's metrics.
 */
import { createServer, request, type Server } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "../../test/support/daemon.js";
import { SidecacheClient, type Keyspace } from "../src/index.js";
import { cleanup, metric, until } from "./support.js";

const tag = uniqueTag();
const tables = [`${tag}_users`, `${tag}_plain`];
let a: Daemon;
let b: Daemon;
let scA: SidecacheClient;
let scB: SidecacheClient;

interface User {
  name: string;
  n: number;
}

beforeAll(async () => {
  const yaml = `
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users, near_cache: { max_entries: 1000, ttl: 1m, lease: 1s } }
  plain: { strategy: cache-aside, table: ${tag}_plain }
`;
  [a, b] = [await startDaemon(yaml), await startDaemon(yaml)];
  scA = new SidecacheClient({ url: a.url });
  scB = new SidecacheClient({ url: b.url });
});

afterAll(async () => {
  await scA?.close();
  await scB?.close();
  await a?.stop();
  await b?.stop();
  await cleanup(tag, tables);
});

/** Reads until the daemon answers from its memory (its lease on the invalidation channel runs). */
async function nearly(users: Keyspace<User>, key: string): Promise<void> {
  await until(`${key} from L1`, async () => (await users.get(key))?.tier === "L1");
}

const nearHits = (d: Daemon) => metric(d.url, "sidecache_near_cache_hits_total", { keyspace: "users" });
const nearMisses = (d: Daemon) => metric(d.url, "sidecache_near_cache_misses_total", { keyspace: "users" });

describe("the tier a read came from", () => {
  it("is DB on a miss, L1 from the daemon's memory, L2 from Redis; skipNear reads Redis", async () => {
    const usersA = scA.keyspace<User>("users");
    const usersB = scB.keyspace<User>("users");
    const w = await usersA.put("ada", { name: "Ada", n: 1 });
    const first = await usersB.get("ada");
    expect(first).toMatchObject({
      value: { name: "Ada", n: 1 },
      version: w.version,
      cache: "MISS",
      tier: "DB",
    });
    await nearly(usersB, "ada");

    const hits = await nearHits(b);
    const l1 = await usersB.get("ada");
    expect(l1).toMatchObject({ value: { name: "Ada", n: 1 }, version: w.version, cache: "HIT", tier: "L1" });
    expect(await nearHits(b)).toBe(hits + 1);

    const [hitsBefore, missesBefore] = [await nearHits(b), await nearMisses(b)];
    const l2 = await usersB.get("ada", { skipNear: true });
    expect(l2).toMatchObject({ value: { name: "Ada", n: 1 }, version: w.version, cache: "HIT", tier: "L2" });
    // the near cache was not asked at all
    expect([await nearHits(b), await nearMisses(b)]).toEqual([hitsBefore, missesBefore]);

    // A has not read it yet: its first read comes from Redis, filled by B's
    expect(await usersA.get("ada")).toMatchObject({ cache: "HIT", tier: "L2" });
  });

  it("a write through one daemon is read at once through the other, whose memory held the old value", async () => {
    const usersA = scA.keyspace<User>("users");
    const usersB = scB.keyspace<User>("users");
    await usersA.put("bo", { name: "Bo", n: 1 });
    await nearly(usersB, "bo");
    for (let n = 2; n <= 6; n++) {
      const w = await usersA.put("bo", { name: "Bo", n });
      const read = await usersB.get("bo");
      expect(read).toMatchObject({ value: { name: "Bo", n }, version: w.version });
      expect(read!.tier).not.toBe("L1");
    }
  });

  it("a keyspace without a near cache answers L2 for a hit, DB for a miss", async () => {
    const plain = scA.keyspace<User>("plain");
    await plain.put("cy", { name: "Cy", n: 1 });
    expect(await plain.get("cy")).toMatchObject({ cache: "MISS", tier: "DB" });
    expect(await plain.get("cy")).toMatchObject({ cache: "HIT", tier: "L2" });
    expect(await plain.get("cy", { skipNear: true })).toMatchObject({ cache: "HIT", tier: "L2" });
  });
});

describe("skipNear", () => {
  it("mget: the near cache serves the keys it holds, and none with skipNear", async () => {
    const usersA = scA.keyspace<User>("users");
    const usersB = scB.keyspace<User>("users");
    const keys = ["m1", "m2", "m3"];
    for (const [i, k] of keys.entries()) await usersA.put(k, { name: k, n: i });
    for (const k of keys) await nearly(usersB, k);
    const want = new Map(keys.map((k, i) => [k, { name: k, n: i }]));

    const hits = await nearHits(b);
    expect(await usersB.mget([...keys, "absent"])).toEqual(new Map([...want, ["absent", null]]));
    expect(await nearHits(b)).toBe(hits + 3);

    const [hitsBefore, missesBefore] = [await nearHits(b), await nearMisses(b)];
    expect(await usersB.mget(keys, { skipNear: true })).toEqual(want);
    expect([await nearHits(b), await nearMisses(b)]).toEqual([hitsBefore, missesBefore]);
  });

  it("update: its reads skip the near cache when asked", async () => {
    const usersA = scA.keyspace<User>("users");
    const usersB = scB.keyspace<User>("users");
    await usersA.put("up", { name: "Up", n: 0 });
    await nearly(usersB, "up");
    const [hitsBefore, missesBefore] = [await nearHits(b), await nearMisses(b)];
    const done = await usersB.update("up", (cur) => ({ ...cur!, n: cur!.n + 1 }), { skipNear: true });
    expect(done.value).toEqual({ name: "Up", n: 1 });
    expect([await nearHits(b), await nearMisses(b)]).toEqual([hitsBefore, missesBefore]);
    expect((await usersA.get("up"))!.value).toEqual({ name: "Up", n: 1 });
  });
});

describe("a daemon that does not send X-Cache-Tier", () => {
  let proxy: Server;
  let via: SidecacheClient;

  beforeAll(async () => {
    // forwards to daemon A and drops X-Cache-Tier, as a daemon from before the near cache would answer
    proxy = createServer((req, res) => {
      const target = new URL(a.url);
      const out = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          const headers = { ...up.headers };
          delete headers["x-cache-tier"];
          res.writeHead(up.statusCode ?? 502, headers);
          up.pipe(res);
        },
      );
      req.pipe(out);
    });
    proxy.listen(0, "127.0.0.1");
    await once(proxy, "listening");
    via = new SidecacheClient({ url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
    return async () => {
      await via.close();
      proxy.close();
    };
  });

  it("gets the tier from X-Cache: DB for a MISS, L2 for a HIT, as the daemon itself says", async () => {
    const plain = via.keyspace<User>("plain");
    await plain.put("dee", { name: "Dee", n: 1 });
    expect(await plain.get("dee")).toMatchObject({ cache: "MISS", tier: "DB" });
    expect(await plain.get("dee")).toMatchObject({ cache: "HIT", tier: "L2" });
    expect(await scA.keyspace<User>("plain").get("dee")).toMatchObject({ cache: "HIT", tier: "L2" });
  });
});
