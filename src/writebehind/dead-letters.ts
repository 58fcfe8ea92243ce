/**
 * The dead letters of a write-behind keyspace: writes PostgreSQL refused max_attempts times. They stay in
 * a Redis stream until an operator replays them (queued again with a fresh version, so they land above
 * anything written since) or drops them. The admin API calls these.
 */
import { QueueFullError } from "../errors.js";
import type { WriteOrigin } from "../store/adapter.js";
import { nextVersion } from "../version.js";
import { auditTagOf } from "./audit-tags.js";
import type { WriteQueue } from "./queue.js";

export interface DeadLetter {
  /** the id in the dead-letter stream: what replay and drop take */
  id: string;
  /** the id the write had in the queue */
  entryId: string;
  key: string;
  version: number;
  /** raw JSON text; null for a delete */
  value: string | null;
  reason: string;
  attempts: number;
  /** ms since the epoch it was dead-lettered */
  at: number;
}

/** Up to count dead letters, oldest first, after the id given (exclusive). */
export async function listDeadLetters(queue: WriteQueue, count = 100, after?: string): Promise<DeadLetter[]> {
  const start = after ? `(${after}` : "-";
  const rows = await queue.conn.call("XRANGE", (redis) =>
    redis.xrange(queue.keys.dead, start, "+", "COUNT", count),
  );
  return rows.map(([id, fields]) => toDeadLetter(id, fields));
}

/** Queues the write again with a fresh version and removes the dead letter; its new version, or null when no such letter. */
export async function replayDeadLetter(
  queue: WriteQueue,
  id: string,
  /** the keyspace keeps an audit log: who replays it */
  audit?: { origin?: WriteOrigin },
): Promise<{ key: string; version: number } | null> {
  const rows = await queue.conn.call("XRANGE", (redis) => redis.xrange(queue.keys.dead, id, id));
  const row = rows[0];
  if (!row) return null;
  const letter = toDeadLetter(row[0], row[1]);
  const tag = audit ? auditTagOf(letter.value === null ? "delete" : "put", audit.origin) : undefined;
  const r = await queue.enqueue([{ key: letter.key, value: letter.value, tag }], nextVersion());
  if (r.kind === "full") throw new QueueFullError(queue.ks.name, 1);
  if (r.kind !== "ok") throw new Error(`unexpected answer ${r.kind} to an unconditional write`);
  await dropDeadLetter(queue, id);
  return { key: letter.key, version: r.versions[0]! };
}

/** Removes a dead letter for good; whether there was one. */
export async function dropDeadLetter(queue: WriteQueue, id: string): Promise<boolean> {
  const n = await queue.conn.call("XDEL", (redis) => redis.xdel(queue.keys.dead, id));
  return n > 0;
}

function toDeadLetter(id: string, fields: string[]): DeadLetter {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return {
    id,
    entryId: f.id ?? "",
    key: f.k ?? "",
    version: Number(f.n ?? 0),
    value: f.op === "d" ? null : (f.v ?? ""),
    reason: f.reason ?? "",
    attempts: Number(f.attempts ?? 0),
    at: Number(f.at ?? 0),
  };
}
