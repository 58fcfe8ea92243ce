/**
 * `npm run bench:cdc` — change data capture, measured: the lag under ~1,000 direct updates per second,
 * the daemon's CPU per 1,000 changes, and what the version trigger costs PostgreSQL per change. Runs
 * against a private PostgreSQL (wal_level=logical, pg_stat_statements) and a private Redis (keyspace
 * notifications), both started here; writes bench/results/cdc.json and cdc.md.
 *
 *   --quick        5 s of load and 500 changes per trigger figure instead of 20 s and 2,000
 *   --rate N       direct updates per second (default 1000)
 *   --out DIR      where to write the results
 *   --render       measure nothing: write cdc.md and the figures of docs/cdc.md again from DIR/cdc.json
 *
 * A full run also writes its tables into docs/cdc.md, between the bench markers.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startPrivatePostgres } from "../../test/support/pg-server.js";
import { startPrivateRedis } from "../../test/support/redis-server.js";
import { newTag } from "../lib/context.js";
import { describeMachine, nproc } from "../lib/machine.js";
import { canPin, pinPid } from "../lib/proc.js";
import { ROOT } from "../lib/servers.js";
import { updateDocs } from "../report/markdown.js";
import { cdcLag, type LagResult } from "./lag.js";
import { triggerCost, type TriggerCostResult } from "./trigger-cost.js";

interface CdcResults {
  startedAt: string;
  machine: unknown;
  options: { quick: boolean; rate: number };
  lag?: LagResult;
  trigger?: TriggerCostResult;
  loadAvgAtEnd?: number;
}

function render(r: CdcResults): string {
  const m = r.machine as { nproc: number; cpuModel: string; loadAvgAtStart: number; pinning: string };
  const lines = [
    `# Change data capture, measured`,
    "",
    `Run ${r.startedAt}; ${r.options.quick ? "quick" : "full"} run; ${m.nproc} cores (${m.cpuModel}), ${m.pinning}; ` +
      `load average ${m.loadAvgAtStart} at the start and ${r.loadAvgAtEnd ?? "?"} at the end (the machine is shared).`,
    "",
  ];
  if (r.lag) {
    const l = r.lag;
    lines.push(
      `## Lag under direct updates`,
      "",
      `${l.updates} single-row \`UPDATE\`s (version untouched) from 4 connections at ${l.targetPerS}/s (achieved ${l.achievedPerS}/s); ` +
        `lag = COMMIT acknowledged to the writer → tombstone in Redis, ${l.seen} of ${l.updates} matched.`,
      "",
      "| | p50 | p90 | p99 | max |",
      "| --- | --- | --- | --- | --- |",
      `| CDC lag, ms | ${l.lagMs.p50} | ${l.lagMs.p90} | ${l.lagMs.p99} | ${l.lagMs.max} |`,
      `| baseline: the writer's UPDATE round trip, ms | ${l.commitMs.p50} | | ${l.commitMs.p99} | |`,
      "",
      `The daemon's \`sidecache_cdc_lag_seconds\` (commit timestamp → applied): ${l.daemon.count} transactions, mean ${l.daemon.meanMs} ms, p99 ≤ ${l.daemon.p99UpperMs} ms (bucket bound).`,
      `Without change data capture such an update stays invisible until the entry's TTL (1 h by default) or the next consistency check.`,
      "",
      `Daemon CPU: ${l.cpu.loadS} s over the load (${l.cpu.seconds} s, until the last change was seen); idle for ${l.cpu.seconds} s: ${l.cpu.idleS} s. ` +
        `**${l.cpu.perThousandChanges} CPU s per 1,000 changes** net of idle.`,
      "",
    );
  }
  if (r.trigger) {
    lines.push(
      `## The version trigger's cost to PostgreSQL`,
      "",
      `${r.trigger.changes} changes per figure and round, one at a time on one connection, in chunks of 100 that alternate between the tables, ${r.trigger.rounds} rounds; per change, without the trigger → with it (ratio).`,
      "",
      "| change | WAL bytes | statements executed | µs |",
      "| --- | --- | --- | --- |",
    );
    for (const row of r.trigger.rows) {
      const cell = ([a, b]: [number, number]) => `${a} → ${b} (${a > 0 ? (b / a).toFixed(2) : "—"}×)`;
      lines.push(`| ${row.op} | ${cell(row.walBytes)} | ${cell(row.statements)} | ${cell(row.micros)} |`);
    }
    lines.push(
      "",
      "Statements executed count those run inside the trigger (pg_stat_statements, track = all); WAL with full_page_writes off.",
      "",
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      rate: { type: "string", default: "1000" },
      out: { type: "string" },
      render: { type: "boolean", default: false },
    },
  });
  const quick = values.quick!;
  const rate = Number(values.rate);
  const outDir = values.out ?? join(ROOT, quick ? "bench/results/quick" : "bench/results");
  const log = (line: string) => process.stdout.write(`${line}\n`);
  if (values.render) {
    const saved = JSON.parse(readFileSync(join(outDir, "cdc.json"), "utf8")) as CdcResults;
    await write(saved, outDir);
    log(`rendered ${outDir}/cdc.md and docs/cdc.md from cdc.json`);
    return;
  }
  const cores = nproc();
  const pinned = cores >= 2 && canPin();
  if (pinned) pinPid(process.pid, 1);
  const pinning = pinned ? "daemon on core 0, writers and watcher on core 1" : "not pinned";
  const results: CdcResults = {
    startedAt: new Date().toISOString(),
    machine: describeMachine(
      "pg (this process)",
      pinning,
      { redis: "private", postgres: "private 15" },
      cores,
    ),
    options: { quick, rate },
  };
  log("starting a private PostgreSQL (wal_level=logical) and Redis");
  const server = await startPrivatePostgres({
    wal_level: "logical",
    shared_preload_libraries: "pg_stat_statements",
    "pg_stat_statements.track": "all",
  });
  const redis = await startPrivateRedis();
  const tag = `bench_${newTag()}`;
  try {
    log(`lag: ${rate} direct updates/s for ${quick ? 5 : 20} s`);
    results.lag = await cdcLag({
      pgUrl: server.url,
      redisUrl: redis.url,
      prefix: tag,
      table: `${tag}_lag`,
      durationS: quick ? 5 : 20,
      ratePerS: rate,
      daemonCore: pinned ? 0 : undefined,
      log,
    });
    log(JSON.stringify(results.lag));
    log("trigger cost");
    results.trigger = await triggerCost(server.url, tag, quick ? 500 : 2000);
    log(JSON.stringify(results.trigger));
  } finally {
    await redis.stop().catch(() => {});
    await server.cleanup();
  }
  results.loadAvgAtEnd = Math.round(loadavg()[0]! * 100) / 100;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "cdc.json"), `${JSON.stringify(results, null, 2)}\n`);
  log(await write(results, outDir));
}

async function write(results: CdcResults, outDir: string): Promise<string> {
  const md = render(results);
  writeFileSync(join(outDir, "cdc.md"), md);
  if (!results.options.quick) await updateDocs(join(ROOT, "docs/cdc.md"), md);
  return md;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
