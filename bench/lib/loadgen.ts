/**
 * The load generators: wrk (preferred) driven by a generated Lua script, or autocannon (a devDependency)
 * as the fallback, both pinned to the load generator's core and both reporting the same fields. Runs at
 * a fixed rate (`rate`) go to `paced` (bench/loadgen/paced.c, built here with the C compiler) when
 * there is one.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { hasTimeCommand } from "./machine.js";
import { spawnPinned } from "./proc.js";

/** What each request is. Keys are `${prefix}${i}`; paths are `${pathPrefix}${key}`. */
export type Pattern =
  | { kind: "get"; path: string }
  | { kind: "put"; pathPrefix: string; keyPrefix: string; keys: number; body: string }
  | {
      kind: "hitrate";
      pathPrefix: string;
      /** fraction of requests that read one of the warm keys (drawn uniformly); the rest read cold keys in order */
      hit: number;
      warmPrefix: string;
      warmCount: number;
      coldPrefix: string;
      coldCount: number;
    }
  | {
      kind: "mixed";
      pathPrefix: string;
      keyPrefix: string;
      keys: number;
      body: string;
      writeFraction: number;
    };

export interface LoadSpec {
  /** http://127.0.0.1:PORT */
  base: string;
  pattern: Pattern;
  connections: number;
  durationS: number;
  threads?: number;
  core?: number;
  /** per-request timeout, seconds */
  timeoutS?: number;
  /**
   * A pause before each request of a connection, ms on average (drawn at random): the rate held at about
   * connections × 1000 / delayMs while answers are much faster than that (a latency measured below the
   * maximum rate).
   */
  delayMs?: number;
  /**
   * Requests per second arriving as a Poisson process whatever the answers do (an open loop), each
   * latency counted from its arrival; the connections are a pool the arrivals share. "get" only.
   */
  rate?: number;
  /** with `rate`: seconds at that rate before durationS, not counted (new connections, code warming up) */
  rateWarmupS?: number;
}

export interface LoadResult {
  tool: string;
  connections: number;
  threads: number;
  durationS: number;
  requests: number;
  /** responses with a status below 400 */
  ok: number;
  /** responses with a status of 400 or above */
  errorStatus: number;
  /** connect, read, write errors and timeouts */
  socketErrors: number;
  rps: number;
  okRps: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU seconds the load generator used (user + system), when /usr/bin/time is there */
  generatorCpuS?: number;
  /** paced only: arrivals that found every connection busy and waited for one */
  queued?: number;
  /** paced only: p99 counted from the moment each request was written instead of from its arrival */
  p99SentMs?: number;
  /** paced only: p99 of how late the generator wrote the arrivals that found a free connection */
  generatorLateP99Ms?: number;
}

export type Tool = "wrk" | "autocannon";

const luaString = (s: string) => `[==[${s}]==]`;

const REPORTER = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"mean_us":%.3f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
`;

function wrkScript(p: Pattern): string {
  switch (p.kind) {
    case "get":
      return REPORTER;
    case "put":
      return `
wrk.method = "PUT"
wrk.body = ${luaString(p.body)}
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, ${luaString(p.pathPrefix + p.keyPrefix)} .. math.random(0, ${p.keys - 1}))
end
${REPORTER}`;
    case "mixed":
      return `
local put_headers = { ["Content-Type"] = "application/json" }
local body = ${luaString(p.body)}
request = function()
  local path = ${luaString(p.pathPrefix + p.keyPrefix)} .. math.random(0, ${p.keys - 1})
  if math.random() < ${p.writeFraction} then
    return wrk.format("PUT", path, put_headers, body)
  end
  return wrk.format("GET", path)
end
${REPORTER}`;
    case "hitrate":
      return `
local cold = 0
request = function()
  if math.random() < ${p.hit} then
    return wrk.format("GET", ${luaString(p.pathPrefix + p.warmPrefix)} .. math.random(0, ${p.warmCount - 1}))
  end
  local k = cold
  cold = (cold + 1) % ${p.coldCount}
  return wrk.format("GET", ${luaString(p.pathPrefix + p.coldPrefix)} .. k)
end
${REPORTER}`;
  }
}

function urlOf(spec: LoadSpec): string {
  return spec.pattern.kind === "get" ? spec.base + spec.pattern.path : `${spec.base}/`;
}

let scriptDir: string | undefined;

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  scriptDir ??= mkdtempSync(join(tmpdir(), "sidecache-bench-"));
  const script = join(scriptDir, `s${Date.now()}${Math.random().toString(36).slice(2)}.lua`);
  // Pauses drawn at random (exponential, mean delayMs): connections that all paused the same time would
  // stay in step and arrive in bursts of `connections` requests, measuring the burst, not the server.
  const delay = spec.delayMs
    ? `\ndelay = function() return math.floor(-math.log(1 - math.random()) * ${spec.delayMs} + 0.5) end\n`
    : "";
  writeFileSync(script, wrkScript(spec.pattern) + delay);
  const threads = Math.min(spec.threads ?? 1, spec.connections);
  const wrkArgs = [
    `-t${threads}`,
    `-c${spec.connections}`,
    `-d${spec.durationS}s`,
    `--timeout`,
    `${spec.timeoutS ?? 10}s`,
    "-s",
    script,
    urlOf(spec),
  ];
  const { json, generatorCpuS } = await runGenerator(spec.core, "wrk", "wrk", wrkArgs, "WRKJSON");
  return summary("wrk", spec.connections, threads, json as Record<string, number>, generatorCpuS);
}

/**
 * Runs a load generator on the load generator's core (under /usr/bin/time when there is one, for its CPU)
 * and returns the JSON it printed after `marker`.
 */
async function runGenerator(
  core: number | undefined,
  name: string,
  cmd: string,
  args: string[],
  marker: string,
): Promise<{ json: unknown; generatorCpuS?: number }> {
  const child = hasTimeCommand()
    ? spawnPinned(core, "/usr/bin/time", ["-f", "WRKTIME %U %S", cmd, ...args])
    : spawnPinned(core, cmd, args);
  const code = await child.exited;
  const out = child.output();
  const m = new RegExp(`${marker} (\\{.*\\})`).exec(out);
  if (!m) throw new Error(`${name} failed (exit ${code}):\n${out.slice(-3000)}`);
  const t = /WRKTIME ([\d.]+) ([\d.]+)/.exec(out);
  return { json: JSON.parse(m[1]!), generatorCpuS: t ? Number(t[1]) + Number(t[2]) : undefined };
}

/** The fields wrk's reporter and the paced generator both print, in microseconds, as a LoadResult. */
function summary(
  tool: string,
  connections: number,
  threads: number,
  j: Record<string, number>,
  generatorCpuS: number | undefined,
): LoadResult {
  const durationS = j.duration_us! / 1e6;
  return {
    tool,
    connections,
    threads,
    durationS,
    requests: j.requests!,
    ok: j.requests! - j.status!,
    errorStatus: j.status!,
    socketErrors: j.connect! + j.read! + j.write! + j.timeout!,
    rps: j.requests! / durationS,
    okRps: (j.requests! - j.status!) / durationS,
    meanMs: j.mean_us! / 1000,
    p50Ms: j.p50_us! / 1000,
    p90Ms: j.p90_us! / 1000,
    p99Ms: j.p99_us! / 1000,
    maxMs: j.max_us! / 1000,
    generatorCpuS,
  };
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const childScript = fileURLToPath(new URL("../loadgen/autocannon-child.js", import.meta.url));
  const arg = JSON.stringify({
    url: urlOf(spec),
    pattern: spec.pattern,
    connections: spec.connections,
    durationS: spec.durationS,
    timeoutS: spec.timeoutS ?? 10,
    connectionRate: spec.delayMs ? 1000 / Math.max(1, Math.round(spec.delayMs)) : undefined,
  });
  const { json, generatorCpuS } = await runGenerator(
    spec.core,
    "autocannon",
    process.execPath,
    [childScript, arg],
    "ACJSON",
  );
  const r = json as Omit<LoadResult, "tool" | "threads" | "generatorCpuS">;
  return { ...r, tool: "autocannon", threads: 1, generatorCpuS };
}

let pacedBinary: string | null | undefined;

/** Builds the paced generator once per bench; null when there is no C compiler (or it fails). */
export function pacedAvailable(): boolean {
  if (pacedBinary === undefined) {
    scriptDir ??= mkdtempSync(join(tmpdir(), "sidecache-bench-"));
    const source = fileURLToPath(new URL("../../../bench/loadgen/paced.c", import.meta.url));
    const out = join(scriptDir, "paced");
    try {
      execFileSync("cc", ["-O2", "-o", out, source, "-lm"], { stdio: "pipe" });
      pacedBinary = out;
    } catch {
      pacedBinary = null;
    }
  }
  return pacedBinary !== null;
}

async function runPaced(spec: LoadSpec): Promise<LoadResult> {
  if (spec.pattern.kind !== "get") throw new Error("the paced generator sends GETs of one path only");
  const url = new URL(spec.base);
  const args = [
    url.hostname,
    url.port,
    spec.pattern.path,
    String(spec.connections),
    String(spec.rate),
    String(spec.durationS),
    String(spec.timeoutS ?? 10),
    String(spec.rateWarmupS ?? 1),
  ];
  const { json, generatorCpuS } = await runGenerator(spec.core, "paced", pacedBinary!, args, "PACEDJSON");
  const j = json as Record<string, number>;
  return {
    ...summary("paced", spec.connections, 1, j, generatorCpuS),
    queued: j.queued!,
    p99SentMs: j.p99_sent_us! / 1000,
    generatorLateP99Ms: j.p99_late_us! / 1000,
  };
}

/**
 * Runs one load. A fixed `rate` goes to the paced generator, or without a C compiler to the chosen tool
 * pausing each connection for the mean while that gives that rate (a closed loop, burstier).
 */
export function runLoad(tool: Tool, spec: LoadSpec): Promise<LoadResult> {
  if (spec.rate !== undefined) {
    if (spec.pattern.kind === "get" && pacedAvailable()) return runPaced(spec);
    spec = { ...spec, rate: undefined, delayMs: (spec.connections * 1000) / spec.rate };
  }
  return tool === "wrk" ? runWrk(spec) : runAutocannon(spec);
}
