/**
 * Private Redis servers for the bench, on free ports, removed at the end: a Cluster of `masters` nodes,
 * or one server run the same way (a baseline no other client shares).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { freePort } from "./servers.js";

const run = promisify(execFile);

export interface BenchCluster {
  urls: string[];
  pids: number[];
  stop(): Promise<void>;
}

export async function startCluster(masters = 3): Promise<BenchCluster> {
  return startServers(masters, true);
}

export async function startSingle(): Promise<BenchCluster> {
  return startServers(1, false);
}

async function startServers(count: number, cluster: boolean): Promise<BenchCluster> {
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(
      procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = once(p, "exit");
        p.kill("SIGKILL");
        await exited;
      }),
    );
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "sidecache-bench-cluster-"));
      // persistence as the shared Redis of the bench has it: none to disk during a run
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", ""];
      args.push("--appendonly", "no");
      if (cluster) args.push("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf");
      const p = spawn("redis-server", args, { stdio: "ignore" });
      procs.push(p);
      ports.push(port);
    }
    for (const port of ports) await answers(port);
    const urls = ports.map((p) => `redis://127.0.0.1:${p}`);
    const pids = procs.map((p) => p.pid ?? -1);
    if (!cluster) return { urls, pids, stop };
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await run("redis-cli", ["--cluster", "create", ...nodes, "--cluster-yes"], { timeout: 30_000 });
    const deadline = Date.now() + 20_000;
    for (const port of ports) {
      const c = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
      try {
        await c.connect();
        while (!/cluster_state:ok/.test((await c.call("CLUSTER", "INFO")) as string)) {
          if (Date.now() > deadline) throw new Error("the bench cluster did not become healthy");
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        c.disconnect();
      }
    }
    return { urls, pids, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function answers(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const c = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    c.on("error", () => {});
    const ok = await c.connect().then(
      () => c.ping().then(() => true),
      () => false,
    );
    c.disconnect();
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
