/** What the client's tests share: cleaning up after a daemon, reading its metrics. */
import { Redis } from "ioredis";
import pg from "pg";
import { PG_URL, REDIS_URL } from "../../test/support/daemon.js";

/** Drops the tables and deletes the Redis keys of a test's tag. */
export async function cleanup(tag: string, tables: string[], redisUrl = REDIS_URL): Promise<void> {
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  try {
    if (tables.length) await db.query(`drop table if exists ${tables.join(", ")}`);
  } finally {
    await db.end();
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${tag}:*`);
    if (keys.length) await redis.del(...keys);
  } catch {
    // a private Redis already stopped holds nothing to clean
  } finally {
    redis.disconnect();
  }
}

/** The value of one sample of the daemon's Prometheus exposition (0 when absent). */
export async function metric(base: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  // the sum over every series with these labels (others, such as protocol, may split it)
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf("}"));
    const have = inner.split(",");
    if (want.every((w) => have.includes(w))) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

export async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
