/**
 * The fallback load generator when wrk is missing: autocannon in its own process (pinned like wrk would
 * be), with the same request patterns as the wrk scripts of lib/loadgen.ts. Prints one `ACJSON {...}` line.
 */
import autocannon from "autocannon";
import type { Pattern } from "../lib/loadgen.js";

interface Args {
  url: string;
  pattern: Pattern;
  connections: number;
  durationS: number;
  timeoutS: number;
  /** requests per second per connection (a rate held below the maximum) */
  connectionRate?: number;
}

interface RawRequest {
  method?: string;
  path?: string;
  body?: string;
  headers?: Record<string, string>;
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args;
const p = args.pattern;
let cold = 0;
const rand = (n: number) => Math.floor(Math.random() * n);

function setup(req: RawRequest): RawRequest {
  switch (p.kind) {
    case "get":
      return { ...req, method: "GET", path: p.path };
    case "put":
      return {
        ...req,
        method: "PUT",
        path: `${p.pathPrefix}${p.keyPrefix}${rand(p.keys)}`,
        body: p.body,
        headers: { "content-type": "application/json" },
      };
    case "mixed": {
      const path = `${p.pathPrefix}${p.keyPrefix}${rand(p.keys)}`;
      return Math.random() < p.writeFraction
        ? { ...req, method: "PUT", path, body: p.body, headers: { "content-type": "application/json" } }
        : { ...req, method: "GET", path, body: undefined, headers: {} };
    }
    case "hitrate": {
      if (Math.random() < p.hit) {
        return { ...req, method: "GET", path: `${p.pathPrefix}${p.warmPrefix}${rand(p.warmCount)}` };
      }
      const k = cold;
      cold = (cold + 1) % p.coldCount;
      return { ...req, method: "GET", path: `${p.pathPrefix}${p.coldPrefix}${k}` };
    }
  }
}

const result = await autocannon({
  url: args.url,
  connections: args.connections,
  duration: args.durationS,
  ...(args.connectionRate ? { connectionRate: args.connectionRate } : {}),
  timeout: args.timeoutS,
  requests: [{ setupRequest: setup }],
});
const total = result.requests.total;
const durationS = result.duration;
process.stdout.write(
  `ACJSON ${JSON.stringify({
    connections: args.connections,
    durationS,
    requests: total,
    ok: total - result.non2xx,
    errorStatus: result.non2xx,
    socketErrors: result.errors + result.timeouts,
    rps: total / durationS,
    okRps: (total - result.non2xx) / durationS,
    meanMs: result.latency.mean,
    p50Ms: result.latency.p50,
    p90Ms: result.latency.p90,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
  })}\n`,
);
