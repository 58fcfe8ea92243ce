/**
 * The one place Redis connections are opened: the cache adapter, write-behind, the near caches'
 * coherence channel and the checkers' coordination all call `openRedis`. It answers an ioredis `Redis`
 * (one server, or the master Redis Sentinel names) or a `Cluster`, with the same failure policy for all:
 * commands fail fast while Redis is unreachable (no offline queue), a command whose connection dropped is
 * never sent again behind the caller's back, and the client reconnects by itself with a capped backoff.
 *
 * On a Cluster, ioredis follows MOVED and ASK (a command refused there never ran) and retries CLUSTERDOWN
 * and TRYAGAIN; it does not resend a command whose node connection closed (`retryDelayOnFailover: 0`),
 * which may have run. The slot map is read again on MOVED and whenever the cache adapter finds no node
 * for a bucket, not on a timer: each read opens a connection of its own. Scripts defined with `defineCommand` or run through `Script` fall back from EVALSHA
 * to EVAL on NOSCRIPT, so a promoted replica or a restarted node needs no reload step.
 */
import calculateSlot from "cluster-key-slot";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { RedisTarget } from "../config/types.js";
import { releaseFinishedPipelines } from "./pipeline-release.js";

export type RedisClient = Redis | Cluster;

const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 1000;

export interface ConnectOptions {
  /** CLIENT SETNAME, so that operators can tell sidecache's connections apart */
  name?: string;
  /** per command; undefined: none (a subscriber) */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** queue commands while (re)connecting instead of failing them (a subscriber) */
  offlineQueue?: boolean;
  /** send the commands of one event-loop turn in one write */
  autoPipelining?: boolean;
}

export function backoff(attempt: number): number {
  return Math.min(BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 10), BACKOFF_CAP_MS);
}

/** Opens a client for the target; it connects at once and reconnects by itself until closed. */
export function openRedis(target: RedisTarget, o: ConnectOptions = {}): RedisClient {
  releaseFinishedPipelines();
  const common: RedisOptions = {
    maxRetriesPerRequest: 0,
    // A command refused during an outage must not run later behind the caller's back.
    autoResendUnfulfilledCommands: false,
    commandTimeout: o.timeoutMs,
    connectTimeout: o.connectTimeoutMs ?? Math.max(1000, (o.timeoutMs ?? 1000) * 4),
    keepAlive: 10_000,
    connectionName: o.name,
    enableAutoPipelining: o.autoPipelining ?? false,
  };
  if (target.kind === "cluster") {
    const first = new URL(target.nodes[0]!);
    const options: ClusterOptions = {
      enableOfflineQueue: o.offlineQueue ?? false,
      enableReadyCheck: true,
      scaleReads: "master",
      retryDelayOnFailover: 0,
      retryDelayOnMoved: 0,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: Math.max(1000, o.timeoutMs ?? 1000),
      clusterRetryStrategy: backoff,
      enableAutoPipelining: o.autoPipelining ?? false,
      redisOptions: {
        ...common,
        username: decodeURIComponent(first.username) || undefined,
        password: decodeURIComponent(first.password) || undefined,
        tls: first.protocol === "rediss:" ? {} : undefined,
      },
    };
    return new Cluster(
      target.nodes.map((n) => {
        const u = new URL(n);
        return { host: u.hostname, port: Number(u.port || 6379) };
      }),
      options,
    );
  }
  const single: RedisOptions = {
    ...common,
    enableOfflineQueue: o.offlineQueue ?? false,
    retryStrategy: backoff,
    // A master demoted to a replica answers writes with READONLY: find the master again.
    reconnectOnError: (err) => err.message.startsWith("READONLY"),
    lazyConnect: false,
  };
  if (target.kind === "sentinel") {
    return new Redis({
      ...single,
      sentinels: target.nodes,
      name: target.name,
      role: "master",
      // Drop the connection as soon as a sentinel announces a new master, rather than at the next error.
      failoverDetector: true,
      sentinelRetryStrategy: backoff,
    });
  }
  return new Redis(target.url, single);
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/** The hash slot of a key (of its hash tag when it has one). */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

/** The master connections: every node of a Cluster (as known now), or the one server. */
export function masters(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes("master") : [client];
}

/** The node connection that serves the key's slot now, as the Cluster client knows it; undefined if none. */
export function nodeOf(cluster: Cluster, key: string): Redis | undefined {
  const owner = cluster.slots[slotOf(key)]?.[0];
  if (owner === undefined) return undefined;
  return cluster.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === owner);
}

/** "host:port" of a node connection, for messages. */
export function nodeName(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/**
 * A connection of its own to the node that serves the key's slot now (a Cluster's sharded subscriber),
 * or undefined while the slot map is not known. It never reconnects: once it closes, the slot may be
 * served elsewhere, so the caller opens a new one.
 */
export function openNode(cluster: Cluster, key: string, o: ConnectOptions = {}): Redis | undefined {
  const owner = cluster.slots[slotOf(key)]?.[0];
  if (owner === undefined) return undefined;
  const colon = owner.lastIndexOf(":");
  const auth = cluster.options.redisOptions ?? {};
  return new Redis({
    host: owner.slice(0, colon),
    port: Number(owner.slice(colon + 1)),
    username: auth.username,
    password: auth.password,
    tls: auth.tls,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: o.offlineQueue ?? false,
    commandTimeout: o.timeoutMs,
    connectTimeout: o.connectTimeoutMs ?? Math.max(1000, (o.timeoutMs ?? 1000) * 4),
    connectionName: o.name,
    retryStrategy: () => null,
  });
}
