/**
 * A private Redis Sentinel setup for tests: one master, one replica and three sentinels (quorum 2), all
 * on free ports, with short failure detection so that a failover takes a few seconds.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startPrivateRedis, type PrivateRedis } from "./redis-server.js";

export const SENTINEL_MASTER = "sidecache";

export interface PrivateSentinel {
  /** the servers, the first one master at the start */
  servers: PrivateRedis[];
  /** "127.0.0.1:port" of each sentinel */
  sentinels: string[];
  /** the port of the master as the sentinels name it now */
  masterPort(): Promise<number>;
  /** SENTINEL FAILOVER, then resolves once the sentinels name another master that says it is one */
  failover(timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startPrivateSentinel(): Promise<PrivateSentinel> {
  const master = await startPrivateRedis({ persistence: "aof" });
  const replica = await startPrivateRedis({
    persistence: "aof",
    args: ["--replicaof", "127.0.0.1", String(master.port)],
  });
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  const clients: Redis[] = [];
  const stop = async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(
      procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = once(p, "exit");
        p.kill("SIGKILL");
        await exited;
      }),
    );
    await Promise.all([master.kill(), replica.kill()]);
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "sidecache-sentinel-"));
      const conf = join(dir, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
          "",
        ].join("\n"),
      );
      const p = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
      const reap = () => p.kill("SIGKILL");
      process.once("exit", reap);
      p.once("exit", () => process.off("exit", reap));
      procs.push(p);
      ports.push(port);
    }
    const client = (port: number) => {
      const c = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      c.on("error", () => {});
      clients.push(c);
      return c;
    };
    const sentinels = ports.map(client);
    // ready: every sentinel knows the replica and the two other sentinels
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await Promise.all(
        sentinels.map(async (s) => {
          try {
            const replicas = (await s.call("SENTINEL", "REPLICAS", SENTINEL_MASTER)) as string[][];
            const others = (await s.call("SENTINEL", "SENTINELS", SENTINEL_MASTER)) as string[][];
            return replicas.length === 1 && others.length === 2 && replicas[0]!.join(" ").includes("slave");
          } catch {
            return false;
          }
        }),
      );
      if (ok.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error("the private sentinels did not come up");
      await new Promise((r) => setTimeout(r, 100));
    }
    const masterPortOf = async (s: Redis) => {
      const [, port] = (await s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER)) as [
        string,
        string,
      ];
      return Number(port);
    };
    const masterPort = () => masterPortOf(sentinels[0]!);
    return {
      servers: [master, replica],
      sentinels: ports.map((p) => `127.0.0.1:${p}`),
      masterPort,
      async failover(timeoutMs = 20_000) {
        const before = await masterPort();
        await sentinels[0]!.call("SENTINEL", "FAILOVER", SENTINEL_MASTER);
        const until = Date.now() + timeoutMs;
        for (;;) {
          const now = await Promise.all(sentinels.map(masterPortOf));
          const port = now[0]!;
          if (port !== before && now.every((p) => p === port)) {
            const role = (await client(port).call("ROLE")) as [string];
            if (role[0] === "master") return port;
          }
          if (Date.now() > until) throw new Error("the sentinels did not fail over");
          await new Promise((r) => setTimeout(r, 50));
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP port was given");
  return address.port;
}
