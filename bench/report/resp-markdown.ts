/** The Redis protocol section of bench.md. */
import type { RespBenchResult, RespBenchRow } from "../sections/resp.js";

const f = (n: number | undefined, d = 0): string =>
  n === undefined || !Number.isFinite(n)
    ? "–"
    : n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (n: number | undefined) => (n === undefined ? "–" : `${f(n * 100)}%`);

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

const cells = (r: RespBenchRow, ratio?: number): string[] => [
  r.target,
  `\`${r.test}\``,
  f(r.rps),
  ratio === undefined ? "–" : f(ratio, 2),
  f(r.p50Ms, 2),
  f(r.p99Ms, 2),
  pct(r.serverCpuUtil),
  r.serverCpuUtil === undefined ? "–" : f((r.serverCpuUtil / r.rps) * 10_000, 2),
];

export function renderResp(r: RespBenchResult): string[] {
  const head = ["server", "test", "req/s", "ratio", "p50 ms", "p99 ms", "server CPU", "CPU s / 10k req"];
  return [
    "## 6. Redis protocol",
    `\`redis-benchmark\` (${r.clients} clients, ${r.keys} random keys \`key:NNNNNNNNNNNN\`, values of ` +
      `${r.valueBytes} bytes, about ${r.durationS} s per figure after a short warm-up run) against sidecache's ` +
      `RESP port and against a redis-server started for the run, each on the servers' core. GET reads keys every ` +
      `one of which was written and read once before (cache-aside; PostgreSQL misses during its warm-up and measured GET runs: ` +
      `${f(r.get.cacheMisses)})` +
      (r.nearGet
        ? `; the near cache row is a daemon whose keyspace also keeps them in its own memory (near cache ` +
          `hits over its warm-up and measured runs: ${f(r.nearGet.nearHits)} of ` +
          `${f(r.nearGet.row.requests + (r.nearGet.row.warmupRequests ?? 0))} GETs)`
        : "") +
      `. SET runs once per strategy, a daemon each, on a keyspace named \`key\`. Ratios ` +
      `are sidecache / redis-server of the same test. Server CPU is the server process's own (one core = 100%), ` +
      `from /proc; divided by the requests it is the cost of one request, which other load on the machine ` +
      `disturbs less than the rates do.`,
    table(head, [
      cells(r.get.redis),
      cells(r.get.sidecache, r.get.ratio),
      ...(r.nearGet ? [cells(r.nearGet.row, r.nearGet.ratio)] : []),
      cells(r.set.redis),
      ...r.set.rows.map((x) => cells(x.row, x.ratio)),
    ]),
    `The same GET of one warmed key, \`${r.httpVsResp.key}\`, on one cache-aside daemon: over HTTP with the ` +
      `bench's HTTP load generator, over RESP with redis-benchmark, ${r.clients} connections each. Ratio: RESP / HTTP.`,
    table(head, [cells(r.httpVsResp.http), cells(r.httpVsResp.resp, r.httpVsResp.ratio)]),
  ];
}
