/**
 * Which keyspaces some daemon keeps a near cache of, so that every daemon announces its changes of them,
 * whether or not it near-caches them itself: during a rolling change of the configuration (or a reload on
 * one daemon), daemons with and without the near cache share the keyspace.
 *
 * A daemon with a coherent near cache registers its keyspaces in the renewal script of its lease
 * (src/near/coherence.ts), each until two leases from then by Redis's clock; a bounded one with its
 * heartbeat. A writer reads the registry before it acknowledges a change (at most once per
 * REGISTRY_VIEW_MS, the read counted from when it was sent), and announces the change when the keyspace
 * is listed. A daemon serves copies of a keyspace only
 * from REGISTRY_VIEW_MS after its registration came back: by then every writer's view was read after it.
 */

/** Lua: `now`, Redis's clock in ms. */
export const NOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** The longest a writer trusts its reading of the registry, from when the read was sent. */
export const REGISTRY_VIEW_MS = 1_000;

/** The registry: a hash of keyspace -> "<expiry ms>|<lease ms>", in the slot of the members set. */
export function registryKey(prefix: string, cluster: boolean): string {
  return cluster ? `${prefix}:{${prefix}:near}:registry` : `${prefix}:near:registry`;
}

/**
 * Lua, after `now` is set: registers ARGV[from..] (keyspace names) in KEYS[key] until `ttl` ms from now,
 * with `lease` (0: a bounded near cache, whose writers publish without waiting), keeping the later expiry
 * and the longer lease of another daemon's registration. Sets `fresh` to how many of them were not
 * registered (a first registration, or one that ran out or was lost). The registry's own expiry is pushed
 * further after a fresh registration or when `expireIf` holds (every few registrations is enough).
 */
export const registerLua = (key: string, ttl: string, lease: string, from: number, expireIf: string) => `
local ttl, lease = tonumber(${ttl}), tonumber(${lease})
local fresh = 0
for i = ${from}, #ARGV do
  local old = redis.call('HGET', ${key}, ARGV[i])
  local exp, olease = 0, 0
  if old then
    local e, l = string.match(old, '^(%d+)|(%d+)$')
    exp, olease = tonumber(e) or 0, tonumber(l) or 0
  end
  if exp <= now then
    olease = 0
    fresh = fresh + 1
  end
  redis.call('HSET', ${key}, ARGV[i], math.max(exp, now + ttl) .. '|' .. math.max(olease, lease))
end
if fresh > 0 or ${expireIf} then redis.call('PEXPIRE', ${key}, math.max(ttl * 5, 10000)) end
`;

/**
 * A bounded near cache registers its keyspaces with its heartbeat, this often, each for two of these: it
 * serves only while its heartbeats come back, so its registrations outlast what it serves.
 */
export const BOUNDED_REGISTRATION_MS = REGISTRY_VIEW_MS / 2;

/**
 * KEYS[1] the registry. Returns {keyspace, lease ms, ...} of the registrations still running; lease 0:
 * only bounded near caches.
 */
export const READ_REGISTRY_LUA = `${NOW_LUA}
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local e, l = string.match(all[i + 1], '^(%d+)|(%d+)$')
  if e and tonumber(e) > now then
    out[#out + 1] = all[i]
    out[#out + 1] = l
  end
end
return out
`;

/** What a writer read: the registered keyspaces and their longest lease, and when the read was sent. */
export interface RegistryView {
  leases: Map<string, number>;
  /** performance.now() before the read was sent */
  sentAt: number;
}

/**
 * A writer's reading of the registry, read again once older than REGISTRY_VIEW_MS; one read at a time. A
 * registration that is gone from one reading to the next is kept for two of its leases more: the registry
 * may have been lost (FLUSHALL, an eviction) while its daemons still serve copies, until their renewals
 * register them again and find their lease records lost too.
 */
export class RegistryReader {
  private view: RegistryView | undefined;
  private reading: Promise<RegistryView> | undefined;
  /** registrations no longer read: the lease, and performance.now() until which they are kept */
  private readonly vanished = new Map<string, { leaseMs: number; until: number }>();

  constructor(private readonly read: () => Promise<string[]>) {}

  /** A view read less than REGISTRY_VIEW_MS ago. */
  async current(): Promise<RegistryView> {
    const v = this.view;
    if (v && performance.now() - v.sentAt < REGISTRY_VIEW_MS) return v;
    // one read in flight serves every writer that asked after it was sent
    this.reading ??= this.readNow().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async readNow(): Promise<RegistryView> {
    const sentAt = performance.now();
    const reply = await this.read();
    const leases = new Map<string, number>();
    for (let i = 0; i + 1 < reply.length; i += 2) leases.set(reply[i]!, Number(reply[i + 1]));
    for (const [k, leaseMs] of this.view?.leases ?? []) {
      if (!leases.has(k) && !this.vanished.has(k))
        this.vanished.set(k, { leaseMs, until: sentAt + 2 * leaseMs });
    }
    for (const [k, v] of this.vanished) {
      if (leases.has(k) || v.until <= sentAt) this.vanished.delete(k);
      else leases.set(k, v.leaseMs);
    }
    const view = { leases, sentAt };
    if (!this.view || this.view.sentAt < sentAt) this.view = view;
    return view;
  }
}
