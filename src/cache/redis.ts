/**
 * The cache in Redis (ioredis): one server, a master found through Sentinel, or a Cluster. One string per
 * entry (codec.ts) under the key layout.ts gives it. Calls fail fast while Redis is unreachable (no offline
 * queue, a per-command timeout) and the client reconnects by itself, forever, with a capped backoff.
 *
 * On a Cluster every command of a bucket goes to the node connection its incarnation was adopted on, not
 * wherever the slot map points now: an answer comes from the very server whose run id the marker holds.
 * A node that stopped serving the slot answers MOVED (an error: the call fails, the tag is adopted again on
 * the new owner, which may be a promoted replica that lags: a new incarnation, cold, never stale). A slot
 * map refresh that moves a slot forgets the tag at once, and an answer that arrives after that is dropped.
 */
import { randomBytes, randomInt } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { CacheAdapter, CacheEntry, ConnectionState, TrustBoard } from "./adapter.js";
import type { CacheWrite, SetOptions } from "./adapter.js";
import { decodeEntry, encodeEntry, ENTRY_LUA, incarnationOf, kindLetter } from "./codec.js";
import { isCluster, masters, nodeName, nodeOf, openRedis, slotOf, type RedisClient } from "./connect.js";
import { GetBatch } from "./get-batch.js";
import { ADOPT_LUA, Incarnations, type Adopted } from "./incarnation.js";
import { KeyLayout } from "./layout.js";
import { Script } from "./script.js";
import { RedisTrustBoard } from "./trust-board.js";
import { READ_REGISTRY_LUA, registryKey } from "../near/registry.js";
import type { CacheConfig } from "../config/types.js";
import { BackendUnavailableError, ShardUnavailableError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";

/**
 * setIfNewer's rule, for the scripts that set entries: whether an entry of version v and kind letter
 * `letter` replaces what the key holds. An entry of another incarnation counts as nothing cached; one of
 * none (the write-behind queue's) counts as current. Only the head of the cached entry is read.
 */
const TAKES_LUA = `${ENTRY_LUA}
local function takes(ckey, v, letter, incarnation)
  local kind, cached, inc = entryHead(ckey)
  if not kind or not (inc == incarnation or inc == '') then return true end
  local refresh = kind == 'v' and v == cached and letter == 'v'
  return v > cached or (kind == 't' and v >= cached) or refresh
end
`;

/**
 * KEYS[1] the entry, KEYS[2] the incarnation marker; ARGV[1] the new version, ARGV[2] the new kind letter,
 * ARGV[3] the encoded entry, ARGV[4] the TTL in ms, ARGV[5] the marker's expected text, ARGV[6] the
 * incarnation. -1 when the marker is not the expected one (the cache changed incarnation: nothing is
 * written); 1 when taken (TAKES_LUA), 0 when not.
 */
const SET_IF_NEWER_LUA = `${TAKES_LUA}
if redis.call('GET', KEYS[2]) ~= ARGV[5] then return -1 end
if not takes(KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[6]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
`;

/**
 * SET_IF_NEWER_LUA for many entries of one bucket, in order. KEYS[1] the incarnation marker, KEYS[2..] the
 * entries; ARGV[1] the marker's expected text, ARGV[2] the incarnation, then four per entry: the version,
 * the kind letter, the encoded entry, the TTL in ms. -1 when the marker is not the expected one (nothing
 * is written); otherwise a list of 1 (taken) or 0 per entry.
 */
const SET_MANY_IF_NEWER_LUA = `${TAKES_LUA}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = {}
for i = 2, #KEYS do
  local a = 3 + (i - 2) * 4
  local taken = 0
  if takes(KEYS[i], tonumber(ARGV[a]), ARGV[a + 1], ARGV[2]) then
    redis.call('SET', KEYS[i], ARGV[a + 2], 'PX', ARGV[a + 3])
    taken = 1
  end
  out[#out + 1] = taken
end
return out
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

const setIfNewerScript = new Script(SET_IF_NEWER_LUA);
const setManyIfNewerScript = new Script(SET_MANY_IF_NEWER_LUA);
const adoptScript = new Script(ADOPT_LUA);
const deleteIfScript = new Script(DELETE_IF_LUA);
const releaseScript = new Script(RELEASE_LUA);
const readRegistryScript = new Script(READ_REGISTRY_LUA);

const SCAN_COUNT = 1000;
const CLOSE_WAIT_MS = 1000;
/** Errors after which a Cluster's slot map is read again and the bucket's incarnation adopted anew. */
const TOPOLOGY_ERROR =
  /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN|READONLY)|Connection is closed|Stream isn't writeable|no node of the Cluster/;
/** Entries of another incarnation make the marker be read again at most this often. */
const RECHECK_MS = 250;

export class RedisCache implements CacheAdapter {
  readonly kind = "redis";
  /** where each key lives */
  readonly layout: KeyLayout;
  private readonly redis: RedisClient;
  private readonly cluster: Cluster | undefined;
  private readonly where: string;
  private readonly timeoutMs: number;
  private everReady = false;
  private lastError: Error | undefined;
  private outage = false;
  private closed = false;
  private readonly incarnations: Incarnations<Redis>;
  /** the hit path's GETs, one MGET per bucket and turn of the event loop */
  private readonly gets = new GetBatch();
  /** node connections whose close is watched */
  private readonly watched = new WeakSet<Redis>();
  readonly trustBoard: TrustBoard;
  readonly readNearRegistry: () => Promise<string[]>;

  constructor(
    private readonly config: CacheConfig,
    private readonly log: Logger = silentLogger,
  ) {
    this.where = config.redis?.kind === "url" || !config.redis ? redactedUrl(config.url) : config.url;
    this.timeoutMs = Math.max(1, config.timeoutMs);
    this.redis = openRedis(config.redis ?? { kind: "url", url: config.url }, {
      timeoutMs: this.timeoutMs,
      // The hot commands are gathered per turn of the event loop by the adapter itself (GETs into one MGET,
      // a keyspace's writes into one script call: get-batch.ts, strategies/cache-batch.ts), which costs
      // one socket write per turn without ioredis' auto-pipelines (see get-batch.ts for why not those).
      autoPipelining: false,
    });
    this.cluster = isCluster(this.redis) ? this.redis : undefined;
    this.layout = this.cluster ? KeyLayout.cluster(config.prefix) : KeyLayout.single(config.prefix);
    // one key slot (its hash tag): a Cluster serves it from one shard
    this.trustBoard = new RedisTrustBoard(this.redis as Redis, config.prefix, (what, run) =>
      this.call(what, run),
    );
    const registry = registryKey(config.prefix, this.cluster !== undefined);
    this.readNearRegistry = () =>
      this.call(
        "near registry",
        async () => (await readRegistryScript.run(this.redis, [registry], [])) as string[],
      );
    this.incarnations = new Incarnations<Redis>(
      {
        adopt: async (tag, candidate) => {
          const node = this.nodeFor(tag);
          const [runId, incarnation] = (await adoptScript.run(
            node,
            [this.layout.marker(tag)],
            [candidate],
          )) as [string, string];
          return { runId, incarnation, node };
        },
        read: (tag, node) => node.get(this.layout.marker(tag)),
      },
      (tag, from, to) =>
        this.log.warn(
          { cache: this.where, bucket: tag, from, to },
          "the cache is another incarnation (restarted, failed over, flushed or replaced): its entries are not served",
        ),
    );
    // A slot that moved: its buckets are adopted again before their next command.
    this.cluster?.on("refresh", () =>
      this.incarnations.forgetIf((tag, a) => nodeOf(this.cluster!, this.layout.marker(tag)) !== a.node),
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

  /** The ioredis client (a Redis or a Cluster), for those who need a raw command. */
  get client(): RedisClient {
    return this.redis;
  }

  /** The Redis key of an entry. */
  redisKey(keyspace: string, key: string): string {
    return this.layout.entry(keyspace, key);
  }

  generation(): number {
    return this.incarnations.generation;
  }

  get(keyspace: string, key: string): Promise<CacheEntry | null> {
    const tag = this.layout.tagOf(keyspace, key);
    const inc = this.known(tag);
    // The hit path: a bucket adopted already, the connection up: one promise chain, no async frames.
    if (inc && !this.closed && this.redis.status === "ready") {
      return this.gets.get(inc, this.layout.entry(keyspace, key)).then(
        (text) => {
          if (this.incarnations.peek(tag) !== inc) throw this.movedAway(tag, inc, "GET");
          return text === null ? null : this.current(tag, inc.incarnation, text);
        },
        (err: unknown) => {
          throw this.failure("GET", err, tag);
        },
      );
    }
    return this.slowGet(keyspace, key, tag);
  }

  private async slowGet(keyspace: string, key: string, tag: string): Promise<CacheEntry | null> {
    const inc = await this.adoptedFor(tag);
    const text = await this.on(tag, inc, "GET", (node) => node.get(this.layout.entry(keyspace, key)));
    return text === null ? null : this.current(tag, inc.incarnation, text);
  }

  async getMany(keyspace: string, keys: string[]): Promise<(CacheEntry | null)[]> {
    if (keys.length === 0) return [];
    const byTag = this.byBucket(keyspace, keys);
    const out: (CacheEntry | null)[] = new Array<CacheEntry | null>(keys.length).fill(null);
    await Promise.all(
      [...byTag].map(async ([tag, at]) => {
        const inc = await this.adoptedFor(tag);
        const texts = await this.on(tag, inc, "MGET", (node) =>
          node.mget(at.map((i) => this.layout.entry(keyspace, keys[i]!))),
        );
        texts.forEach((t, j) => (out[at[j]!] = t === null ? null : this.current(tag, inc.incarnation, t)));
      }),
    );
    return out;
  }

  async setIfNewer(
    keyspace: string,
    key: string,
    first: CacheEntry,
    ttlMs: number,
    options?: SetOptions,
  ): Promise<boolean> {
    const px = pxOf(ttlMs);
    let entry = first;
    for (let attempt = 0; ; attempt++) {
      if (options?.generation !== undefined && options.generation !== this.generation()) {
        if (entry.kind !== "tombstone") return false;
      }
      const tag = this.layout.tagOf(keyspace, key);
      const inc = await this.adoptedFor(tag);
      const encoded = encodeEntry(entry, inc.incarnation);
      const taken = (await this.on(tag, inc, "setIfNewer", (node) =>
        setIfNewerScript.run(
          node,
          [this.layout.entry(keyspace, key), this.layout.marker(tag)],
          [
            String(entry.version),
            kindLetter(entry.kind),
            encoded,
            px,
            this.incarnations.markerText(inc),
            inc.incarnation,
          ],
        ),
      )) as number;
      if (taken !== -1) return taken === 1;
      // The marker moved: adopt what it holds now. A fill (it carries the generation its row was read in)
      // is dropped. A write's entry is not put as it is (a later write's entry may have been lost with the
      // old incarnation): a tombstone at its version takes its place, which hides every older fill and lets
      // this version in. Without it the key would hold nothing, and a fill that read the row before the
      // write could land.
      await this.call("adopt", () => this.incarnations.readopt(tag));
      if (options?.generation !== undefined || attempt > 0) return false;
      entry = { kind: "tombstone", version: entry.version, freshUntil: 0 };
    }
  }

  async setManyIfNewer(keyspace: string, items: readonly CacheWrite[]): Promise<boolean[]> {
    if (items.length === 1) {
      const it = items[0]!;
      return [await this.setIfNewer(keyspace, it.key, it.entry, it.ttlMs)];
    }
    const byTag = this.byBucket(
      keyspace,
      items.map((it) => it.key),
    );
    const out = new Array<boolean>(items.length).fill(false);
    await Promise.all(
      [...byTag].map(async ([tag, at]) => {
        const inc = await this.adoptedFor(tag);
        const keys = [this.layout.marker(tag)];
        const args = [this.incarnations.markerText(inc), inc.incarnation];
        for (const i of at) {
          const { key, entry, ttlMs } = items[i]!;
          keys.push(this.layout.entry(keyspace, key));
          args.push(
            String(entry.version),
            kindLetter(entry.kind),
            encodeEntry(entry, inc.incarnation),
            pxOf(ttlMs),
          );
        }
        const taken = (await this.on(tag, inc, "setIfNewer", (node) =>
          setManyIfNewerScript.run(node, keys, args),
        )) as number[] | -1;
        if (taken !== -1) {
          at.forEach((i, j) => (out[i] = taken[j] === 1));
          return;
        }
        // The marker moved: each entry goes its own way, which adopts the new incarnation (setIfNewer).
        for (const i of at) {
          const { key, entry, ttlMs } = items[i]!;
          out[i] = await this.setIfNewer(keyspace, key, entry, ttlMs);
        }
      }),
    );
    return out;
  }

  async delete(keyspace: string, key: string): Promise<void> {
    await this.call("DEL", () => this.redis.del(this.redisKey(keyspace, key)));
  }

  async deleteIf(
    keyspace: string,
    key: string,
    observed: Pick<CacheEntry, "kind" | "version">,
  ): Promise<boolean> {
    const tag = this.layout.tagOf(keyspace, key);
    const inc = await this.adoptedFor(tag);
    const letter = kindLetter(observed.kind);
    const n = await this.on(tag, inc, "deleteIf", (node) =>
      deleteIfScript.run(
        node,
        [this.layout.entry(keyspace, key)],
        [letter, String(observed.version), inc.incarnation],
      ),
    );
    return n === 1;
  }

  async takeFillLease(keyspace: string, key: string, ms: number): Promise<string | null> {
    const token = randomBytes(8).toString("hex");
    const ok = await this.call("fill lease", () =>
      this.redis.set(this.layout.fillLease(keyspace, key), token, "PX", Math.max(1, Math.ceil(ms)), "NX"),
    );
    return ok === "OK" ? token : null;
  }

  async watchFill(keyspace: string, key: string): Promise<{ entry: CacheEntry | null; leased: boolean }> {
    const tag = this.layout.tagOf(keyspace, key);
    const inc = await this.adoptedFor(tag);
    const [text, lease] = await this.on(tag, inc, "MGET", (node) =>
      node.mget(this.layout.entry(keyspace, key), this.layout.fillLease(keyspace, key)),
    );
    const entry = text === null || text === undefined ? null : this.current(tag, inc.incarnation, text);
    return { entry, leased: lease !== null && lease !== undefined };
  }

  async releaseFillLease(keyspace: string, key: string, token: string): Promise<void> {
    await this.call("release fill lease", () =>
      releaseScript.run(this.redis, [this.layout.fillLease(keyspace, key)], [token]),
    );
  }

  /** SCAN over the keyspace's entries on every master, UNLINK what is found (slot by slot on a Cluster). */
  async deleteKeyspace(keyspace: string): Promise<number> {
    let removed = 0;
    for await (const { node, keys } of this.scan(keyspace, SCAN_COUNT)) {
      for (const group of this.bySlot(keys)) {
        removed += await this.call("UNLINK", () => node.unlink(...group));
      }
    }
    return removed;
  }

  /** Every cached key of the keyspace, batch by batch, master by master (a key may come twice). */
  async *keyBatches(keyspace: string, batch: number): AsyncGenerator<string[]> {
    for await (const { keys } of this.scan(keyspace, batch)) {
      if (keys.length > 0) yield keys.map((k) => this.layout.keyOfEntry(k));
    }
  }

  /**
   * Up to n keys of the keyspace picked at random, spread over the masters: on each, SCAN from a random
   * cursor to the end, then from the start again, until its share is found or a whole pass is done. Redis
   * masks a cursor larger than its table, so any random number is a valid start.
   */
  async sampleKeys(keyspace: string, n: number): Promise<string[]> {
    const want = Math.floor(n);
    if (!(want > 0)) return [];
    const pattern = this.layout.entryPattern(keyspace);
    const found = new Set<string>();
    const nodes = shuffle(await this.mastersNow());
    for (let i = 0; i < nodes.length && found.size < want; i++) {
      const node = nodes[i]!;
      const share = found.size + Math.ceil((want - found.size) / (nodes.length - i));
      let cursor = String(randomInt(0, 2 ** 32));
      let wrapped = cursor === "0";
      while (found.size < share) {
        const [next, keys] = await this.call("SCAN", () =>
          node.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT),
        );
        for (const k of keys) {
          if (found.size >= share) break;
          found.add(this.layout.keyOfEntry(k));
        }
        cursor = next;
        if (cursor === "0") {
          if (wrapped) break;
          wrapped = true;
        }
      }
    }
    return [...found];
  }

  /** PING, and the incarnation markers read again (a FLUSHALL keeps the connection). */
  async ping(): Promise<void> {
    const nodes = await this.mastersNow();
    await this.call("PING", () => Promise.all(nodes.map((n) => n.ping())));
    if (this.config.redis?.kind === "sentinel") await this.stillMaster();
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

  /** The positions of the keys, by the tag of their bucket. */
  private byBucket(keyspace: string, keys: string[]): Map<string, number[]> {
    const byTag = new Map<string, number[]>();
    keys.forEach((k, i) => {
      const tag = this.layout.tagOf(keyspace, k);
      const at = byTag.get(tag);
      if (at) at.push(i);
      else byTag.set(tag, [i]);
    });
    return byTag;
  }

  /** The bucket's incarnation, adopted first when needed; on a Cluster, on a node connection still open. */
  /** The bucket's incarnation when it is adopted and its connection is up; undefined: adoptedFor. */
  private known(tag: string): Adopted<Redis> | undefined {
    const a = this.incarnations.peek(tag);
    return a && (!this.cluster || a.node.status === "ready") ? a : undefined;
  }

  private async adoptedFor(tag: string): Promise<Adopted<Redis>> {
    const a = this.known(tag);
    if (a) return a;
    if (this.incarnations.peek(tag)) this.incarnations.forget(tag);
    return this.call("adopt", () => this.incarnations.of(tag));
  }

  /** The connection to adopt a bucket on: the one server, or the node that serves the tag's slot now. */
  private nodeFor(tag: string): Redis {
    if (!this.cluster) return this.redis as Redis;
    const node = nodeOf(this.cluster, this.layout.marker(tag));
    if (!node) {
      // its node connection ended (a node that went away): the slot map brings a new one
      this.cluster.refreshSlotsCache();
      throw new Error(`no node of the Cluster serves the slot of bucket ${tag} now`);
    }
    if (!this.watched.has(node)) {
      this.watched.add(node);
      node.once("close", () => this.incarnations.forgetNode(node));
    }
    return node;
  }

  /**
   * One command of a bucket, on the connection its incarnation was adopted on. On a Cluster, an answer
   * that arrives once the bucket was forgotten (its slot moved meanwhile) is not trusted.
   */
  private on<T>(tag: string, a: Adopted<Redis>, what: string, run: (node: Redis) => Promise<T>): Promise<T> {
    return this.cluster ? this.onShard(tag, a, what, run) : this.call(what, () => run(a.node));
  }

  private async onShard<T>(
    tag: string,
    a: Adopted<Redis>,
    what: string,
    run: (node: Redis) => Promise<T>,
  ): Promise<T> {
    const out = await this.call(what, () => run(a.node), tag);
    if (this.incarnations.peek(tag) !== a) throw this.movedAway(tag, a, what);
    return out;
  }

  private movedAway(tag: string, a: Adopted<Redis>, what: string): BackendUnavailableError {
    return this.unavailable(
      what,
      `the slot of bucket ${tag} moved away from ${nodeName(a.node)}`,
      undefined,
      true,
    );
  }

  /**
   * Through Sentinel: a master demoted to a replica (a failover the connection missed) keeps its run id
   * and the marker, and takes the new master's data: reconnect, and the sentinels name the new master.
   */
  private async stillMaster(): Promise<void> {
    const role = (await this.call("ROLE", () => this.redis.call("ROLE"))) as [string];
    if (role[0] === "master") return;
    this.redis.disconnect(true);
    throw this.unavailable("ROLE", `the server is a ${role[0]} now; finding the master again`);
  }

  /** The masters to scan or ping: the one server, or every master the Cluster client knows. */
  private async mastersNow(): Promise<Redis[]> {
    const nodes = masters(this.redis);
    if (nodes.length === 0)
      throw this.unavailable("a look at the nodes", "no master of the Cluster is known yet");
    return nodes;
  }

  private async *scan(keyspace: string, count: number): AsyncGenerator<{ node: Redis; keys: string[] }> {
    const pattern = this.layout.entryPattern(keyspace);
    for (const node of await this.mastersNow()) {
      let cursor = "0";
      do {
        const [next, keys] = await this.call("SCAN", () =>
          node.scan(cursor, "MATCH", pattern, "COUNT", count),
        );
        yield { node, keys };
        cursor = next;
      } while (cursor !== "0");
    }
  }

  /** Keys grouped by slot: a multi-key command on a Cluster must stay in one. */
  private bySlot(keys: string[]): string[][] {
    if (!this.cluster || keys.length === 0) return keys.length > 0 ? [keys] : [];
    const groups = new Map<number, string[]>();
    for (const k of keys) {
      const slot = slotOf(k);
      const g = groups.get(slot);
      if (g) g.push(k);
      else groups.set(slot, [k]);
    }
    return [...groups.values()];
  }

  /**
   * The entry when it was written for the current incarnation (or for none: the write-behind queue's);
   * null otherwise. An entry of an incarnation newer than ours means another daemon saw the cache change
   * first: look at the marker again.
   */
  private current(tag: string, incarnation: string, text: string): CacheEntry | null {
    const inc = incarnationOf(text);
    if (inc !== incarnation && inc !== "") {
      if (inc !== null) this.recheck(tag);
      return null;
    }
    return decodeEntry(text);
  }

  private lastRecheck = 0;

  private recheck(tag: string): void {
    const now = Date.now();
    if (now - this.lastRecheck < RECHECK_MS) return;
    this.lastRecheck = now;
    void this.incarnations.readopt(tag).catch(() => {});
  }

  /**
   * Runs one command, or fails at once with BackendUnavailableError while Redis is not reachable. On a
   * Cluster, an error that says the slot map changed forgets the bucket and has the map read again.
   */
  private async call<T>(what: string, run: () => Promise<T>, tag?: string): Promise<T> {
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
      throw this.failure(what, err, tag);
    }
  }

  /** A command's error as the adapter reports it; on a Cluster, a changed slot map is read again. */
  private failure(what: string, err: unknown, tag?: string): BackendUnavailableError {
    const message = err instanceof Error ? err.message : String(err);
    if (this.cluster && TOPOLOGY_ERROR.test(message)) {
      if (tag !== undefined) this.incarnations.forget(tag);
      this.cluster.refreshSlotsCache();
      // the Cluster answers; one shard of it does not (yet)
      if (this.cluster.status === "ready") return this.unavailable(what, message, err, true);
    }
    return this.unavailable(what, message, err);
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

  /** shard: only part of a Cluster failed (ShardUnavailableError: the circuit breaker does not count it) */
  private unavailable(what: string, reason: string, cause?: unknown, shard = false): BackendUnavailableError {
    const message = `The cache (redis at ${this.where}) failed ${what}: ${reason}.`;
    return shard
      ? new ShardUnavailableError("cache", message, cause)
      : new BackendUnavailableError("cache", message, cause);
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** scheme://host:port of a URL: a password never reaches a log line. */
function redactedUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.hostname}:${u.port || "6379"}`;
}

/** A TTL as PX takes it: whole milliseconds, at least 1. */
function pxOf(ttlMs: number): string {
  return String(Math.min(Math.max(1, Math.ceil(ttlMs)), Number.MAX_SAFE_INTEGER));
}
