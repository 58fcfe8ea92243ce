/**
 * The cache in Redis (ioredis). One string per entry (codec.ts) under `${prefix}:kv:{${keyspace}}:${key}`;
 * the hash tag keeps a keyspace in one slot. Calls fail fast while Redis is unreachable (no offline queue,
 * a per-command timeout) and the client reconnects by itself, forever, with a capped backoff.
 */
import { randomBytes, randomInt } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { CacheAdapter, CacheEntry, ConnectionState, TrustBoard } from "./adapter.js";
import type { SetOptions } from "./adapter.js";
import { decodeEntry, encodeEntry, ENTRY_LUA, incarnationOf, kindLetter } from "./codec.js";
import { ADOPT_LUA, Incarnations } from "./incarnation.js";
import { RedisTrustBoard } from "./trust-board.js";
import type { CacheConfig } from "../config/types.js";
import { BackendUnavailableError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";

/**
 * KEYS[1] the entry, KEYS[2] the incarnation marker; ARGV[1] the new version, ARGV[2] the new kind letter,
 * ARGV[3] the encoded entry, ARGV[4] the TTL in ms, ARGV[5] the marker's expected text, ARGV[6] the
 * incarnation. -1 when the marker is not the expected one (the cache changed incarnation: nothing is
 * written). An entry of another incarnation counts as nothing cached; one of none (the write-behind
 * queue's) counts as current. Only the head of the cached entry is read.
 */
const SET_IF_NEWER_LUA = `${ENTRY_LUA}
if redis.call('GET', KEYS[2]) ~= ARGV[5] then return -1 end
local kind, cached, inc = entryHead(KEYS[1])
if kind and (inc == ARGV[6] or inc == '') then
  local v = tonumber(ARGV[1])
  local refresh = kind == 'v' and v == cached and ARGV[2] == 'v'
  if not (v > cached or (kind == 't' and v >= cached) or refresh) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
`;

/**
 * KEYS[1] the entry; ARGV[1] the kind letter, ARGV[2] the version, ARGV[3] the incarnation. Deletes the
 * entry only when it is that one. Returns 1 when deleted.
 */
const DELETE_IF_LUA = `${ENTRY_LUA}
local kind, v, inc = entryHead(KEYS[1])
if kind == ARGV[1] and v == tonumber(ARGV[2]) and (inc == ARGV[3] or inc == '') then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;

/** KEYS[1] the fill lease; ARGV[1] the token. Deletes the lease if it is still that token's. */
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

const SCAN_COUNT = 1000;
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 1000;
const CLOSE_WAIT_MS = 1000;
/** Entries of another incarnation make the marker be read again at most this often. */
const RECHECK_MS = 250;

type ScriptClient = Redis & {
  sidecacheSetIfNewer(
    key: string,
    marker: string,
    version: string,
    kind: string,
    encoded: string,
    ttlMs: string,
    expected: string,
    incarnation: string,
  ): Promise<number>;
  sidecacheAdopt(marker: string, runId: string, candidate: string): Promise<string>;
  sidecacheDeleteIf(key: string, kind: string, version: string, incarnation: string): Promise<number>;
  sidecacheRelease(lease: string, token: string): Promise<number>;
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
  private readonly incarnations: Incarnations;
  readonly trustBoard: TrustBoard;

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
    this.redis.defineCommand("sidecacheSetIfNewer", { numberOfKeys: 2, lua: SET_IF_NEWER_LUA });
    this.redis.defineCommand("sidecacheAdopt", { numberOfKeys: 1, lua: ADOPT_LUA });
    this.redis.defineCommand("sidecacheDeleteIf", { numberOfKeys: 1, lua: DELETE_IF_LUA });
    this.redis.defineCommand("sidecacheRelease", { numberOfKeys: 1, lua: RELEASE_LUA });
    this.trustBoard = new RedisTrustBoard(this.redis, config.prefix, (what, run) => this.call(what, run));
    this.incarnations = new Incarnations(
      {
        runId: async () => {
          const info = await this.redis.info("server");
          const m = /^run_id:(\w+)/m.exec(info);
          if (!m) throw new Error("INFO server has no run_id");
          return m[1]!;
        },
        adopt: (marker, runId, candidate) => this.redis.sidecacheAdopt(marker, runId, candidate),
        read: (marker) => this.redis.get(marker),
      },
      (tag) => `${this.config.prefix}:inc:{${tag}}`,
      (tag, from, to) =>
        this.log.warn(
          { cache: this.where, keyspace: tag, from, to },
          "the cache is another incarnation (restarted, failed over, flushed or replaced): its entries are not served",
        ),
    );
    // Before any listener of "ready" runs, so that no call is made for the old incarnation.
    this.redis.prependListener("ready", () => this.incarnations.reconnected());
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

  generation(): number {
    return this.incarnations.generation;
  }

  async get(keyspace: string, key: string): Promise<CacheEntry | null> {
    const inc = this.incarnations.peek(keyspace) ?? (await this.adopted(keyspace));
    const text = await this.call("GET", () => this.redis.get(this.redisKey(keyspace, key)));
    return text === null ? null : this.current(keyspace, inc.incarnation, text);
  }

  async getMany(keyspace: string, keys: string[]): Promise<(CacheEntry | null)[]> {
    if (keys.length === 0) return [];
    const inc = this.incarnations.peek(keyspace) ?? (await this.adopted(keyspace));
    const texts = await this.call("MGET", () => this.redis.mget(keys.map((k) => this.redisKey(keyspace, k))));
    return texts.map((t) => (t === null ? null : this.current(keyspace, inc.incarnation, t)));
  }

  async setIfNewer(
    keyspace: string,
    key: string,
    first: CacheEntry,
    ttlMs: number,
    options?: SetOptions,
  ): Promise<boolean> {
    const px = String(Math.min(Math.max(1, Math.ceil(ttlMs)), Number.MAX_SAFE_INTEGER));
    let entry = first;
    for (let attempt = 0; ; attempt++) {
      if (options?.generation !== undefined && options.generation !== this.generation()) {
        if (entry.kind !== "tombstone") return false;
      }
      const inc = this.incarnations.peek(keyspace) ?? (await this.adopted(keyspace));
      const encoded = encodeEntry(entry, inc.incarnation);
      const taken = await this.call("setIfNewer", () =>
        this.redis.sidecacheSetIfNewer(
          this.redisKey(keyspace, key),
          this.incarnationMarker(keyspace),
          String(entry.version),
          kindLetter(entry.kind),
          encoded,
          px,
          this.incarnations.markerText(inc),
          inc.incarnation,
        ),
      );
      if (taken !== -1) return taken === 1;
      // The marker moved: adopt what it holds now. A fill (it carries the generation its row was read in)
      // is dropped. A write's entry is not put as it is (a later write's entry may have been lost with the
      // old incarnation): a tombstone at its version takes its place, which hides every older fill and lets
      // this version in. Without it the key would hold nothing, and a fill that read the row before the
      // write could land.
      await this.call("adopt", () => this.incarnations.readopt(keyspace));
      if (options?.generation !== undefined || attempt > 0) return false;
      entry = { kind: "tombstone", version: entry.version, freshUntil: 0 };
    }
  }

  async delete(keyspace: string, key: string): Promise<void> {
    await this.call("DEL", () => this.redis.del(this.redisKey(keyspace, key)));
  }

  async deleteIf(
    keyspace: string,
    key: string,
    observed: Pick<CacheEntry, "kind" | "version">,
  ): Promise<boolean> {
    const inc = this.incarnations.peek(keyspace) ?? (await this.adopted(keyspace));
    const letter = kindLetter(observed.kind);
    const n = await this.call("deleteIf", () =>
      this.redis.sidecacheDeleteIf(
        this.redisKey(keyspace, key),
        letter,
        String(observed.version),
        inc.incarnation,
      ),
    );
    return n === 1;
  }

  async takeFillLease(keyspace: string, key: string, ms: number): Promise<string | null> {
    const token = randomBytes(8).toString("hex");
    const ok = await this.call("fill lease", () =>
      this.redis.set(this.fillLeaseKey(keyspace, key), token, "PX", Math.max(1, Math.ceil(ms)), "NX"),
    );
    return ok === "OK" ? token : null;
  }

  async watchFill(keyspace: string, key: string): Promise<{ entry: CacheEntry | null; leased: boolean }> {
    const inc = this.incarnations.peek(keyspace) ?? (await this.adopted(keyspace));
    const [text, lease] = await this.call("MGET", () =>
      this.redis.mget(this.redisKey(keyspace, key), this.fillLeaseKey(keyspace, key)),
    );
    const entry = text === null || text === undefined ? null : this.current(keyspace, inc.incarnation, text);
    return { entry, leased: lease !== null && lease !== undefined };
  }

  async releaseFillLease(keyspace: string, key: string, token: string): Promise<void> {
    await this.call("release fill lease", () =>
      this.redis.sidecacheRelease(this.fillLeaseKey(keyspace, key), token),
    );
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

  /** PING, and the incarnation markers read again (a FLUSHALL keeps the connection). */
  async ping(): Promise<void> {
    await this.call("PING", () => this.redis.ping());
    await this.call("verify", () => this.incarnations.verify());
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

  /** The key's fill lease: the keyspace's hash tag, so it shares the entry's slot. */
  private fillLeaseKey(keyspace: string, key: string): string {
    return `${this.config.prefix}:fl:{${keyspace}}:${key}`;
  }

  private incarnationMarker(keyspace: string): string {
    return `${this.config.prefix}:inc:{${keyspace}}`;
  }

  private adopted(keyspace: string) {
    return this.call("adopt", () => this.incarnations.of(keyspace));
  }

  /**
   * The entry when it was written for the current incarnation (or for none: the write-behind queue's);
   * null otherwise. An entry of an incarnation newer than ours means another daemon saw the cache change
   * first: look at the marker again.
   */
  private current(keyspace: string, incarnation: string, text: string): CacheEntry | null {
    const inc = incarnationOf(text);
    if (inc !== incarnation && inc !== "") {
      if (inc !== null) this.recheck(keyspace);
      return null;
    }
    return decodeEntry(text);
  }

  private lastRecheck = 0;

  private recheck(keyspace: string): void {
    const now = Date.now();
    if (now - this.lastRecheck < RECHECK_MS) return;
    this.lastRecheck = now;
    void this.incarnations.readopt(keyspace).catch(() => {});
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
