/** Shared by the checker tests: a daemon with checker options, direct access to Redis and PostgreSQL, a webhook receiver. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import pg from "pg";
import { parseConfig } from "../src/config/load.js";
import { Daemon, type DaemonOptions } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import { PG_URL, REDIS_URL } from "./support/daemon.js";

export { PG_URL, REDIS_URL };

export async function daemonWith(yaml: string, checker: DaemonOptions["checker"] = {}): Promise<Daemon> {
  const config = parseConfig(yaml, "test.yaml");
  return Daemon.start({ ...config, server: { ...config.server, port: 0 } }, { log: silentLogger, checker });
}

export interface Received {
  path: string;
  body: unknown;
}

/** A local HTTP receiver; answers `status()` (200 by default), records what it got. */
export async function receiver(): Promise<{
  url: string;
  got: Received[];
  status: { code: number };
  close(): Promise<void>;
}> {
  const got: Received[] = [];
  const status = { code: 200 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const code = status.code;
      if (code >= 200 && code < 300) {
        got.push({ path: req.url ?? "", body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
      }
      res.writeHead(code).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    got,
    status,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Polls until fn() is truthy, or throws after the deadline. */
export async function until<T>(fn: () => T | Promise<T>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function clients(): { redis: Redis; pg: pg.Pool } {
  const p = new pg.Pool({ connectionString: PG_URL, max: 2 });
  p.on("error", () => {});
  return { redis: new Redis(REDIS_URL), pg: p };
}

/** The cache entry of a key in Redis, decoded: kind letter, version, value text. */
export async function rawEntry(
  redis: Redis,
  prefix: string,
  ks: string,
  key: string,
): Promise<{ kind: string; version: number; value: string } | null> {
  const text = await redis.get(`${prefix}:kv:{${ks}}:${key}`);
  if (text === null) return null;
  const m = /^(\w)(\d+):(\w*):(\d+):(.*)$/s.exec(text);
  if (!m) throw new Error(`unexpected entry ${text}`);
  return { kind: m[1]!, version: Number(m[2]), value: m[5]! };
}

/**
 * Overwrites a key's cache entry with a value entry at this version, fresh for an hour, of no incarnation
 * (as the write-behind queue writes them: valid in every incarnation).
 */
export async function writeEntry(
  redis: Redis,
  prefix: string,
  ks: string,
  key: string,
  version: number,
  value: string,
): Promise<void> {
  await redis.set(
    `${prefix}:kv:{${ks}}:${key}`,
    `v${version}::${Date.now() + 3_600_000}:${value}`,
    "PX",
    3_600_000,
  );
}

export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
