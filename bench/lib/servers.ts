/** The servers under test as child processes: the sidecache daemon, the bare node:http server, the in-app cache. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createNetServer } from "node:net";
import { fileURLToPath } from "node:url";
import { REDIS_URL } from "./backends.js";
import { spawnPinned, waitForOutput, type Child } from "./proc.js";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DAEMON_JS = join(ROOT, "dist/cmd/sidecache.js");
const serverJs = (name: string) => fileURLToPath(new URL(`../servers/${name}.js`, import.meta.url));

export interface Server extends Child {
  name: string;
  base: string;
  port: number;
}

export interface KeyspaceSpec {
  strategy: string;
  table: string;
  ttl?: string;
  ttl_jitter?: number;
  /** a near_cache mapping in YAML flow style, e.g. "{ ttl: 1m }" */
  nearCache?: string;
  consistency?: "strict" | "eventual";
  writeBehind?: { flushInterval: string; batchSize: number; maxQueue: number };
  /** the keyspace's audit log, in this table */
  auditTable?: string;
}

export interface DaemonSpec {
  /** log.access: one info line per request (off by default: only failures are logged) */
  accessLog?: boolean;
  /** server.resp: the Redis protocol listener on this port */
  respPort?: number;
  cachePrefix: string;
  storeUrl: string;
  pool: number;
  keyspaces: Record<string, KeyspaceSpec>;
}

export function daemonYaml(spec: DaemonSpec, port: number): string {
  const lines = [
    "server:",
    "  host: 127.0.0.1",
    `  port: ${port}`,
    ...(spec.respPort ? [`  resp: { host: 127.0.0.1, port: ${spec.respPort} }`] : []),
    "cache:",
    `  url: ${REDIS_URL}`,
    `  prefix: ${spec.cachePrefix}`,
    "store:",
    `  url: ${spec.storeUrl}`,
    `  pool: ${spec.pool}`,
    "log:",
    "  level: info",
    `  access: ${spec.accessLog ?? false}`,
    "checker:",
    "  enabled: false",
    "keyspaces:",
  ];
  for (const [name, ks] of Object.entries(spec.keyspaces)) {
    lines.push(`  ${name}:`, `    strategy: ${ks.strategy}`, `    table: ${ks.table}`);
    if (ks.ttl) lines.push(`    ttl: ${ks.ttl}`);
    if (ks.ttl_jitter !== undefined) lines.push(`    ttl_jitter: ${ks.ttl_jitter}`);
    if (ks.nearCache) lines.push(`    near_cache: ${ks.nearCache}`);
    if (ks.consistency) lines.push(`    consistency: ${ks.consistency}`);
    if (ks.auditTable) lines.push(`    audit: { table: ${ks.auditTable} }`);
    if (ks.writeBehind) {
      const wb = ks.writeBehind;
      lines.push(
        "    write_behind:",
        `      flush_interval: ${wb.flushInterval}`,
        `      batch_size: ${wb.batchSize}`,
        `      max_queue: ${wb.maxQueue}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** `node dist/cmd/sidecache.js --config FILE`, pinned; resolves once it logs that it listens. */
export async function startDaemon(
  spec: DaemonSpec,
  options: { core?: number; cpuProfDir?: string } = {},
): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "sidecache-bench-"));
  const file = join(dir, "sidecache.yaml");
  const port = await freePort();
  writeFileSync(file, daemonYaml(spec, port));
  const nodeArgs: string[] = [];
  if (options.cpuProfDir) {
    mkdirSync(options.cpuProfDir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`);
  }
  // The log goes to a file, as it would in production.
  const child = spawnPinned(
    options.core,
    process.execPath,
    [...nodeArgs, DAEMON_JS, "--config", file],
    {},
    join(dir, "sidecache.log"),
  );
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.child.exitCode !== null || child.child.signalCode !== null) {
      throw new Error(`the daemon exited before it was ready:\n${child.output().slice(-4000)}`);
    }
    const ok = await fetch(`${base}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await child.stop("SIGKILL");
      throw new Error(`the daemon did not answer /healthz in 30 s:\n${child.output().slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...child, name: "sidecache", port, base: `http://127.0.0.1:${port}` };
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function startScript(name: string, args: unknown, core?: number): Promise<Server> {
  const child = spawnPinned(core, process.execPath, [serverJs(name), JSON.stringify(args)]);
  const m = await waitForOutput(child, /LISTENING (\d+)/);
  const port = Number(m[1]);
  return { ...child, name, port, base: `http://127.0.0.1:${port}` };
}

/** A node:http server that answers every request with the given status, headers and body, nothing else. */
export function startBare(
  answer: { status: number; headers: Record<string, string>; body: string },
  core?: number,
): Promise<Server> {
  return startScript("bare", answer, core);
}

export interface InAppOptions {
  redisUrl: string;
  pgUrl: string;
  pool: number;
  prefix: string;
  /** keyspace name → table */
  tables: Record<string, string>;
  ttlMs: number;
}

/** The hand-written cache-aside a user would put in their own process: ioredis + pg, no single flight. */
export function startInApp(options: InAppOptions, core?: number): Promise<Server> {
  return startScript("inapp", options, core);
}

/** GET or PUT with fetch; the body as text. */
export async function call(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: string }> {
  const r = await fetch(url, init);
  return { status: r.status, headers: r.headers, body: await r.text() };
}

/** Sums every sample of a Prometheus metric, optionally only those whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    const ok = Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`));
    if (!ok) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

export async function metrics(server: Server): Promise<string> {
  return (await call(`${server.base}/metrics`)).body;
}
