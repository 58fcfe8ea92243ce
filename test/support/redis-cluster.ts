/**
 * A private Redis Cluster for tests: `masters` redis-server processes with cluster mode on (and `replicas`
 * replicas of each), joined with `redis-cli --cluster create`. Each node is a PrivateRedis, so a test can
 * kill it and start it again on its port from its own files (its nodes.conf included: it rejoins).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { startPrivateRedis, type PrivateRedis, type PrivateRedisOptions } from "./redis-server.js";

const run = promisify(execFile);

export interface PrivateCluster {
  nodes: PrivateRedis[];
  /** redis://127.0.0.1:port of each node */
  urls: string[];
  /** a plain connection to the node on this port (closed by stop) */
  node(port: number): Redis;
  /** the master ports, as the cluster says now */
  masterPorts(): Promise<number[]>;
  /** the port of the master that serves the key's slot now */
  ownerOf(key: string): Promise<number>;
  /** the port of the replica of the master on this port */
  replicaOf(masterPort: number): Promise<number>;
  /** resolves once every node that answers reports cluster_state:ok with every slot served */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface PrivateClusterOptions {
  masters?: number;
  replicas?: number;
  persistence?: PrivateRedisOptions["persistence"];
  /** cluster-node-timeout: how soon a master that stopped answering is failed over */
  nodeTimeoutMs?: number;
  /** more redis-server arguments for every node */
  args?: string[];
}

export async function startPrivateCluster(o: PrivateClusterOptions = {}): Promise<PrivateCluster> {
  const masters = o.masters ?? 3;
  const replicas = o.replicas ?? 0;
  const args = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    String(o.nodeTimeoutMs ?? 2000),
    // A slot whose master is down must not stop the other shards.
    "--cluster-require-full-coverage",
    "no",
    ...(o.args ?? []),
  ];
  const nodes = await Promise.all(
    Array.from({ length: masters * (1 + replicas) }, () =>
      startPrivateRedis({ persistence: o.persistence, args }),
    ),
  );
  const clients = new Map<number, Redis>();
  const node = (port: number) => {
    let c = clients.get(port);
    if (!c) {
      c = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1, retryStrategy: () => 200 });
      c.on("error", () => {});
      clients.set(port, c);
    }
    return c;
  };
  const stop = async () => {
    for (const c of clients.values()) c.disconnect();
    await Promise.all(nodes.map((n) => n.kill()));
  };
  try {
    await run(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        "--cluster-replicas",
        String(replicas),
        "--cluster-yes",
      ],
      { timeout: 30_000 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const cluster: PrivateCluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    node,
    async masterPorts() {
      const lines = (await askAny(nodes, node, ["CLUSTER", "NODES"])).split("\n");
      return lines
        .filter((l) => / master /.test(` ${l.split(" ")[2]?.replace(/,/g, " ")} `) && !l.includes("fail"))
        .map((l) => Number(/:(\d+)@/.exec(l)![1]));
    },
    async ownerOf(key: string) {
      const slot = Number(await askAny(nodes, node, ["CLUSTER", "KEYSLOT", key]));
      const ranges = (await askAny(nodes, node, ["CLUSTER", "SLOTS"])) as unknown as [
        number,
        number,
        [string, number],
      ][];
      const r = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (!r) throw new Error(`no master serves slot ${slot}`);
      return r[2][1];
    },
    async replicaOf(masterPort: number) {
      const lines = (await askAny(nodes, node, ["CLUSTER", "NODES"])).split("\n");
      const id = lines.find((l) => l.includes(`:${masterPort}@`))?.split(" ")[0];
      const replica = lines.find((l) => id && l.split(" ")[3] === id);
      if (!replica) throw new Error(`no replica of ${masterPort}`);
      return Number(/:(\d+)@/.exec(replica)![1]);
    },
    async waitHealthy(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all(
          nodes.map((n) =>
            (node(n.port).call("CLUSTER", "INFO") as Promise<string>).then(
              (t) => /cluster_state:ok/.test(t) && /cluster_slots_ok:16384/.test(t),
              () => undefined,
            ),
          ),
        );
        const answered = states.filter((x) => x !== undefined);
        if (answered.length > 0 && answered.every(Boolean)) return;
        if (Date.now() > deadline) throw new Error("the private cluster did not become healthy");
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
  await cluster.waitHealthy();
  return cluster;
}

/** A command answered by the first node that answers. */
async function askAny(nodes: PrivateRedis[], node: (port: number) => Redis, cmd: string[]): Promise<string> {
  let last: unknown;
  for (const n of nodes) {
    try {
      return (await node(n.port).call(cmd[0]!, ...cmd.slice(1))) as string;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
