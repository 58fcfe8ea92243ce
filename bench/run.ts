/**
 * `npm run bench` — builds, then measures sidecache against real Redis and PostgreSQL and writes
 * bench/results/{results.json, bench.md, chart.svg} (and the figures of docs/benchmarks.md).
 *
 *   --quick          a short run (under a minute); written to bench/results/quick/
 *   --soak           adds a 10-minute mixed-load soak (not part of the default run)
 *   --profile        always profile the hit path with --cpu-prof (otherwise only when sidecache / bare < 0.6)
 *   --only a,b       run only these sections: hit, writes, stampede, near, hitrate, cost, resp, cluster, idle
 *   --out DIR        where to write the results
 *   --render         measure nothing: render bench.md, chart.svg (and docs) again from DIR/results.json
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Backends } from "./lib/backends.js";
import { findRedisPid, newTag, type Context, type Options } from "./lib/context.js";
import { describeMachine, ensureWrk, nproc } from "./lib/machine.js";
import { canPin, pinPid } from "./lib/proc.js";
import type { Results } from "./lib/results.js";
import { ROOT } from "./lib/servers.js";
import { renderMarkdown, updateDocs } from "./report/markdown.js";
import { renderChart } from "./report/svg.js";
import { clusterBench } from "./sections/cluster.js";
import { costSection } from "./sections/cost.js";
import { hitPath } from "./sections/hitpath.js";
import { hitRate } from "./sections/hitrate.js";
import { idleFleet } from "./sections/idle.js";
import { respBench } from "./sections/resp.js";
import { stampede } from "./sections/stampede.js";
import { nearCache } from "./sections/near.js";
import { writes } from "./sections/writes.js";

type Section = "hit" | "writes" | "stampede" | "hitrate" | "cost" | "near" | "resp" | "cluster" | "idle";

function options(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      soak: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      only: { type: "string" },
      out: { type: "string" },
      render: { type: "boolean", default: false },
    },
  });
  const quick = values.quick!;
  return {
    quick,
    soak: values.soak!,
    profile: values.profile!,
    only: values.only?.split(",").map((s) => s.trim()),
    outDir: values.out ?? join(ROOT, quick ? "bench/results/quick" : "bench/results"),
    render: values.render!,
  };
}

async function writeReports(results: Results, outDir: string): Promise<string> {
  const md = renderMarkdown(results);
  writeFileSync(join(outDir, "bench.md"), md);
  writeFileSync(join(outDir, "chart.svg"), renderChart(results));
  if (!results.options.quick && !results.options.only) await updateDocs(join(ROOT, "docs/benchmarks.md"), md);
  return md;
}

async function main(): Promise<void> {
  const opts = options();
  if (opts.render) {
    const results = JSON.parse(readFileSync(join(opts.outDir, "results.json"), "utf8")) as Results;
    await writeReports(results, opts.outDir);
    process.stdout.write(`rendered ${opts.outDir} from results.json\n`);
    return;
  }
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const started = Date.now();
  const wrk = ensureWrk(log);
  const tool = wrk ? "wrk" : "autocannon";
  // nproc counts the cores this process may use: ask before pinning it.
  const cores = nproc();
  const backends = await Backends.connect();
  const versions = await backends.versions();
  // Two cores or more: servers under test on core 0, the load generator (and this process, which runs
  // the PostgreSQL proxies) on core 1. Redis and PostgreSQL are not ours to pin and float.
  const pinned = cores >= 2 && canPin();
  const serverCore = pinned ? 0 : undefined;
  const loadCore = pinned ? 1 : undefined;
  if (pinned) pinPid(process.pid, 1);
  const pinning = pinned
    ? "taskset: servers under test on core 0; load generator and the bench process (PostgreSQL proxies) on core 1; Redis and PostgreSQL unpinned"
    : "not pinned (one core, or no taskset)";
  const machine = describeMachine(wrk ?? "autocannon (wrk not available)", pinning, versions, cores);
  log(
    `sidecache bench${opts.quick ? " --quick" : ""}: ${machine.nproc} cores (${machine.cpuModel}), node ${machine.node}, ` +
      `${machine.loadGenerator}, ${machine.redis}, ${machine.postgres}, load average ${machine.loadAvgAtStart}`,
  );
  const ctx: Context = {
    options: opts,
    tool,
    serverCore,
    loadCore,
    backends,
    redisPid: findRedisPid(6379),
    log,
    tag: newTag,
    tables: [],
    prefixes: [],
  };
  const results: Results = {
    machine,
    options: { quick: opts.quick, soak: opts.soak, profile: opts.profile, only: opts.only },
    startedAt: new Date(started).toISOString(),
    failed: {},
  };
  const wanted = (s: string) => !opts.only || opts.only.includes(s);
  const run = async (name: Section, fn: () => Promise<unknown>) => {
    if (!wanted(name)) return;
    log(`\n== ${name}`);
    try {
      (results as unknown as Record<string, unknown>)[name] = await fn();
    } catch (err) {
      results.failed[name] = err instanceof Error ? (err.stack ?? err.message) : String(err);
      log(`  ${name} failed: ${results.failed[name]}`);
    }
  };
  try {
    await run("hit", () => hitPath(ctx));
    await run("writes", () => writes(ctx));
    await run("stampede", () => stampede(ctx));
    await run("near", () => nearCache(ctx));
    await run("hitrate", () => hitRate(ctx));
    await run("cost", () => costSection(ctx, results));
    await run("resp", () => respBench(ctx));
    await run("cluster", () => clusterBench(ctx));
    await run("idle", () => idleFleet(ctx));
  } finally {
    for (const p of ctx.prefixes) await backends.deleteRedisPrefix(p).catch(() => 0);
    await backends.dropTables(ctx.tables);
    await backends.close();
  }
  results.finishedAt = new Date().toISOString();
  results.wallS = Math.round((Date.now() - started) / 1000);
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(join(opts.outDir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  const md = await writeReports(results, opts.outDir);
  log(`\n${md}`);
  log(`results in ${opts.outDir} (${results.wallS}s)`);
  if (Object.keys(results.failed).length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
