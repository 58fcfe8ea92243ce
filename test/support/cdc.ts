/**
 * Change data capture tests: a private PostgreSQL with wal_level=logical (the shared one has replica),
 * daemon configurations that read its slot, and the waits the tests time.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { decodeEntry } from "../../src/cache/codec.js";
import type { CacheEntry } from "../../src/cache/adapter.js";
import { startPrivatePostgres, type PrivatePostgres } from "./pg-server.js";
import { REDIS_URL } from "./daemon.js";

export async function startLogicalPostgres(): Promise<PrivatePostgres> {
  return startPrivatePostgres({ wal_level: "logical", max_replication_slots: 8, max_wal_senders: 8 });
}

export interface CdcYaml {
  storeUrl: string;
  prefix: string;
  slot: string;
  publication: string;
  /** keyspace name → lines under it (strategy, table, ...) */
  keyspaces: Record<string, string[]>;
  logLevel?: string;
}

export function cdcYaml(o: CdcYaml): string {
  const lines = [
    "server:",
    "  port: 0",
    "cache:",
    `  url: ${REDIS_URL}`,
    `  prefix: ${o.prefix}`,
    "store:",
    `  url: ${o.storeUrl}`,
    "  timeout: 2s",
    "  cdc:",
    `    slot: ${o.slot}`,
    `    publication: ${o.publication}`,
    "checker:",
    "  enabled: false",
    "log:",
    `  level: ${o.logLevel ?? "silent"}`,
    "keyspaces:",
  ];
  for (const [name, body] of Object.entries(o.keyspaces)) {
    lines.push(`  ${name}:`, ...body.map((l) => `    ${l}`));
  }
  return `${lines.join("\n")}\n`;
}

/** Polls until check() returns a value that is not undefined; the value and the ms it took. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  everyMs = 10,
): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return { value: v, ms: performance.now() - started };
    } catch (err) {
      last = err;
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Reads cache entries straight from Redis, as a user with redis-cli would. */
export class RedisPeek {
  readonly redis = new Redis(REDIS_URL);
  constructor(private readonly prefix: string) {}

  async entry(keyspace: string, key: string): Promise<CacheEntry | null> {
    const text = await this.redis.get(`${this.prefix}:kv:{${keyspace}}:${key}`);
    return text === null ? null : decodeEntry(text);
  }

  async cleanup(): Promise<void> {
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", `${this.prefix}:*`, "COUNT", 1000);
      if (keys.length > 0) await this.redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
    this.redis.disconnect();
  }
}

/** A plain SQL client: the "someone else" who writes behind sidecache's back. */
export async function sqlClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

/** The slot's confirmed position and whether a walsender streams it. */
export async function slotState(
  db: pg.Client,
  slot: string,
): Promise<{ confirmed: string; active: boolean } | undefined> {
  const r = await db.query(
    `select confirmed_flush_lsn::text as confirmed, active from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = r.rows[0] as { confirmed: string; active: boolean } | undefined;
  return row;
}

/** The sum of a metric's samples whose labels include `labels`, from Prometheus text. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}
