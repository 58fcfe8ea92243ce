/**
 * The queue is only as durable as Redis: warn at start when Redis would lose acknowledged writes on a
 * restart (no AOF) or could evict the queue under memory pressure (an allkeys-* policy).
 */
import type { Logger } from "../log.js";
import type { WbConnection } from "./connection.js";

export async function checkPersistence(conn: WbConnection, log: Logger): Promise<void> {
  let settings: Record<string, string>;
  try {
    settings = await conn.call("CONFIG GET", async (redis) => {
      const a = (await redis.config("GET", "appendonly")) as string[];
      const p = (await redis.config("GET", "maxmemory-policy")) as string[];
      return { appendonly: a[1] ?? "", policy: p[1] ?? "" };
    });
  } catch {
    return; // CONFIG is often disabled on managed Redis: nothing to check
  }
  if (settings.appendonly !== "yes") {
    log.warn(
      "write-behind: Redis runs without appendonly; a Redis restart loses queued writes (see docs/write-behind.md)",
    );
  }
  if (settings.policy?.startsWith("allkeys-")) {
    log.warn(
      { policy: settings.policy },
      "write-behind: Redis may evict the queue under memory pressure; use noeviction or a volatile-* policy",
    );
  }
}
