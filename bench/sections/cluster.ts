/**
 * One daemon on one Redis against the same daemon on a private 3-master Redis Cluster: GET hits spread
 * over 1,000 warm keys (so over every shard), and write-behind writes over 1,000 keys, each measured the
 * same way on both; the ratios are cluster / one Redis in the same run. Both are private servers started
 * here the same way (no persistence), so no other client of the bench's Redis weighs on either.
 */
import { PG_URL } from "../lib/backends.js";
import { startCluster, startSingle } from "../lib/cluster.js";
import { measure, round, type Context } from "../lib/context.js";
import type { LoadSpec } from "../lib/loadgen.js";
import { call, startDaemon, type Server } from "../lib/servers.js";
import { VALUE_100B } from "./hitpath.js";

export interface ClusterRow {
  redis: "one server" | "cluster, 3 masters";
  what: "GET hit" | "write-behind PUT";
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  serverCpuUtil: number;
}

export interface ClusterResult {
  keys: number;
  connections: number;
  durationS: number;
  rows: ClusterRow[];
  /** cluster / one server, requests per second */
  hitRatio: number;
  writeRatio: number;
}

const KEYS = 1000;
const json = { "content-type": "application/json" };

export async function clusterBench(ctx: Context): Promise<ClusterResult> {
  const q = ctx.options.quick;
  const durationS = q ? 5 : 20;
  const warmupS = q ? 2 : 5;
  const connections = 50;
  const rows: ClusterRow[] = [];
  const single = await startSingle();
  const cluster = await startCluster(3).catch(async (err: unknown) => {
    await single.stop();
    throw err;
  });
  try {
    for (const [redis, nodes] of [
      ["one server", undefined],
      ["cluster, 3 masters", cluster.urls],
    ] as const) {
      const tag = ctx.tag();
      const users = `bench_${tag}_cl_users`;
      const events = `bench_${tag}_cl_events`;
      ctx.tables.push(users, events);
      const daemon: Server = await startDaemon(
        {
          cachePrefix: `bench-${tag}`,
          cluster: nodes ? [...nodes] : undefined,
          redisUrl: single.urls[0],
          storeUrl: PG_URL,
          pool: 10,
          keyspaces: {
            users: { strategy: "cache-aside", table: users, ttl: "1h" },
            events: {
              strategy: "write-behind",
              table: events,
              ttl: "1h",
              writeBehind: { flushInterval: "1s", batchSize: 500, maxQueue: 10_000_000 },
            },
          },
        },
        { core: ctx.serverCore },
      );
      try {
        await ctx.backends.seed(users, "k", KEYS, VALUE_100B);
        for (let i = 0; i < KEYS; i += 100) {
          const keys = Array.from({ length: 100 }, (_, j) => `k${i + j}`);
          await call(`${daemon.base}/v1/kv/users/_mget`, {
            method: "POST",
            body: JSON.stringify({ keys }),
            headers: json,
          });
        }
        const probe = await call(`${daemon.base}/v1/kv/users/k7`);
        if (probe.headers.get("x-cache") !== "HIT")
          throw new Error(`not warmed: ${probe.headers.get("x-cache")}`);
        const loads: [ClusterRow["what"], LoadSpec][] = [
          [
            "GET hit",
            {
              base: daemon.base,
              pattern: {
                kind: "hitrate",
                pathPrefix: "/v1/kv/users/",
                hit: 1,
                warmPrefix: "k",
                warmCount: KEYS,
                coldPrefix: "k",
                coldCount: KEYS,
              },
              connections,
              durationS,
              threads: 1,
            },
          ],
          [
            "write-behind PUT",
            {
              base: daemon.base,
              pattern: {
                kind: "put",
                pathPrefix: "/v1/kv/events/",
                keyPrefix: "k",
                keys: KEYS,
                body: VALUE_100B,
              },
              connections,
              durationS,
              threads: 1,
            },
          ],
        ];
        for (const [what, spec] of loads) {
          await measure(ctx, daemon, { ...spec, durationS: warmupS });
          const m = await measure(ctx, daemon, spec);
          const row: ClusterRow = {
            redis,
            what,
            rps: m.load.okRps,
            p50Ms: m.load.p50Ms,
            p99Ms: m.load.p99Ms,
            errors: m.load.errorStatus + m.load.socketErrors,
            serverCpuUtil: m.serverCpuUtil,
          };
          rows.push(row);
          ctx.log(
            `  ${redis}, ${what}: ${round(row.rps, 0)} req/s, p50 ${round(row.p50Ms, 2)} ms, ` +
              `p99 ${round(row.p99Ms, 2)} ms, daemon CPU ${round(row.serverCpuUtil * 100, 0)}%, errors ${row.errors}`,
          );
        }
      } finally {
        await daemon.stop("SIGTERM");
      }
    }
  } finally {
    await Promise.all([cluster.stop(), single.stop()]);
  }
  const rps = (redis: ClusterRow["redis"], what: ClusterRow["what"]) =>
    rows.find((r) => r.redis === redis && r.what === what)?.rps ?? NaN;
  const hitRatio = rps("cluster, 3 masters", "GET hit") / rps("one server", "GET hit");
  const writeRatio = rps("cluster, 3 masters", "write-behind PUT") / rps("one server", "write-behind PUT");
  ctx.log(`  cluster / one Redis: hits ${round(hitRatio, 2)}, write-behind writes ${round(writeRatio, 2)}`);
  return { keys: KEYS, connections, durationS, rows, hitRatio, writeRatio };
}
