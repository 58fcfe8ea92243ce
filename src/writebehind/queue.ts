/**
 * The queue of one write-behind keyspace in Redis: enqueueing (one Lua script: depth check, conditions,
 * version, stream entry, pending write and cache entry at once), the pending writes reads consult, and the
 * stream operations the flusher needs.
 */
import { WRITE_MARKER_MIN_MS } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import type { QueueStatus } from "../strategies/strategy.js";
import type { WbConnection } from "./connection.js";
import {
  GROUP,
  idTime,
  parseEntry,
  parsePending,
  type PendingWrite,
  type QueuedWrite,
  type WbKeys,
} from "./keys.js";
import {
  DEAD_LETTER_LUA,
  ENQUEUE_LUA,
  ENQUEUE_SHARE_LUA,
  RELEASE_LEASE_LUA,
  RENEW_LEASE_LUA,
  SETTLE_LUA,
  STATUS_LUA,
} from "./scripts.js";
import { Script } from "../cache/script.js";

const enqueueScript = new Script(ENQUEUE_LUA);
const enqueueShareScript = new Script(ENQUEUE_SHARE_LUA);
const settleScript = new Script(SETTLE_LUA);
const deadLetterScript = new Script(DEAD_LETTER_LUA);
const statusScript = new Script(STATUS_LUA);
const releaseScript = new Script(RELEASE_LEASE_LUA);

export interface EnqueueItem {
  key: string;
  /** raw JSON text; null deletes */
  value: string | null;
  ifMatch?: number;
  ifNoneMatch?: boolean;
  /** what PostgreSQL held when looked up for a condition: `e:<version>` or `a:<version>` */
  base?: string;
  /** who asked, for the keyspace's audit log (auditTagOf); kept with the queued write */
  tag?: string;
}

export type EnqueueResult =
  | { kind: "ok"; versions: number[] }
  | { kind: "full"; depth: number }
  | { kind: "base"; key: string }
  | { kind: "mismatch"; key: string; why: string };

type RawEntries = [string, string[] | null][];

export class WriteQueue {
  constructor(
    readonly conn: WbConnection,
    readonly keys: WbKeys,
    readonly ks: KeyspaceConfig,
    private readonly cacheKeyOf: (key: string) => string,
  ) {}

  /**
   * share: this partition's share of a write that spans partitions (journal.ts), queued once whatever the
   * number of calls (the key of its done-marker).
   */
  async enqueue(
    items: EnqueueItem[],
    floor: number,
    maxQueue = this.ks.writeBehind.maxQueue,
    share?: string,
  ): Promise<EnqueueResult> {
    const now = Date.now();
    const { ttlMs, staleGraceMs, negativeTtlMs } = this.ks;
    const args: (string | number)[] = [
      maxQueue,
      floor,
      now + ttlMs,
      Math.max(WRITE_MARKER_MIN_MS, ttlMs + staleGraceMs),
      now + negativeTtlMs,
      Math.max(WRITE_MARKER_MIN_MS, negativeTtlMs),
    ];
    for (const it of items) {
      const cond = it.ifNoneMatch ? "n" : it.ifMatch !== undefined ? `m:${it.ifMatch}` : "";
      args.push(it.key, it.value === null ? "d" : "p", it.value ?? "", cond, it.base ?? "", it.tag ?? "");
    }
    const keys = [
      this.keys.stream,
      this.keys.pending,
      this.keys.clock,
      ...items.map((i) => this.cacheKeyOf(i.key)),
    ];
    if (share !== undefined) keys.push(share);
    const script = share === undefined ? enqueueScript : enqueueShareScript;
    const r = (await this.conn.call("enqueue", (redis) => script.run(redis, keys, args))) as string[];
    switch (r[0]) {
      case "ok":
        return { kind: "ok", versions: r.slice(1).map(Number) };
      case "full":
        return { kind: "full", depth: Number(r[1]) };
      case "base":
        return { kind: "base", key: r[1]! };
      default:
        return { kind: "mismatch", key: r[1]!, why: r[2]! };
    }
  }

  async pending(key: string): Promise<PendingWrite | null> {
    return parsePending(await this.conn.call("HGET", (redis) => redis.hget(this.keys.pending, key)));
  }

  async pendingMany(keys: string[]): Promise<(PendingWrite | null)[]> {
    if (keys.length === 0) return [];
    const texts = await this.conn.call("HMGET", (redis) => redis.hmget(this.keys.pending, ...keys));
    return texts.map(parsePending);
  }

  /** Creates the consumer group (from the start of the stream) unless it exists. */
  async ensureGroup(): Promise<void> {
    await this.conn.call("XGROUP CREATE", async (redis) => {
      try {
        await redis.xgroup("CREATE", this.keys.stream, GROUP, "0", "MKSTREAM");
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith("BUSYGROUP")) throw err;
      }
    });
  }

  /** New entries for this consumer, waiting up to blockMs for the first (0: no wait), on a blocking connection. */
  async readNew(on: WbConnection, consumer: string, count: number, blockMs: number): Promise<QueuedWrite[]> {
    const block = blockMs > 0 ? ["BLOCK", Math.ceil(blockMs)] : [];
    const reply = (await on.call("XREADGROUP", (redis) =>
      redis.call(
        "XREADGROUP",
        "GROUP",
        GROUP,
        consumer,
        "COUNT",
        count,
        ...block,
        "STREAMS",
        this.keys.stream,
        ">",
      ),
    )) as [string, RawEntries][] | null;
    return entries(reply?.[0]?.[1] ?? []);
  }

  /**
   * Takes over entries idle for minIdleMs at any consumer (this one included: writes PostgreSQL refused wait
   * there for their next try). Returns the writes and the cursor to continue from ("0-0": the end).
   */
  async claim(
    consumer: string,
    minIdleMs: number,
    cursor: string,
    count: number,
  ): Promise<{ next: string; writes: QueuedWrite[] }> {
    const reply = (await this.conn.call("XAUTOCLAIM", (redis) =>
      redis.call(
        "XAUTOCLAIM",
        this.keys.stream,
        GROUP,
        consumer,
        Math.floor(minIdleMs),
        cursor,
        "COUNT",
        count,
      ),
    )) as [string, RawEntries, string[]?];
    return { next: reply[0], writes: entries(reply[1]) };
  }

  /** Resets the idle time of entries this consumer holds (a batch being retried), so no one claims them. */
  async touch(consumer: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.conn.call("XCLAIM", (redis) =>
      redis.call("XCLAIM", this.keys.stream, GROUP, consumer, 0, ...ids, "JUSTID"),
    );
  }

  /** PostgreSQL holds these writes; `applied` are the versions that were written per key. */
  async settle(writes: QueuedWrite[], applied: { key: string; version: number }[]): Promise<void> {
    if (writes.length === 0) return;
    const args: string[] = [GROUP, String(writes.length), ...writes.map((w) => w.id)];
    for (const a of applied) args.push(a.key, String(a.version));
    await this.conn.call("settle", (redis) =>
      settleScript.run(redis, [this.keys.stream, this.keys.pending, this.keys.attempts], args),
    );
  }

  /** Counts one more refusal of an entry; returns how many it has had. */
  async countAttempt(id: string): Promise<number> {
    return this.conn.call("HINCRBY", (redis) => redis.hincrby(this.keys.attempts, id, 1));
  }

  /** Moves a write PostgreSQL refused for good to the dead letters; false when another flusher settled it. */
  async deadLetter(write: QueuedWrite, reason: string, attempts: number): Promise<boolean> {
    const keys = [
      this.keys.stream,
      this.keys.pending,
      this.keys.attempts,
      this.keys.dead,
      this.cacheKeyOf(write.key),
    ];
    const args = [
      GROUP,
      write.id,
      write.key,
      String(write.version),
      write.value === null ? "d" : "p",
      write.value ?? "",
      reason,
      String(attempts),
      Math.max(this.ks.ttlMs, WRITE_MARKER_MIN_MS),
      Date.now(),
    ];
    const r = await this.conn.call("dead letter", (redis) => deadLetterScript.run(redis, keys, args));
    return r === 1;
  }

  async status(): Promise<QueueStatus> {
    const [depth, first, secs, micros, dead] = (await this.conn.call("status", (redis) =>
      statusScript.run(redis, [this.keys.stream, this.keys.dead], []),
    )) as [number, string, string, string, number];
    const now = Number(secs) * 1000 + Number(micros) / 1000;
    const oldestSeconds = first ? Math.max(0, (now - idTime(first)) / 1000) : 0;
    return { depth, oldestSeconds, deadLetters: dead };
  }

  /** The depth and the id of the newest entry (null when empty), as of one moment. */
  async tail(): Promise<{ depth: number; lastId: string | null }> {
    const r = await this.conn.call("tail", (redis) =>
      redis.multi().xlen(this.keys.stream).xrevrange(this.keys.stream, "+", "-", "COUNT", 1).exec(),
    );
    const depth = Number(r?.[0]?.[1] ?? 0);
    const last = r?.[1]?.[1] as [string, string[]][] | undefined;
    return { depth, lastId: last?.[0]?.[0] ?? null };
  }

  /** Whether any entry up to this id is still in the queue. */
  async holdsUpTo(id: string): Promise<boolean> {
    const r = await this.conn.call("XRANGE", (redis) => redis.xrange(this.keys.stream, "-", id, "COUNT", 1));
    return r.length > 0;
  }

  /**
   * Says this consumer is alive for ttlMs (the others leave its pending writes alone meanwhile) and takes
   * or keeps the claimer lease for as long, in one round trip; whether this consumer holds the lease.
   */
  async heartbeat(consumer: string, ttlMs: number, holding: boolean): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttlMs));
    const r = await this.conn.call("heartbeat", (redis) => {
      const p = redis.pipeline().set(`${this.keys.alive}${consumer}`, "1", "PX", px);
      if (holding) p.eval(RENEW_LEASE_LUA, 1, this.keys.claimer, consumer, px);
      else p.set(this.keys.claimer, consumer, "PX", px, "NX");
      return p.exec();
    });
    for (const [err] of r ?? []) if (err) throw err;
    const lease = r?.[1]?.[1];
    return lease === "OK" || lease === 1;
  }

  /** Gives the claimer lease back if this consumer holds it. */
  async releaseClaimer(consumer: string): Promise<void> {
    await this.conn.call("release", (redis) => releaseScript.run(redis, [this.keys.claimer], [consumer]));
  }

  /** Of these consumers, those whose heartbeat is gone: dead, or stopped without draining. */
  async dead(consumers: string[]): Promise<string[]> {
    if (consumers.length === 0) return [];
    const alive = await this.conn.call("MGET", (redis) =>
      redis.mget(consumers.map((c) => `${this.keys.alive}${c}`)),
    );
    return consumers.filter((_, i) => alive[i] === null);
  }

  /** Takes over up to count writes a consumer holds, whatever their idle time (a consumer found dead). */
  async takeFrom(from: string, to: string, count: number): Promise<QueuedWrite[]> {
    const pending = (await this.conn.call("XPENDING", (redis) =>
      redis.call("XPENDING", this.keys.stream, GROUP, "-", "+", count, from),
    )) as [string, string, number, number][];
    if (pending.length === 0) return [];
    const reply = (await this.conn.call("XCLAIM", (redis) =>
      redis.call("XCLAIM", this.keys.stream, GROUP, to, 0, ...pending.map((p) => p[0])),
    )) as RawEntries;
    return entries(reply);
  }

  /** The consumers of the group: name, entries pending, ms idle. */
  async consumers(): Promise<{ name: string; pending: number; idle: number }[]> {
    const rows = (await this.conn.call("XINFO CONSUMERS", (redis) =>
      redis.call("XINFO", "CONSUMERS", this.keys.stream, GROUP),
    )) as (string | number)[][];
    return rows.map((row) => {
      const o: Record<string, string | number> = {};
      for (let i = 0; i + 1 < row.length; i += 2) o[String(row[i])] = row[i + 1]!;
      return { name: String(o.name), pending: Number(o.pending), idle: Number(o.idle) };
    });
  }

  async dropConsumer(name: string): Promise<void> {
    await this.conn.call("XGROUP DELCONSUMER", (redis) =>
      redis.xgroup("DELCONSUMER", this.keys.stream, GROUP, name),
    );
  }
}

function entries(raw: RawEntries): QueuedWrite[] {
  const out: QueuedWrite[] = [];
  for (const [id, fields] of raw) {
    const w = parseEntry(id, fields);
    if (w) out.push(w);
  }
  return out;
}
