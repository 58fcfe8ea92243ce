/**
 * The cache in Redis (ioredis). One string per entry (codec.ts) under `${prefix}:kv:{${keyspace}}:${key}`;
 * the hash tag keeps a keyspace in one slot. Calls fail fast while Redis is unreachable (no offline queue,
 * a per-command timeout) and the client reconnects by itself, forever, with a capped backoff.
 */
import { randomInt } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { CacheAdapter, CacheEntry, ConnectionState } from "./adapter.js";
import { decodeEntry, encodeEntry, HEAD_MAX_BYTES } from "./codec.js";
import type { CacheConfig } from "../config/types.js";
import { BackendUnavailableError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";

/**
 * KEYS[1] the entry; ARGV[1] the new version, ARGV[2] the encoded entry, ARGV[3] the TTL in ms.
 * Only the head of the cached entry is read. Versions compare as Lua numbers (doubles), exact up to 2^53.
 * An entry that does not decode is overwritten.
 */
const SET_IF_NEWER_LUA = `
local head = redis.call('GETRANGE', KEYS[1], 0, ${HEAD_MAX_BYTES - 1})
if head ~= '' then
  local kind, digits = string.match(head, '^(%a)(%-?%d+):')
  local cached = digits and tonumber(digits)
  if cached then
    local v = tonumber(ARGV[1])
    local refresh = kind == 'v' and v == cached and string.sub(ARGV[2], 1, 1) == 'v'
    if not (v > cached or (kind == 't' and v >= cached) or refresh) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

const SCAN_COUNT = 1000;
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 1000;
const CLOSE_WAIT_MS = 1000;

type ScriptClient = Redis & {
  sidecacheSetIfNewer(key: string, version: string, encoded: string, ttlMs: string): Promise<number>;
};

export class RedisCache implements CacheAdapter {
  readonly kind = "redis";
  private readonly redis: ScriptClient;
  private readonly where: string;
  private readonly timeoutMs: number;
  private everReady = false;
  private lastError: Error | undefined;
  private outage = false;
  private closed = false;

  constructor(
    private readonly config: CacheConfig,
    private readonly log: Logger = silentLogger,
  ) {
    const url = new URL(config.url);
    this.where = `${url.protocol}//${url.hostname}:${url.port || "6379"}`;
    this.timeoutMs = Math.max(1, config.timeoutMs);
    const options: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A command refused during an outage must not run later behind the caller's back.
      autoResendUnfulfilledCommands: false,
      commandTimeout: this.timeoutMs,
      connectTimeout: Math.max(1000, this.timeoutMs * 4),
      keepAlive: 10_000,
      retryStrategy: (attempt) => Math.min(BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 10), BACKOFF_CAP_MS),
      reconnectOnError: (err) => err.message.startsWith("READONLY"),
      lazyConnect: false,
      // Commands issued in the same turn of the event loop go out in one write: on loopback each write
      // costs the sender the whole TCP path, and it was a third of the hit path's CPU.
      enableAutoPipelining: true,
    };
    this.redis = new Redis(config.url, options) as ScriptClient;
    this.redis.defineCommand("sidecacheSetIfNewer", { numberOfKeys: 1, lua: SET_IF_NEWER_LUA });
    this.redis.on("ready", () => {
      this.everReady = true;
      this.lastError = undefined;
      if (this.outage) this.log.info({ cache: this.where }, "cache reachable again");
      this.outage = false;
    });
    this.redis.on("error", (err: Error) => {
      this.lastError = err;
      if (!this.outage && !this.closed) {
        this.outage = true;
        this.log.warn({ cache: this.where, err: err.message }, "cache unreachable; reconnecting");
      }
    });
    this.redis.on("close", () => {
      if (this.everReady && !this.outage && !this.closed) {
        this.outage = true;
        this.log.warn({ cache: this.where }, "cache connection closed; reconnecting");
      }
    });
  }

  onConnectionChange(listener: (state: ConnectionState) => void): () => void {
    const up = () => listener("up");
    const down = () => listener("down");
    this.redis.on("ready", up);
    this.redis.on("close", down);
    return () => {
      this.redis.off("ready", up);
      this.redis.off("close", down);
    };
  }

  /** The ioredis client, for those who need a raw command. */
  get client(): Redis {
    return this.redis;
  }

  /** The Redis key of an entry. */
  redisKey(keyspace: string, key: string): string {
    return `${this.keyspaceBase(keyspace)}${key}`;
  }

  async get(keyspace: string, key: string): Promise<CacheEntry | null> {
    const text = await this.call("GET", () => this.redis.get(this.redisKey(keyspace, key)));
    return text === null ? null : decodeEntry(text);
  }

  async getMany(keyspace: string, keys: string[]): Promise<(CacheEntry | null)[]> {
    if (keys.length === 0) return [];
    const texts = await this.call("MGET", () => this.redis.mget(keys.map((k) => this.redisKey(keyspace, k))));
    return texts.map((t) => (t === null ? null : decodeEntry(t)));
  }

  async setIfNewer(keyspace: string, key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    const encoded = encodeEntry(entry);
    const px = String(Math.min(Math.max(1, Math.ceil(ttlMs)), Number.MAX_SAFE_INTEGER));
    const taken = await this.call("setIfNewer", () =>
      this.redis.sidecacheSetIfNewer(this.redisKey(keyspace, key), String(entry.version), encoded, px),
    );
    return taken === 1;
  }

  async delete(keyspace: string, key: string): Promise<void> {
    await this.call("DEL", () => this.redis.del(this.redisKey(keyspace, key)));
  }

  /** SCAN over the keyspace's entries, UNLINK each batch found. */
  async deleteKeyspace(keyspace: string): Promise<number> {
    const pattern = `${escapeGlob(this.keyspaceBase(keyspace))}*`;
    let cursor = "0";
    let removed = 0;
    do {
      const [next, keys] = await this.call("SCAN", () =>
        this.redis.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT),
      );
      if (keys.length > 0) removed += await this.call("UNLINK", () => this.redis.unlink(...keys));
      cursor = next;
    } while (cursor !== "0");
    return removed;
  }

  /**
   * SCAN from a random cursor to the end, then from the start again, until n distinct keys are found or
   * a whole pass is done. Redis masks a cursor larger than its table, so any random number is a valid start.
   */
  async sampleKeys(keyspace: string, n: number): Promise<string[]> {
    const want = Math.floor(n);
    if (!(want > 0)) return [];
    const base = this.keyspaceBase(keyspace);
    const pattern = `${escapeGlob(base)}*`;
    const found = new Set<string>();
    let cursor = String(randomInt(0, 2 ** 32));
    let wrapped = cursor === "0";
    while (found.size < want) {
      const [next, keys] = await this.call("SCAN", () =>
        this.redis.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT),
      );
      for (const k of keys) {
        if (found.size >= want) break;
        found.add(k.slice(base.length));
      }
      cursor = next;
      if (cursor === "0") {
        if (wrapped) break;
        wrapped = true;
      }
    }
    return [...found];
  }

  async ping(): Promise<void> {
    await this.call("PING", () => this.redis.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.redis.status === "ready") await this.redis.quit();
    } catch {
      // the connection is going away anyway
    }
    const status = this.redis.status;
    // "wait" and "reconnecting" have no socket to wait for: disconnect only clears the reconnect timer
    const ended =
      status === "end" || status === "wait" || status === "reconnecting"
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, CLOSE_WAIT_MS);
            this.redis.once("end", () => {
              clearTimeout(timer);
              resolve();
            });
          });
    this.redis.disconnect(false);
    await ended;
  }

  private keyspaceBase(keyspace: string): string {
    return `${this.config.prefix}:kv:{${keyspace}}:`;
  }

  /** Runs one command, or fails at once with BackendUnavailableError while Redis is not reachable. */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.closed) throw this.unavailable(what, "the adapter is closed");
    if (this.redis.status !== "ready") {
      // Right after start the first connection is still being made: give it one timeout to come up.
      if (this.everReady || this.lastError !== undefined || !(await this.firstReady())) {
        throw this.unavailable(what, this.lastError?.message ?? `the connection is ${this.redis.status}`);
      }
    }
    try {
      return await run();
    } catch (err) {
      throw this.unavailable(what, err instanceof Error ? err.message : String(err), err);
    }
  }

  private firstReady(): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.redis.off("ready", onReady);
        this.redis.off("error", onError);
        resolve(ok);
      };
      const onReady = () => done(true);
      const onError = () => done(false);
      const timer = setTimeout(() => done(false), this.timeoutMs);
      this.redis.on("ready", onReady);
      this.redis.on("error", onError);
    });
  }

  private unavailable(what: string, reason: string, cause?: unknown): BackendUnavailableError {
    return new BackendUnavailableError(
      "cache",
      `The cache (redis at ${this.where}) failed ${what}: ${reason}.`,
      cause,
    );
  }
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}
