/**
 * `npm run bench:client` — what the TypeScript client costs on a GET hit, against plain undici
 * `request()` over the same kind of pool, in the same run: the daemon pinned to one core, this process
 * (the load) to the other, rounds alternated so that both meet the same machine. Prints requests per
 * second and the load process's CPU time per request, each as a ratio to plain undici.
 *
 *   --seconds N   length of each round (default 4)
 *   --rounds N    rounds per variant (default 5)
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import pg from "pg";
import { Redis } from "ioredis";
import { Pool, request } from "undici";
import { SidecacheClient } from "../client/src/index.js";
import { PG_URL, REDIS_URL } from "./lib/backends.js";
import { newTag } from "./lib/context.js";
import { pinPid } from "./lib/proc.js";
import { startDaemon } from "./lib/servers.js";
import { VALUE_100B } from "./sections/hitpath.js";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "4" }, rounds: { type: "string", default: "5" } },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONCURRENCY = 32;
const KEY = "user-42";

interface Round {
  rps: number;
  cpuUsPerRequest: number;
}

/** Runs `one` from CONCURRENCY loops for `seconds`; requests per second and this process's CPU per request. */
async function load(one: () => Promise<void>, seconds: number): Promise<Round> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        await one();
        n++;
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { rps: n / wall, cpuUsPerRequest: (cpu.user + cpu.system) / n };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function main(): Promise<void> {
  const tag = newTag();
  const table = `bench_${tag}_client`;
  const prefix = `bench-${tag}`;
  const pinned = pinPid(process.pid, 1);
  const daemon = await startDaemon(
    {
      cachePrefix: prefix,
      storeUrl: PG_URL,
      pool: 10,
      keyspaces: { users: { strategy: "cache-aside", table, ttl: "1h" } },
    },
    { core: 0 },
  );
  const path = `/v1/kv/users/${KEY}`;
  const url = `${daemon.base}${path}`;
  const plainPool = new Pool(daemon.base, { connections: CONCURRENCY });
  const clientPool = new Pool(daemon.base, { connections: CONCURRENCY });
  const client = new SidecacheClient({ url: daemon.base, dispatcher: clientPool });
  const users = client.keyspace<Record<string, unknown>>("users");
  const noDeadline = new SidecacheClient({ url: daemon.base, dispatcher: clientPool, timeoutMs: 0 });
  const usersNoDeadline = noDeadline.keyspace<Record<string, unknown>>("users");
  try {
    await users.put(KEY, JSON.parse(VALUE_100B));
    await users.get(KEY);
    if ((await users.get(KEY))?.cache !== "HIT") throw new Error("the key is not cached");

    // Each variant reads the value and parses it, as an application would.
    const variants: Record<string, () => Promise<void>> = {
      "undici request()": async () => {
        const res = await request(url, { dispatcher: plainPool });
        const value = await res.body.json();
        if (res.statusCode !== 200 || value === null) throw new Error(`status ${res.statusCode}`);
      },
      "undici Pool.request()": async () => {
        const res = await plainPool.request({ path, method: "GET" });
        const value = await res.body.json();
        if (res.statusCode !== 200 || value === null) throw new Error(`status ${res.statusCode}`);
      },
      "client get()": async () => {
        if ((await users.get(KEY)) === null) throw new Error("absent");
      },
      "client get(), no deadline": async () => {
        if ((await usersNoDeadline.get(KEY)) === null) throw new Error("absent");
      },
    };
    const names = Object.keys(variants);
    for (const name of names) await load(variants[name]!, 1); // warm-up: connections, JIT
    const rounds = new Map<string, Round[]>(names.map((n) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
      // rotate the order so that no variant always runs first or last
      for (let i = 0; i < names.length; i++) {
        const name = names[(r + i) % names.length]!;
        rounds.get(name)!.push(await load(variants[name]!, SECONDS));
      }
    }

    const base = rounds.get(names[0]!)!;
    const baseRps = median(base.map((x) => x.rps));
    const baseCpu = median(base.map((x) => x.cpuUsPerRequest));
    console.log(
      `load average of the machine (2 cores) at the end: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}; other work on the machine slows every variant alike`,
    );
    console.log(
      `GET hit, ${CONCURRENCY} concurrent requests, ${ROUNDS} rounds of ${SECONDS}s per variant` +
        `${pinned ? ", daemon on core 0, load on core 1" : " (not pinned)"}; medians:`,
    );
    console.log("| variant | req/s | ratio | load CPU µs/request | ratio |");
    console.log("|---|---|---|---|---|");
    for (const name of names) {
      const rps = median(rounds.get(name)!.map((x) => x.rps));
      const cpu = median(rounds.get(name)!.map((x) => x.cpuUsPerRequest));
      console.log(
        `| ${name} | ${Math.round(rps)} | ${(rps / baseRps).toFixed(3)} | ${cpu.toFixed(1)} | ${(cpu / baseCpu).toFixed(3)} |`,
      );
    }
    const clientRps = median(rounds.get("client get()")!.map((x) => x.rps));
    const change = (clientRps / baseRps - 1) * 100;
    console.log(
      `client get() / undici request(): ${(clientRps / baseRps).toFixed(3)} ` +
        `(${Math.abs(change).toFixed(1)}% ${change < 0 ? "fewer" : "more"} requests per second)`,
    );
  } finally {
    await plainPool.close();
    await clientPool.close();
    await daemon.stop();
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    await db.query(`drop table if exists ${table}`);
    await db.end();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
}

await main();
