/**
 * How the daemons that share a Redis keep their near caches coherent (docs/near-cache.md).
 *
 * coherent mode, leases in the manner of Gray and Cheriton: every daemon with a near cache is a member,
 * listed in a sorted set with the expiry of its lease (Redis's clock), renewed every third of the lease
 * while its invalidation channel is subscribed. A daemon serves near copies only while its own lease runs
 * by its own clock, measured from before the renewal was sent, so it stops before Redis's expiry. A write
 * publishes its invalidation and learns the members in one script, then waits until each other member
 * acknowledged (it dropped its copy) or its lease ran out. A daemon that is frozen, cut off or whose
 * channel was killed stops serving copies before the writer stops waiting for it.
 *
 * bounded mode: the invalidation is published and not waited for; a daemon serves copies only while its
 * own heartbeat came back within `max_staleness`. The heartbeat goes to the daemon's own channel, on the
 * connection that holds the shared one: it proves that connection delivers, and no other daemon has to
 * hear it (on the shared channel every daemon would receive every other's, fifty times fifty).
 *
 * On a Redis Cluster the channel is sharded (SPUBLISH/SSUBSCRIBE, Redis 7) and lives in the slot of the
 * members set: the membership, the invalidations and the acknowledgements all pass through one shard, as
 * they pass through one server otherwise. Plain PUBLISH would travel over the cluster bus to every node:
 * a subscriber could then stay connected and renew its lease while messages to it were lost between
 * nodes, and serve a copy a writer believes dropped. A sharded subscriber's connection is to the shard
 * itself; when it closes (a failover, a restart) the daemon drops its copies, as it does for one server.
 */
import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { isCluster, openNode, openRedis, type RedisClient } from "../cache/connect.js";
import { Script } from "../cache/script.js";
import type { RedisTarget } from "../config/types.js";
import type { Logger } from "../log.js";
import { BOUNDED_REGISTRATION_MS, NOW_LUA, registerLua, registryKey, REGISTRY_VIEW_MS } from "./registry.js";

/**
 * The members set remembers when it was made: a member "~born:<ms>" scored +inf, which no expiry sweep
 * removes and which goes with the set. A set that is gone (FLUSHALL, an eviction, DEL) forgot the leases it
 * granted while their holders still run them by their own clocks; the first script to find it gone makes it
 * again, born now. ARGV[n] is the lease in ms (the set's own expiry is ten leases).
 */
const membership = (leaseArg: string) => `${NOW_LUA}
local born
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '+inf', '+inf')) do
  if string.sub(m, 1, 6) == '~born:' then born = tonumber(string.sub(m, 7)) end
end
if not born then
  born = now
  redis.call('ZADD', KEYS[1], '+inf', '~born:' .. now)
  redis.call('PEXPIRE', KEYS[1], tonumber(${leaseArg}) * 10)
end
`;

/**
 * KEYS[1] members (KEYS[2] the channel, on a Cluster); ARGV[1] the channel, ARGV[2] the message, ARGV[3] the
 * lease. Returns {server ms, born ms, id, expiry, id, expiry...}.
 */
const invalidateLua = (publish: string) => `${membership("ARGV[3]")}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('${publish}', ARGV[1], ARGV[2])
local out = {tostring(now), tostring(born)}
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(+inf', 'WITHSCORES')
for i = 1, #m do out[#out + 1] = m[i] end
return out
`;

/**
 * KEYS[1] members, KEYS[2] the member's own channel, KEYS[3] the registry; ARGV[1] the member, ARGV[2] the
 * lease in ms, ARGV[3] "1" to push the set's own expiry (ten leases) further: every few renewals is enough
 * to keep a set whose members still renew; ARGV[4] the echo; ARGV[5..] the keyspaces it near-caches
 * coherently, registered (src/near/registry.ts). Returns {server ms, 1 when the member was not listed (a
 * first renewal, or the set forgot it), how many keyspaces were not registered}. The echo goes to the
 * member's own channel after every invalidation published before it: Redis delivers a subscriber's
 * messages in order, so a member that hears its echo has heard them all.
 */
const renewLua = (publish: string) => `${membership("ARGV[2]")}
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if ARGV[3] == '1' then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10) end
${registerLua("KEYS[3]", "2 * ARGV[2]", "ARGV[2]", 5, "ARGV[3] == '1'")}
redis.call('${publish}', KEYS[2], ARGV[4])
return {now, added, fresh}
`;
/** Renewals between two pushes of the members set's expiry: a third of a lease each, so every 3 leases. */
const EXPIRE_EVERY = 9;
/** The pseudo-member a writer waits for while the members set is younger than a lease. */
const YOUNG_SET = "~born";

/**
 * bounded: the heartbeat with the registration of the keyspaces. KEYS[1] the registry, KEYS[2] the member's
 * own channel; ARGV[1] the registration's ttl in ms, ARGV[2] "1" to push the registry's expiry further;
 * ARGV[3..] the keyspaces. Returns how many were not registered.
 */
const heartbeatLua = (publish: string) => `${NOW_LUA}
${registerLua("KEYS[1]", "ARGV[1]", "0", 3, "ARGV[2] == '1'")}
redis.call('${publish}', KEYS[2], 'h')
return fresh
`;
const heartbeatScript = new Script(heartbeatLua("PUBLISH"));
const heartbeatShardedScript = new Script(heartbeatLua("SPUBLISH"));
const renewScript = new Script(renewLua("PUBLISH"));
const renewShardedScript = new Script(renewLua("SPUBLISH"));
const invalidateScript = new Script(invalidateLua("PUBLISH"));
const invalidateShardedScript = new Script(invalidateLua("SPUBLISH"));
/** A sharded subscriber whose connection closed opens a new one (to the slot's owner then) after this. */
const RESUBSCRIBE_MS = 200;

export interface CoherenceOptions {
  redis: RedisTarget;
  prefix: string;
  /** coherent mode: the membership lease (the shortest of the keyspaces'), or undefined when none is coherent */
  leaseMs?: number;
  /** bounded mode: the shortest max_staleness, or undefined when none is bounded */
  maxStalenessMs?: number;
  timeoutMs: number;
  log: Logger;
  /** another daemon's write: drop the copy of the key (key null: every copy of the keyspace) */
  onInvalidate(keyspace: string, key: string | null, version: number, sentAt: number): void;
  /** copies can no longer be vouched for (channel lost, lease lapsed): drop them all */
  onLapse(): void;
}

interface Renewal {
  /** performance.now() before it was sent: the lease it grants runs from here */
  sent: number;
  /** the keyspaces it registered */
  keyspaces: string[];
  replied: boolean;
  echoed: boolean;
  /** the set no longer listed this daemon */
  added: boolean;
  /** some of its keyspaces were not registered */
  fresh: boolean;
}

interface Waiting {
  acked: Set<string>;
  waiting?: Set<string>;
  timers: NodeJS.Timeout[];
  resolve?: () => void;
}

export class Coherence {
  readonly id = randomBytes(6).toString("hex");
  private readonly pub: RedisClient;
  private readonly cluster: Cluster | undefined;
  private sub: Redis | undefined;
  private readonly channel: string;
  private readonly members: string;
  private subscribed = false;
  /** performance.now() until which this daemon's lease runs */
  private validUntil = 0;
  private valid = false;
  private heardAt = -Infinity;
  private seq = 0;
  private renewals = 0;
  private echoSeq = 0;
  /**
   * renewals in flight, by echo number: one grants a lease once both its reply (on the command connection)
   * and its echo (on the subscriber's) came
   */
  private readonly renewing = new Map<number, Renewal>();
  /** the keyspaces near-cached coherently here, and when their registration first came back */
  private coherentKeyspaces: string[] = [];
  private boundedKeyspaces: string[] = [];
  /** performance.now() when the bounded keyspaces' registration was last sent */
  private boundedRegisteredAt = -Infinity;
  private readonly registeredAt = new Map<string, number>();
  private readonly registry: string;
  private readonly subscribedOnce: Promise<void>;
  private everSubscribed = false;
  private onSubscribed: () => void = () => {};
  private readonly pending = new Map<number, Waiting>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(private readonly o: CoherenceOptions) {
    this.subscribedOnce = new Promise((resolve) => (this.onSubscribed = resolve));
    this.pub = openRedis(o.redis, { timeoutMs: o.timeoutMs, autoPipelining: true });
    this.pub.on("error", () => {});
    this.cluster = isCluster(this.pub) ? this.pub : undefined;
    this.registry = registryKey(o.prefix, this.cluster !== undefined);
    if (this.cluster) {
      const tag = `{${o.prefix}:near}`;
      this.channel = `${o.prefix}:${tag}:inv`;
      this.members = `${o.prefix}:${tag}:members`;
      if (this.cluster.status === "ready") this.openSub();
      else this.cluster.once("ready", () => this.openSub());
    } else {
      this.channel = `${o.prefix}:near:inv`;
      this.members = `${o.prefix}:near:members`;
      // The subscriber's own options: a subscribed connection must not time out its (unanswered) idle time.
      this.watchSub(openRedis(o.redis, { offlineQueue: true }) as Redis);
    }
  }

  /** A Cluster: a connection to the shard of the channel; a new one whenever it closes. */
  private openSub(): void {
    if (this.stopped || !this.cluster) return;
    const sub = openNode(this.cluster, this.channel, { offlineQueue: true });
    if (!sub) {
      setTimeout(() => this.openSub(), RESUBSCRIBE_MS).unref();
      return;
    }
    this.watchSub(sub);
    sub.once("end", () => {
      if (this.sub !== sub || this.stopped) return;
      this.sub = undefined;
      this.cluster!.refreshSlotsCache();
      setTimeout(() => this.openSub(), RESUBSCRIBE_MS).unref();
    });
  }

  private watchSub(sub: Redis): void {
    this.sub = sub;
    sub.on("error", () => {});
    sub.on("ready", () => void this.subscribe(sub));
    sub.on("close", () => this.lost("the invalidation channel's connection closed"));
    sub.on("message", (channel: string, message: string) => this.onMessage(channel, message));
    sub.on("smessage", (channel: string, message: string) => this.onMessage(channel, message));
  }

  private publish(channel: string, message: string): Promise<unknown> {
    return this.cluster ? this.pub.spublish(channel, message) : this.pub.publish(channel, message);
  }

  start(): void {
    if (this.o.leaseMs !== undefined)
      this.every(Math.max(1, Math.floor(this.o.leaseMs / 3)), () => this.renew());
    if (this.o.maxStalenessMs !== undefined) {
      this.every(Math.max(1, Math.floor(this.o.maxStalenessMs / 4)), () => this.heartbeat());
    }
  }

  /**
   * The keyspaces this daemon near-caches (start-up and reload): registered at each renewal (coherent) or
   * with the heartbeat (bounded).
   */
  setKeyspaces(coherent: string[], bounded: string[]): void {
    this.coherentKeyspaces = [...coherent];
    this.boundedKeyspaces = [...bounded];
    this.boundedRegisteredAt = -Infinity;
    for (const k of this.registeredAt.keys()) {
      if (!coherent.includes(k) && !bounded.includes(k)) this.registeredAt.delete(k);
    }
  }

  /** Whether every writer's view of the registry lists the keyspace by now. */
  registeredEverywhere(keyspace: string): boolean {
    const at = this.registeredAt.get(keyspace);
    return at !== undefined && performance.now() - at >= REGISTRY_VIEW_MS;
  }

  /**
   * Resolves once the channels were subscribed (a writer's acknowledgements come through them), or after
   * timeoutMs; at once when they were subscribed before.
   */
  async ready(timeoutMs: number): Promise<void> {
    if (this.everSubscribed) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.subscribedOnce, late]).finally(() => clearTimeout(timer));
  }

  /** coherent: whether this daemon's lease runs (copies may be served); drops every copy once it lapsed. */
  leaseValid(): boolean {
    if (this.subscribed && performance.now() < this.validUntil) return true;
    if (this.valid) {
      this.valid = false;
      this.o.log.warn("near cache lease lapsed: copies dropped until it is renewed");
      this.o.onLapse();
    }
    return false;
  }

  /** bounded: whether the channel showed itself healthy within maxStalenessMs. */
  healthyWithin(maxStalenessMs: number): boolean {
    return this.subscribed && performance.now() - this.heardAt < maxStalenessMs;
  }

  /**
   * Tells every other daemon to drop its copy of the key. wait: resolves once each member acknowledged or
   * its lease ran out (coherent); otherwise once it is published (bounded).
   */
  async invalidate(
    keyspace: string,
    key: string | null,
    version: number,
    wait: boolean,
    leaseMs = this.o.leaseMs ?? 0,
  ): Promise<void> {
    const seq = ++this.seq;
    const kind = key === null ? (wait ? "C" : "c") : wait ? "I" : "i";
    const message = `${kind}|${this.id}|${seq}|${Date.now()}|${keyspace}|${version}|${key ?? ""}`;
    if (!wait) {
      await this.publish(this.channel, message);
      return;
    }
    const w: Waiting = { acked: new Set(), timers: [] };
    this.pending.set(seq, w);
    try {
      const reply = (
        this.cluster
          ? await invalidateShardedScript.run(
              this.pub,
              [this.members, this.channel],
              [this.channel, message, String(leaseMs)],
            )
          : await invalidateScript.run(this.pub, [this.members], [this.channel, message, String(leaseMs)])
      ) as string[];
      const at = performance.now();
      const now = Number(reply[0]);
      const waiting = new Set<string>();
      const done = new Promise<void>((resolve) => (w.resolve = resolve));
      // A set younger than a lease may have forgotten members whose leases still run: wait those out too.
      const young = Number(reply[1]) + leaseMs - now;
      if (young > 0) {
        waiting.add(YOUNG_SET);
        w.timers.push(setTimeout(() => this.settle(w, YOUNG_SET), young));
      }
      for (let i = 2; i + 1 < reply.length; i += 2) {
        const member = reply[i]!;
        if (member === this.id || w.acked.has(member)) continue;
        waiting.add(member);
        // Its lease ends at Redis's expiry; measured from when the reply came, the wait is never short.
        const ms = Math.max(0, Number(reply[i + 1]) - now - (performance.now() - at));
        w.timers.push(setTimeout(() => this.settle(w, member), ms));
      }
      w.waiting = waiting;
      if (waiting.size === 0) return;
      await done;
    } finally {
      for (const t of w.timers) clearTimeout(t);
      this.pending.delete(seq);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const w of this.pending.values()) w.resolve?.();
    await this.pub.zrem(this.members, this.id).catch(() => {});
    this.pub.disconnect();
    this.sub?.disconnect();
  }

  private settle(w: Waiting, member: string): void {
    w.acked.add(member);
    if (!w.waiting) return;
    w.waiting.delete(member);
    if (w.waiting.size === 0) w.resolve?.();
  }

  private every(ms: number, fn: () => Promise<void>): void {
    void fn();
    const t = setInterval(() => void fn(), ms);
    t.unref();
    this.timers.push(t);
  }

  private async subscribe(sub: Redis): Promise<void> {
    try {
      const channels = [this.channel, `${this.channel}:ack:${this.id}`];
      if (this.cluster) await sub.ssubscribe(...channels);
      else await sub.subscribe(...channels);
      this.subscribed = true;
      this.everSubscribed = true;
      this.onSubscribed();
      await this.renew();
      await this.heartbeat();
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "near cache: could not subscribe to the invalidation channel");
    }
  }

  private lost(why: string): void {
    if (!this.subscribed || this.stopped) return;
    this.subscribed = false;
    this.validUntil = 0;
    this.valid = false;
    this.o.log.warn(`near cache copies dropped: ${why}`);
    this.o.onLapse();
  }

  private async renew(): Promise<void> {
    const leaseMs = this.o.leaseMs;
    if (leaseMs === undefined || !this.subscribed || this.stopped) return;
    const sent = performance.now();
    // an echo that never came (a channel that stopped delivering) grants nothing once its lease is past
    for (const [n, r] of this.renewing) if (r.sent + leaseMs <= sent) this.renewing.delete(n);
    const echo = ++this.echoSeq;
    const keyspaces = this.coherentKeyspaces;
    const renewal: Renewal = { sent, keyspaces, replied: false, echoed: false, added: false, fresh: false };
    this.renewing.set(echo, renewal);
    const own = `${this.channel}:ack:${this.id}`;
    try {
      const expire = this.renewals++ % EXPIRE_EVERY === 0 ? "1" : "0";
      const reply = (await (this.cluster ? renewShardedScript : renewScript).run(
        this.pub,
        [this.members, own, this.registry],
        [this.id, String(leaseMs), expire, `r${echo}`, ...keyspaces],
      )) as [number, number, number];
      renewal.added = Number(reply[1]) === 1;
      renewal.fresh = Number(reply[2]) > 0;
    } catch {
      this.renewing.delete(echo);
      return; // the lease runs out by itself
    }
    renewal.replied = true;
    this.grant(echo, renewal);
  }

  /**
   * A renewal whose reply and echo both came: the lease runs from before it was sent. Without the echo, a
   * daemon whose channel stopped delivering (a firewall that forgot an idle connection) while its command
   * connection still renews would keep serving copies whose invalidations it never heard.
   */
  private grant(echo: number, r: Renewal): void {
    if (!r.replied || !r.echoed || !this.subscribed || this.o.leaseMs === undefined) return;
    this.renewing.delete(echo);
    // A new lease after none, or after the set forgot this member (FLUSHALL, an eviction): writers since
    // did not wait for this daemon, so copies read before may have missed their invalidations.
    const lapsed = !this.valid || performance.now() >= this.validUntil;
    const lost = this.registrationCame(r.keyspaces, r.fresh, this.coherentKeyspaces);
    if (lapsed || r.added || lost) this.o.onLapse();
    this.validUntil = Math.max(this.validUntil, r.sent + this.o.leaseMs);
    this.valid = true;
  }

  /**
   * A registration of `keyspaces` came back (fresh: some were not registered). A keyspace registered afresh
   * waits REGISTRY_VIEW_MS again: writers that do not near-cache it may have read the registry without it
   * until now, and do not announce their changes until they read it again. Those still in `current` are
   * recorded; true when one registered before had to be registered afresh (its copies must go).
   */
  private registrationCame(keyspaces: string[], fresh: boolean, current: string[]): boolean {
    const lost = fresh && keyspaces.some((k) => this.registeredAt.has(k));
    const now = performance.now();
    for (const k of keyspaces) {
      if (!current.includes(k)) continue;
      if (fresh || !this.registeredAt.has(k)) this.registeredAt.set(k, now);
    }
    return lost;
  }

  private async heartbeat(): Promise<void> {
    if (this.o.maxStalenessMs === undefined || !this.subscribed || this.stopped) return;
    const own = `${this.channel}:ack:${this.id}`;
    const keyspaces = this.boundedKeyspaces;
    const sent = performance.now();
    if (keyspaces.length === 0 || sent - this.boundedRegisteredAt < BOUNDED_REGISTRATION_MS) {
      await this.publish(own, "h").catch(() => {});
      return;
    }
    this.boundedRegisteredAt = sent;
    let fresh: number;
    try {
      fresh = Number(
        await (this.cluster ? heartbeatShardedScript : heartbeatScript).run(
          this.pub,
          [this.registry, own],
          [
            String(2 * BOUNDED_REGISTRATION_MS),
            this.renewals++ % EXPIRE_EVERY === 0 ? "1" : "0",
            ...keyspaces,
          ],
        ),
      );
    } catch {
      this.boundedRegisteredAt = -Infinity;
      return;
    }
    if (this.registrationCame(keyspaces, fresh > 0, this.boundedKeyspaces)) this.o.onLapse();
  }

  private onMessage(channel: string, message: string): void {
    if (channel !== this.channel) {
      if (message === "h") {
        this.heardAt = performance.now();
        return;
      }
      if (message.startsWith("r")) {
        const echo = Number(message.slice(1));
        const r = this.renewing.get(echo);
        if (r) {
          r.echoed = true;
          this.grant(echo, r);
        }
        return;
      }
      // an acknowledgement of one of this daemon's invalidations: "<seq>|<member>"
      const bar = message.indexOf("|");
      const w = this.pending.get(Number(message.slice(0, bar)));
      if (w) this.settle(w, message.slice(bar + 1));
      return;
    }
    // a heartbeat of a daemon of an earlier version, which sent them here
    if (message.startsWith("h|")) return;
    const parts = splitN(message, 7);
    if (parts.length < 7) return;
    const [kind, writer, seq, sentAt, keyspace, version] = parts;
    if (writer === this.id) return;
    const key = kind === "C" || kind === "c" ? null : parts[6]!;
    this.o.onInvalidate(keyspace!, key, Number(version), Number(sentAt));
    if (kind === "I" || kind === "C") {
      void this.publish(`${this.channel}:ack:${writer}`, `${seq}|${this.id}`).catch(() => {});
    }
  }
}

/** Splits at the first n-1 bars: the last part (a key) may hold bars of its own. */
function splitN(s: string, n: number): string[] {
  const out: string[] = [];
  let from = 0;
  while (out.length < n - 1) {
    const i = s.indexOf("|", from);
    if (i < 0) break;
    out.push(s.slice(from, i));
    from = i + 1;
  }
  out.push(s.slice(from));
  return out;
}
