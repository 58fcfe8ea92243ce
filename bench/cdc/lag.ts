/**
 * CDC lag under direct updates: plain SQL UPDATEs (version untouched, as an outside writer does them)
 * at a fixed rate, against a daemon reading the slot. The lag of each update is measured from outside:
 * from the moment its COMMIT is acknowledged to the writer to the moment Redis reports the tombstone on
 * its key (keyspace notifications of a private Redis, received by this process: one clock). The daemon's
 * own histogram (commit timestamp to applied) is read too, and its CPU time per 1,000 changes, against
 * the same daemon idle for as long.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { cpuSeconds, spawnPinned, type Child } from "../lib/proc.js";
import { ROOT } from "../lib/servers.js";

export interface LagResult {
  targetPerS: number;
  achievedPerS: number;
  updates: number;
  seen: number;
  /** outside: commit acknowledged → tombstone in Redis, ms */
  lagMs: { p50: number; p90: number; p99: number; max: number; min: number };
  /** the daemon's sidecache_cdc_lag_seconds: count and mean (commit timestamp → applied) */
  daemon: { count: number; meanMs: number; p99UpperMs: number };
  /** writer side: UPDATE round trip, ms */
  commitMs: { p50: number; p99: number };
  /** daemon CPU seconds: under load (until the last change was seen), idle for durationS, and per 1,000 changes net of idle */
  cpu: { loadS: number; perThousandChanges: number; idleS: number; seconds: number };
}

export interface LagSetup {
  pgUrl: string;
  redisUrl: string;
  prefix: string;
  table: string;
  durationS: number;
  ratePerS: number;
  daemonCore?: number;
  log: (line: string) => void;
}

const ROWS = 30_000;
const WRITERS = 4;

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

async function startDaemon(s: LagSetup): Promise<{ child: Child; base: string }> {
  const dir = mkdtempSync(join(tmpdir(), "sidecache-cdc-bench-"));
  const file = join(dir, "sidecache.yaml");
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  writeFileSync(
    file,
    [
      "server:",
      "  host: 127.0.0.1",
      `  port: ${port}`,
      "cache:",
      `  url: ${s.redisUrl}`,
      `  prefix: ${s.prefix}`,
      "store:",
      `  url: ${s.pgUrl}`,
      "  cdc:",
      "    slot: bench_slot",
      "    publication: bench_pub",
      "checker:",
      "  enabled: false",
      "log:",
      "  level: warn",
      "keyspaces:",
      "  bench:",
      "    strategy: cache-aside",
      `    table: ${s.table}`,
      "",
    ].join("\n"),
  );
  // SIDECACHE_BENCH_CPU_PROF=DIR: the daemon writes a CPU profile there when it stops
  const profDir = process.env.SIDECACHE_BENCH_CPU_PROF;
  const child = spawnPinned(s.daemonCore, process.execPath, [
    ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
    join(ROOT, "dist/cmd/sidecache.js"),
    "--config",
    file,
  ]);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { child, base };
    if (child.child.exitCode !== null || Date.now() > deadline) {
      await child.stop("SIGKILL");
      throw new Error(`the daemon did not start:\n${child.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Histogram {
  /** upper bound → cumulative count */
  buckets: Map<number, number>;
  count: number;
  sum: number;
}

/** A Prometheus histogram with no labels, from the daemon's /metrics. */
async function histogram(base: string, name: string): Promise<Histogram> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const h: Histogram = { buckets: new Map(), count: 0, sum: 0 };
  for (const line of text.split("\n")) {
    const b = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)`).exec(line);
    if (b) h.buckets.set(b[1] === "+Inf" ? Infinity : Number(b[1]), Number(b[2]));
    if (line.startsWith(`${name}_count `)) h.count = Number(line.split(" ")[1]);
    if (line.startsWith(`${name}_sum `)) h.sum = Number(line.split(" ")[1]);
  }
  return h;
}

/** Count, mean and the p99's bucket bound of what was observed between two readings. */
function observedBetween(a: Histogram, b: Histogram): LagResult["daemon"] {
  const count = b.count - a.count;
  const sum = b.sum - a.sum;
  let p99 = NaN;
  for (const [le, n] of b.buckets) {
    if (n - (a.buckets.get(le) ?? 0) >= 0.99 * count) {
      p99 = le;
      break;
    }
  }
  return { count, meanMs: count ? round((sum / count) * 1000) : NaN, p99UpperMs: p99 * 1000 };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function cdcLag(s: LagSetup): Promise<LagResult> {
  const admin = new pg.Client({ connectionString: s.pgUrl });
  admin.on("error", (err) => s.log(`admin connection: ${err.message}`));
  await admin.connect();
  const redis = new Redis(s.redisUrl);
  redis.on("error", (err: Error) => s.log(`redis: ${err.message}`));
  await redis.config("SET", "notify-keyspace-events", "K$");
  const { child, base } = await startDaemon(s);
  try {
    await admin.query(
      `insert into ${s.table} (key, value) select 'k' || g, '{"n":0}' from generate_series(0, ${ROWS - 1}) as g`,
    );
    // the seed's invalidations applied, then the daemon idle for as long as the load will last
    const LAG = "sidecache_cdc_lag_seconds";
    await waitFor(async () => (await histogram(base, LAG)).count >= 1);
    await new Promise((r) => setTimeout(r, 1_000));
    const idleFrom = cpuSeconds(child.pid);
    await new Promise((r) => setTimeout(r, s.durationS * 1000));
    const idleS = cpuSeconds(child.pid) - idleFrom;

    const sub = new Redis(s.redisUrl);
    sub.on("error", (err: Error) => s.log(`redis subscriber: ${err.message}`));
    const seenAt = new Map<string, number>();
    const keyOf = `__keyspace@0__:${s.prefix}:kv:{bench}:`;
    await sub.psubscribe(`${keyOf}*`);
    sub.on("pmessage", (_p, channel, event) => {
      if (event === "set") seenAt.set(channel.slice(keyOf.length), performance.now());
    });
    const writers = await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        const c = new pg.Client({ connectionString: s.pgUrl });
        c.on("error", (err) => s.log(`writer connection: ${err.message}`));
        await c.connect();
        return c;
      }),
    );
    const acked = new Map<string, number>();
    const commits: number[] = [];
    const total = s.ratePerS * s.durationS;
    const before = await histogram(base, LAG);
    const cpuFrom = cpuSeconds(child.pid);
    const started = performance.now();
    // Each writer sends its share of the schedule, one statement at a time, never ahead of time.
    await Promise.all(
      writers.map(async (w, n) => {
        for (let i = n; i < total; i += WRITERS) {
          const wait = started + (i * 1000) / s.ratePerS - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
          const key = `k${i % ROWS}`;
          const sent = performance.now();
          await w.query(`update ${s.table} set value = $2 where key = $1`, [key, JSON.stringify({ n: i })]);
          const now = performance.now();
          acked.set(key, now);
          commits.push(now - sent);
        }
      }),
    );
    const wall = (performance.now() - started) / 1000;
    // every update seen (at most 10 s more): the slowest ones count too
    const seenDeadline = performance.now() + 10_000;
    while (performance.now() < seenDeadline && [...acked.keys()].some((k) => !seenAt.has(k))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // the daemon's CPU over the load and until the last was seen, less what it uses idle for as long
    const cpuLoad = cpuSeconds(child.pid) - cpuFrom;
    const elapsedS = (performance.now() - started) / 1000;
    const loadS = cpuLoad - idleS * (elapsedS / s.durationS);
    const lags: number[] = [];
    for (const [key, at] of acked) {
      const seen = seenAt.get(key);
      if (seen !== undefined) lags.push(seen - at);
    }
    lags.sort((x, y) => x - y);
    commits.sort((x, y) => x - y);
    const after = await histogram(base, LAG);
    await sub.quit();
    await Promise.all(writers.map((w) => w.end()));
    const result: LagResult = {
      targetPerS: s.ratePerS,
      achievedPerS: round(total / wall, 1),
      updates: total,
      seen: lags.length,
      lagMs: {
        p50: round(quantile(lags, 0.5)),
        p90: round(quantile(lags, 0.9)),
        p99: round(quantile(lags, 0.99)),
        max: round(lags[lags.length - 1] ?? NaN),
        min: round(lags[0] ?? NaN),
      },
      daemon: observedBetween(before, after),
      commitMs: { p50: round(quantile(commits, 0.5)), p99: round(quantile(commits, 0.99)) },
      cpu: {
        loadS: round(cpuLoad, 3),
        perThousandChanges: round((loadS / total) * 1000, 4),
        idleS: round(idleS, 3),
        seconds: s.durationS,
      },
    };
    return result;
  } finally {
    await child.stop("SIGTERM");
    await admin.query(`select pg_drop_replication_slot('bench_slot')`).catch(() => {});
    await admin.end();
    redis.disconnect();
  }
}
