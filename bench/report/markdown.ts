/** bench/results/bench.md: every table, each with how it was measured. Nothing here is typed by hand. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Results } from "../lib/results.js";
import { EXPECTED, type HitRateRow } from "../sections/hitrate.js";
import { renderIdle } from "./idle-markdown.js";
import { renderResp } from "./resp-markdown.js";

const f = (n: number | undefined, d = 0): string =>
  n === undefined || !Number.isFinite(n)
    ? "–"
    : n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (n: number, d = 0) => `${f(n * 100, d)}%`;
const ms = (n: number) => (n >= 100 ? f(n, 0) : n >= 10 ? f(n, 1) : f(n, 2));

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(`# sidecache benchmarks${r.options.quick ? " (quick run)" : ""}`);
  out.push(
    `Measured ${m.date.slice(0, 16).replace("T", " ")} UTC by \`npm run bench${r.options.quick ? " -- --quick" : ""}\` ` +
      `in ${r.wallS ?? "?"} s. Machine: ${m.nproc} cores (\`nproc\`), ${m.cpuModel}, ${m.memGiB} GiB, Linux ${m.kernel}; ` +
      `node ${m.node}; load generator ${m.loadGenerator}; ${m.redis} and ${m.postgres} on the same machine, over loopback. ` +
      `Pinning: ${m.pinning}. 1-minute load average when the run started: ${m.loadAvgAtStart}.`,
  );
  for (const [name, err] of Object.entries(r.failed)) {
    out.push(`**Section ${name} failed:** \`${err.split("\n")[0]}\``);
  }

  const h = r.hit;
  if (h) {
    out.push("## 1. Hit path");
    out.push(
      `One key, warmed in the cache, read over and over: value ${h.valueBytes} bytes of JSON, response body ` +
        `${h.responseBodyBytes} bytes (PostgreSQL's jsonb spacing), the same body bytes from every server: ` +
        `${h.sameBytes ? "yes" : "**no**"}. wrk, ${h.threads} thread, ${h.connections} keep-alive connections, ` +
        `${h.warmupS} s warm-up then ${h.durationS} s measured per server; ${h.rounds} round(s), the servers taking ` +
        `turns; each figure is the median of the rounds. Each server is a child process on core 0; sidecache is the ` +
        `daemon (\`dist/cmd/sidecache.js\`, cache-aside keyspace, Redis cache, PostgreSQL store, pool 10); the in-app ` +
        `server does cache-aside itself with ioredis and pg in its own process; the bare server is node:http ` +
        `answering the same status, headers and body with no work at all. sidecache runs as configured by default ` +
        `(log level info, \`log.access\` off: only failures are logged); the extra row is the same daemon with ` +
        `\`log.access: true\`, one access log line per request written to a file as a service manager would.`,
    );
    out.push(
      table(
        [
          "server",
          "req/s",
          "p50 ms",
          "p99 ms",
          "mean ms",
          "server CPU (one core = 100%)",
          "server CPU s / 10k req",
          "Redis CPU s / 10k req",
          "RSS MiB",
          "load generator CPU",
          "other load on the machine",
        ],
        h.rows.map((x) => [
          x.server,
          f(x.rps),
          ms(x.p50Ms),
          ms(x.p99Ms),
          ms(x.meanMs),
          pct(x.serverCpuUtil),
          f(x.cpuSPer10k, 2),
          f(x.redisCpuSPer10k, 2),
          f(x.rssMiB),
          x.generatorCpuUtil === undefined ? "–" : pct(x.generatorCpuUtil),
          x.otherBusyCores === undefined ? "–" : `${f(x.otherBusyCores, 2)} cores`,
        ]),
      ),
    );
    out.push(
      `"Other load" is every core's busy time (/proc/stat) during the run less the server's, wrk's and Redis's ` +
        `own CPU time: PostgreSQL, the bench process and anything else running on the machine.`,
    );
    const bare = h.rows.find((x) => x.server === "bare node:http")!;
    const sc = h.rows.find((x) => x.server === "sidecache")!;
    const quiet = h.rows.find((x) => x.server === "sidecache, access log on");
    out.push(
      `**sidecache / bare = ${f(h.ratioVsBare, 2)}**; ` +
        `**sidecache / in-app = ${f(h.ratioVsInApp, 2)}**. The load generator is not the bottleneck: the same wrk ` +
        `drives the bare server at ${f(bare.rps)} req/s, ${f(bare.rps / sc.rps, 1)}× what sidecache answers` +
        (bare.generatorCpuUtil !== undefined
          ? `, using ${pct(bare.generatorCpuUtil)} of core 1 to do it`
          : "") +
        `. Daemon RSS after the runs: ${f(sc.rssMiB)} MiB.` +
        (quiet ? ` With the access log on, sidecache / bare = ${f(quiet.rps / bare.rps, 2)}.` : "") +
        (h.nearVsBare !== undefined && h.nearVsInApp !== undefined
          ? ` From the near cache (X-Cache-Tier: L1): **near / bare = ${f(h.nearVsBare, 2)}**, ` +
            `**near / in-app = ${f(h.nearVsInApp, 2)}**.`
          : ""),
    );
    if (h.halfRate?.length) {
      const paced = h.halfRate.every((r) => r.tool === "paced");
      out.push(
        (paced
          ? "Latency at half each server's maximum rate: requests arriving at random (a Poisson process, " +
            "timed to the microsecond by the bench's own generator, `bench/loadgen/paced.c`) and sent on " +
            "whichever of the 50 connections is free, each latency counted from the request's arrival " +
            "(a stalled server is not let off by the generator waiting for it), after a warm-up at the same " +
            "rate that is not counted. "
          : "Latency at about half each server's maximum rate (wrk, the same 50 connections, each pausing " +
            "a random while between requests; wrk's pauses are whole milliseconds, so each millisecond's " +
            "requests arrive together and the p99 measures those bursts). ") +
          `The median of ${h.rounds} alternating rounds, and each round's p99:`,
        [
          `| server | rate held (req/s) | p50 ms | p99 ms | p99 of each round, ms${paced ? " | p99 from send, ms" : ""} |`,
          `|---|---|---|---|---|${paced ? "---|" : ""}`,
          ...h.halfRate.map(
            (r) =>
              `| ${r.server} | ${f(r.rps)} | ${f(r.p50Ms, 3)} | ${f(r.p99Ms, 3)} | ` +
              `${(r.p99Rounds ?? [r.p99Ms]).map((x) => f(x, 2)).join(", ")} |` +
              (paced ? ` ${r.p99SentMs !== undefined ? f(r.p99SentMs, 3) : "-"} |` : ""),
          ),
        ].join("\n"),
      );
      const late = h.halfRate.map((r) => r.generatorLateP99Ms).filter((x): x is number => x !== undefined);
      if (late.length) {
        const worst = Math.max(...late);
        const lowestP99 = Math.min(...h.halfRate.map((r) => r.p99Ms));
        // The generator's own lateness clears it only when it is small beside every tail it measured.
        out.push(
          `The generator itself wrote its arrivals late by at most ${f(worst * 1000, 0)} µs at the ` +
            "p99 (any round, any server): " +
            (worst < lowestP99 / 10
              ? "the tails above are the servers' and their core's, not the generator's."
              : "its own core stalled too, so these tails are the machine's as much as the servers'."),
        );
      }
    }
    if (h.profile) {
      out.push(
        `CPU profile of the daemon under the same load (\`node --cpu-prof\`, ${f(h.profile.totalMs / 1000, 1)} s of samples ` +
          `on the CPU), self time by area and the top functions:`,
      );
      out.push(
        table(
          ["area", "self ms", "share"],
          h.profile.byArea.map((a) => [a.area, f(a.ms), `${f(a.pct, 1)}%`]),
        ),
      );
      out.push(
        table(
          ["function", "where", "self ms", "share"],
          h.profile.top.map((t) => [
            `\`${t.fn}\``,
            t.where ? `\`${t.where}\`` : "",
            f(t.selfMs),
            `${f(t.selfPct, 1)}%`,
          ]),
        ),
      );
    }
  }

  const w = r.writes;
  if (w) {
    out.push("## 2. Writes");
    out.push(
      `PUT with a ${w.bodyBytes}-byte JSON body on ${w.hotKeys} hot keys drawn uniformly (wrk with a Lua script), ` +
        `one daemon per strategy with a pool of 10, beside an in-app server that does per request what a team ` +
        `writes by hand: a plain upsert in autocommit (\`INSERT ... ON CONFLICT ... RETURNING\`), then a Redis ` +
        `\`SET\` (pool 10, the same PostgreSQL and Redis, measured first and again last in the same run). Each ` +
        `server is measured with 1 connection (${w.oneDurationS} s) and with ${w.connections} (${w.warmupS} s ` +
        `warm-up then ${w.durationS} s measured). Every server reaches PostgreSQL through a pass-through proxy run ` +
        `by the bench that counts every statement on the wire (simple-protocol queries and extended-protocol ` +
        `Executes, BEGIN and COMMIT included, the daemon's background work too), from the start of the window ` +
        `until every acknowledged write is in PostgreSQL (write-behind: until ` +
        `\`POST /v1/keyspaces/{ks}/flush\` returns). Rows written come from pg_stat_user_tables (n_tup_ins + ` +
        `n_tup_upd, read after the server stopped, warm-up included, divided by all acks).`,
    );
    out.push(
      table(
        [
          "server",
          `acks/s (${w.connections} conn.)`,
          "× in-app",
          "p50 ms",
          "p99 ms",
          `statements per write (${w.connections} conn.)`,
          "statements per write (1 conn.)",
          "acks/s (1 conn.)",
          "p50 ms (1 conn.)",
          "commits per 1,000 acks",
          "rows written per 1,000 acks",
          "server CPU",
          "errors",
        ],
        w.rows.map((x) =>
          x.available
            ? [
                x.strategy,
                f(x.ackRps),
                x.vsBaseline !== undefined ? `${f(x.vsBaseline, 2)}×` : "",
                ms(x.p50Ms),
                ms(x.p99Ms),
                f(x.statementsPer1k / 1000, 3),
                x.one ? f(x.one.statementsPerWrite, 3) : "",
                x.one ? f(x.one.ackRps) : "",
                x.one ? ms(x.one.p50Ms) : "",
                f(x.commitsPer1k, 1),
                f(x.rowWritesPer1k, 1),
                pct(x.serverCpuUtil),
                f(x.errors),
              ]
            : [x.strategy, "not available", "", "", "", "", "", "", "", "", "", "", ""],
        ),
      ),
    );
    for (const x of w.rows) {
      if (x.available && Object.keys(x.kindsPer1k).length > 0) {
        const kinds = Object.entries(x.kindsPer1k)
          .filter(([, n]) => n > 0)
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${f(n, n < 10 ? 1 : 0)}`)
          .join(", ");
        out.push(`- ${x.strategy}, statements per 1,000 acks (${w.connections} conn.) by kind: ${kinds}.`);
      }
      if (!x.available) out.push(`- ${x.strategy}: ${x.note}`);
      else if (x.flushMs !== undefined)
        out.push(
          `- ${x.strategy}: the final flush took ${f(x.flushMs)} ms; the daemon's \`sidecache_store_write_statements_total\` ` +
            `counted ${f(x.metricStatements)} statements against ${f(x.statements)} on the wire.`,
        );
    }
  }

  const nc = r.near;
  if (nc) {
    out.push("## Near cache");
    out.push(
      "Sequential writes through one daemon while every daemon holds a copy of the key (each read it just " +
        "before): in coherent mode a write waits until every other daemon dropped its copy.",
    );
    out.push(
      table(
        ["daemons", "near cache", "writes", "p50 ms", "p99 ms"],
        nc.writes.map((w) => [
          f(w.daemons),
          w.nearCache ? "coherent" : "none",
          f(w.writes),
          f(w.p50Ms),
          f(w.p99Ms),
        ]),
      ),
    );
    out.push(
      `RSS with ${f(nc.rss.entries)} near entries of ${f(nc.rss.valueBytes)}-byte values: ` +
        `${f(nc.rss.afterMiB)} MiB (${f(nc.rss.beforeMiB)} MiB before they were read; the daemon's own ` +
        `estimate of the entries: ${f(nc.rss.nearBytes / 2 ** 20)} MiB).`,
    );
  }

  const cl = r.cluster;
  if (cl) {
    out.push("## Redis Cluster");
    out.push(
      `One daemon, ${f(cl.connections)} connections, ${f(cl.durationS)} s per run: GET hits spread over ` +
        `${f(cl.keys)} warm keys, and write-behind PUTs over ${f(cl.keys)} keys, on one private Redis server ` +
        "and on a private 3-master Redis Cluster, both started by the bench on the same machine (docs/scale-out.md).",
    );
    out.push(
      table(
        ["Redis", "what", "req/s", "p50 ms", "p99 ms", "daemon CPU", "errors"],
        cl.rows.map((x) => [
          x.redis,
          x.what,
          f(x.rps),
          ms(x.p50Ms),
          ms(x.p99Ms),
          pct(x.serverCpuUtil),
          f(x.errors),
        ]),
      ),
    );
    const bound = cl.rows.every((x) => x.serverCpuUtil >= 0.85);
    out.push(
      `Cluster / one Redis: **hits ${f(cl.hitRatio, 2)}**, **write-behind writes ${f(cl.writeRatio, 2)}**.` +
        (bound
          ? " The daemon's core was busy (85% or more) in every run: one daemon is bound by itself, not by " +
            "Redis; a Cluster spreads the data and Redis's work over shards, it does not make one daemon faster."
          : ""),
    );
  }

  const s = r.stampede;
  if (s) {
    out.push("## 3. Stampede");
    out.push(
      `${f(s.concurrency)} connections opened first, then \`GET\` of the same cold key written on all of them in ` +
        `the same tick; PostgreSQL reads of the key counted on the wire by a pass-through proxy (pool 10 on both ` +
        `servers; sidecache's cache-aside keyspace against the naive in-app cache-aside, which has no single flight).`,
    );
    out.push(
      table(
        ["server", "key", "PostgreSQL reads", "200 answers", "other answers", "p50 ms", "last answer ms"],
        s.trials.map((t) => [t.server, t.key, f(t.pgReads), f(t.ok), f(t.other), f(t.p50Ms), f(t.maxMs)]),
      ),
    );
    out.push(
      `Cross-check at PostgreSQL: pg_stat_user_tables counts ${f(s.pgStatScans)} scans of the table over the ` +
        `section, the proxy ${f(s.wireSelects)} selects of it.`,
    );
    if (s.hotTrials && s.hotTrials.length > 0) {
      out.push(
        `A hot key whose entry expired (ttl 1s, read 1.1 s after its fill) and the same key just written ` +
          `(cache-aside leaves a tombstone), ${f(s.concurrency)} readers at once, PostgreSQL 20 ms away each way:`,
      );
      out.push(
        table(
          ["case", "key", "PostgreSQL reads", "200 answers", "other answers", "p50 ms", "last answer ms"],
          s.hotTrials.map((t) => [
            t.case === "expired" ? "expired hot key" : "just written",
            t.key,
            f(t.pgReads),
            f(t.ok),
            f(t.other),
            f(t.p50Ms),
            f(t.maxMs),
          ]),
        ),
      );
    }
  }

  const hr = r.hitrate;
  if (hr) {
    out.push("## 4. Hit rate, with a 50 ms database");
    out.push(
      `PostgreSQL behind a proxy that holds every chunk ${hr.oneWayDelayMs} ms in each direction, so each query ` +
        `costs a ${2 * hr.oneWayDelayMs} ms round trip; pool ${hr.pool}, which caps PostgreSQL at ` +
        `${f(hr.poolCeilingQps)} queries/s. ${f(hr.warmKeys)} keys are warmed first; each request reads a warm key with ` +
        `probability h and otherwise the next never-read key, so every such read is a miss. autocannon (see the ` +
        `method notes: wrk's latencies for a mix of fast and slow answers do not add up), ` +
        `${hr.durationS} s per row. The hit rate shown is the one the server counted; database load is PostgreSQL ` +
        `reads per request and per second, counted on the wire (cross-check: pg_stat_user_tables ` +
        `${f(hr.pgStatScans)} scans, wire ${f(hr.wireSelects)} selects, over the section).`,
    );
    const rows: string[][] = [];
    for (const e of EXPECTED) {
      rows.push([
        pct(e.hit),
        "expected",
        `${f(e.meanMs, e.meanMs < 10 ? 1 : 0)} ms`,
        "",
        `${f(e.rps)} req/s`,
        `${pct(e.dbLoad)}`,
      ]);
      for (const x of hr.rows.filter((x) => x.targetHit === e.hit)) {
        rows.push([
          `${pct(x.actualHit, 1)} measured`,
          `${x.variant}, ${x.connections} clients`,
          `${ms(x.meanMs)} ms`,
          `${ms(x.p99Ms)} ms`,
          `${f(x.rps)} req/s`,
          `${pct(x.dbLoad, 1)} (${f(x.dbQps)} q/s)`,
        ]);
      }
    }
    out.push(table(["cache hit rate", "", "mean latency", "p99", "throughput", "database load"], rows));
    out.push(hitRateNotes(hr.rows, hr.poolCeilingQps, m.nproc));
  }

  const c = r.cost;
  if (c) {
    out.push("## 5. Cost");
    out.push(
      `The daemon's CPU from /proc/PID/stat (utime + stime) over each measured window, divided by the requests ` +
        `answered; RSS from /proc/PID/status. Idle: ${f(c.idleRssMiB)} MiB RSS, ${f(c.idleCpuS, 2)} CPU s in ${c.idleS} s.`,
    );
    out.push(
      table(
        ["scenario", "req/s", "CPU s / 10k requests", "CPU (one core = 100%)", "RSS MiB"],
        c.rows.map((x) => [x.scenario, f(x.rps), f(x.cpuSPer10k, 2), pct(x.cpuUtil), f(x.rssMiB)]),
      ),
    );
    if (c.soak) {
      const first = c.soak.samples[0];
      const last = c.soak.samples[c.soak.samples.length - 1];
      out.push(
        `Soak: ${c.soak.durationS} s of the mixed load, ${c.soak.connections} connections: ${f(c.soak.rps)} req/s, ` +
          `p99 ${ms(c.soak.p99Ms)} ms, ${f(c.soak.errors)} errors; RSS ${f(first?.rssMiB)} MiB after ${first?.atS} s, ` +
          `${f(last?.rssMiB)} MiB after ${last?.atS} s (max ${f(Math.max(...c.soak.samples.map((x) => x.rssMiB)))} MiB).`,
      );
    }
  }
  if (r.resp) out.push(...renderResp(r.resp));
  if (r.idle) out.push(...renderIdle(r.idle));
  return `${out.join("\n\n")}\n`;
}

function hitRateNotes(rows: HitRateRow[], ceiling: number, cores: number): string {
  const notes: string[] = [];
  for (const e of EXPECTED) {
    const x = rows.find((y) => y.variant === "sidecache" && y.connections === 100 && y.targetHit === e.hit);
    if (!x) continue;
    const vs = x.rps / e.rps;
    // Every resource within 15% of its limit is named: at 99% the pool and the daemon's core fill together.
    const near: string[] = [];
    if (x.dbQps >= 0.85 * ceiling) {
      near.push(
        `the pool (PostgreSQL ran ${f(x.dbQps)} queries/s of the ${f(ceiling)} that 10 connections × 50 ms allow)`,
      );
    }
    if (x.serverCpuUtil >= 0.85) near.push(`the daemon's core (${pct(x.serverCpuUtil)} of core 0 busy)`);
    if (x.machineBusyCores !== undefined && x.machineBusyCores >= 0.85 * cores) {
      near.push(`the machine (${f(x.machineBusyCores, 2)} of ${cores} cores busy)`);
    }
    const bound =
      near.length > 0
        ? `bounded by ${near.join(" and ")}`
        : `bounded by neither the pool (${f(x.dbQps)} of ${f(ceiling)} queries/s) nor the daemon's CPU (${pct(x.serverCpuUtil)})`;
    notes.push(
      `- ${pct(e.hit)}: ${f(x.rps)} req/s is ${f(vs, 2)}× the expected ${f(e.rps)} req/s (${vs >= 1 ? "beats it" : "below it"}); ` +
        `${bound}. Mean latency ${ms(x.meanMs)} ms against ${e.meanMs} ms: with 100 clients in a closed loop ` +
        `the mean must be clients ÷ throughput = ${ms(x.littleMs)} ms (Little's law), waiting for the pool included.`,
    );
  }
  const ten = rows.filter((y) => y.variant === "sidecache" && y.connections === 10);
  if (ten.length > 0) {
    notes.push(
      `- With 10 clients (≈ the concurrency the expected table implies: ${EXPECTED.map((e) => f((e.rps * e.meanMs) / 1000, 1)).join(", ")} in flight) ` +
        `sidecache's mean latency is ${ten.map((y) => `${ms(y.meanMs)} ms at ${pct(y.targetHit)}`).join(", ")}.`,
    );
  }
  return notes.join("\n");
}

const BEGIN = "<!-- bench:begin (written by npm run bench; do not edit by hand) -->";
const END = "<!-- bench:end -->";

/**
 * Replaces the figures between the markers of docs/benchmarks.md with the latest run's, formatted with the
 * project's prettier settings so `npm run lint` stays clean.
 */
export async function updateDocs(file: string, md: string): Promise<void> {
  if (!existsSync(file)) return;
  const text = readFileSync(file, "utf8");
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return;
  const body = md.replace(/^# .*\n\n/, "").replace(/^## /gm, "### ");
  let next = `${text.slice(0, a + BEGIN.length)}\n\n${body}\n${text.slice(b)}`;
  try {
    const prettier = await import("prettier");
    const config = (await prettier.resolveConfig(file)) ?? {};
    next = await prettier.format(next, { ...config, filepath: file });
  } catch {
    // prettier is a devDependency; without it the section is written as rendered
  }
  writeFileSync(file, next);
}
