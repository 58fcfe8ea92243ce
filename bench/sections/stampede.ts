/**
 * The stampede: 1,000 connections opened first, then one GET of the same key written on every one of them
 * in the same tick. PostgreSQL reads of that key are counted on the wire by a pass-through proxy.
 * - a cold key: sidecache (single flight) against the naive in-app cache-aside;
 * - a hot key whose entry just expired, and a key just written (its entry a tombstone), behind a slow
 *   PostgreSQL (20 ms each way): sidecache alone, goal one read.
 */
import { connect, type Socket } from "node:net";
import { PG_TARGET, REDIS_URL } from "../lib/backends.js";
import { round, sleep, type Context } from "../lib/context.js";
import { PgProxy } from "../lib/pgproxy.js";
import { call, metrics, metricSum, startDaemon, startInApp, type Server } from "../lib/servers.js";
import { VALUE_100B } from "./hitpath.js";

export interface StampedeTrial {
  server: "sidecache" | "in-app cache-aside (naive)";
  /** what the key's entry held: nothing, an expired value, a write's tombstone */
  case?: "cold" | "expired" | "written";
  key: string;
  /** PostgreSQL reads of the key, counted on the wire */
  pgReads: number;
  ok: number;
  other: number;
  /** time from the first request written to the last answer */
  wallMs: number;
  p50Ms: number;
  maxMs: number;
  /** sidecache only: reads that waited on the load in flight */
  coalesced?: number;
}

export interface StampedeResult {
  concurrency: number;
  trials: StampedeTrial[];
  /** the expired and just-written cases, behind the slow proxy */
  hotTrials?: StampedeTrial[];
  /** pg_stat_user_tables seq_scan + idx_scan of the table over the whole section, against the wire count */
  pgStatScans: number;
  wireSelects: number;
}

async function openSockets(port: number, n: number): Promise<Socket[]> {
  const out: Socket[] = [];
  // In batches: a burst of 1,000 SYNs would overflow the listen backlog (511) and wait for retransmits.
  for (let i = 0; i < n; i += 200) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(200, n - i) },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const s = connect(port, "127.0.0.1", () => resolve(s));
            s.setNoDelay(true);
            s.once("error", reject);
          }),
      ),
    );
    out.push(...batch);
  }
  return out;
}

/** Writes the request on every socket at once; resolves each answer's status and latency. */
async function burst(port: number, path: string, n: number) {
  const sockets = await openSockets(port, n);
  const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  const t0 = performance.now();
  const answers = sockets.map(
    (s) =>
      new Promise<{ status: number; ms: number }>((resolve) => {
        let buf = "";
        const finish = () => {
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0);
          resolve({ status, ms: performance.now() - t0 });
          s.destroy();
        };
        s.on("data", (d: Buffer) => {
          buf += d.toString();
          const head = buf.indexOf("\r\n\r\n");
          const len = /content-length: (\d+)/i.exec(buf);
          if (head >= 0 && len && buf.length - head - 4 >= Number(len[1])) finish();
        });
        s.on("close", () => {
          if (buf) finish();
          else resolve({ status: 0, ms: performance.now() - t0 });
        });
        s.on("error", () => undefined);
      }),
  );
  for (const s of sockets) s.write(request);
  const results = await Promise.all(answers);
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  return {
    ok: results.filter((r) => r.status === 200).length,
    other: results.filter((r) => r.status !== 200).length,
    wallMs: ms[ms.length - 1] ?? 0,
    p50Ms: ms[Math.floor(ms.length / 2)] ?? 0,
    maxMs: ms[ms.length - 1] ?? 0,
  };
}

export async function stampede(ctx: Context): Promise<StampedeResult> {
  const trialsPerServer = ctx.options.quick ? 1 : 3;
  const concurrency = 1000;
  const tag = ctx.tag();
  const table = `bench_${tag}_st`;
  const prefix = `bench-${tag}`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix, `${prefix}-inapp`);
  const proxy = new PgProxy(PG_TARGET, 0, [table]);
  await proxy.listen();
  const servers: Server[] = [];
  const trials: StampedeTrial[] = [];
  try {
    const daemon = await startDaemon(
      {
        cachePrefix: prefix,
        storeUrl: proxy.url,
        pool: 10,
        keyspaces: { st: { strategy: "cache-aside", table, ttl: "1h" } },
      },
      { core: ctx.serverCore },
    );
    servers.push(daemon);
    await ctx.backends.seed(table, "cold-", trialsPerServer * 2, VALUE_100B);
    const inapp = await startInApp(
      {
        redisUrl: REDIS_URL,
        pgUrl: proxy.url,
        pool: 10,
        prefix: `${prefix}-inapp`,
        tables: { st: table },
        ttlMs: 3_600_000,
      },
      ctx.serverCore,
    );
    servers.push(inapp);
    let k = 0;
    for (let t = 0; t < trialsPerServer; t++) {
      for (const [name, s] of [
        ["sidecache", daemon],
        ["in-app cache-aside (naive)", inapp],
      ] as const) {
        const key = `cold-${k++}`;
        const before = proxy.selectsOn(table);
        const m0 = name === "sidecache" ? await metrics(s) : "";
        const b = await burst(s.port, `/v1/kv/st/${key}`, concurrency);
        await sleep(100);
        const reads = proxy.selectsOn(table) - before;
        const trial: StampedeTrial = { server: name, key, pgReads: reads, ...b };
        if (name === "sidecache") {
          const m1 = await metrics(s);
          const c = "sidecache_coalesced_waiters_total";
          trial.coalesced = metricSum(m1, c, { keyspace: "st" }) - metricSum(m0, c, { keyspace: "st" });
        }
        ctx.log(
          `  ${name}: ${concurrency} concurrent GETs of ${key}: ${reads} PostgreSQL reads, ${b.ok} answered 200, ` +
            `${b.other} other, last answer after ${round(b.wallMs, 0)} ms`,
        );
        trials.push(trial);
      }
    }
    // A late check that both answer the value
    const v = await call(`${daemon.base}/v1/kv/st/cold-0`);
    if (v.status !== 200) throw new Error(`sidecache answered ${v.status} after the stampede`);
  } finally {
    await Promise.all(servers.map((s) => s.stop("SIGTERM")));
    await proxy.close();
  }
  const st = await ctx.backends.settledTableStats(table);
  const hotTrials = await hotKeys(ctx, concurrency, trialsPerServer);
  return {
    concurrency,
    trials,
    hotTrials,
    pgStatScans: st.seqScan + st.idxScan,
    wireSelects: proxy.selectsOn(table),
  };
}

/** An expired hot key and a just-written key, each hit by `concurrency` readers at once. */
async function hotKeys(ctx: Context, concurrency: number, rounds: number): Promise<StampedeTrial[]> {
  const tag = ctx.tag();
  const table = `bench_${tag}_hot`;
  const prefix = `bench-${tag}-hot`;
  ctx.tables.push(table);
  ctx.prefixes.push(prefix);
  const proxy = new PgProxy(PG_TARGET, 20, [table]);
  await proxy.listen();
  const trials: StampedeTrial[] = [];
  const daemon = await startDaemon(
    {
      cachePrefix: prefix,
      storeUrl: proxy.url,
      pool: 10,
      keyspaces: { hot: { strategy: "cache-aside", table, ttl: "1s", ttl_jitter: 0 } },
    },
    { core: ctx.serverCore },
  );
  try {
    for (let t = 0; t < rounds; t++) {
      const key = `hot-${t}`;
      const path = `/v1/kv/hot/${key}`;
      const put = (n: number) =>
        call(`${daemon.base}${path}`, {
          method: "PUT",
          body: JSON.stringify({ round: t, n }),
          headers: { "content-type": "application/json" },
        });
      await put(1);
      await call(`${daemon.base}${path}`);
      await sleep(1_100); // past its ttl, kept for the stale grace
      for (const kind of ["expired", "written"] as const) {
        if (kind === "written") await put(2);
        const before = proxy.selectsOn(table);
        const b = await burst(daemon.port, path, concurrency);
        await sleep(100);
        const reads = proxy.selectsOn(table) - before;
        ctx.log(
          `  sidecache, ${kind === "expired" ? "an expired hot key" : "a key just written"}: ${concurrency} concurrent GETs, ` +
            `${reads} PostgreSQL reads, ${b.ok} answered 200, last answer after ${round(b.wallMs, 0)} ms`,
        );
        trials.push({ server: "sidecache", case: kind, key, pgReads: reads, ...b });
      }
    }
  } finally {
    await daemon.stop("SIGTERM");
    await proxy.close();
  }
  return trials;
}
