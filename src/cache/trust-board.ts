/**
 * The trust board in Redis (CacheAdapter.trustBoard): per board, the sweeper lease (`<me>|<0 or 1>`, the
 * flag telling whether the holder's last sweep failed on PostgreSQL), the last ticket issued, the highest
 * ticket swept, and a key that lives while other daemons read the board (so that a daemon alone sweeps at
 * its own pace). The keys share a hash tag, so each script stays in one slot of a Cluster.
 */
import type { Redis } from "ioredis";
import type { TrustBoard, TrustBoardState } from "./adapter.js";

/**
 * KEYS lease, issued, readers; ARGV me, ttl ms, store-failing flag. {-1} when another holds the lease;
 * else {ticket, 1} while other daemons read the board, {0, 0} while none does (no ticket: nobody needs it).
 */
const CLAIM_LUA = `
local h = redis.call('GET', KEYS[1])
if h and string.sub(h, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then return {-1, 0} end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 0 then return {0, 0} end
return {redis.call('INCR', KEYS[2]), 1}
`;

/** KEYS swept; ARGV the ticket. Keeps the highest. */
const SWEPT_LUA = `
local d = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > d then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`;

/** KEYS lease; ARGV me. */
const RELEASE_LUA = `
local h = redis.call('GET', KEYS[1])
if h and string.sub(h, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then redis.call('DEL', KEYS[1]) end
return 1
`;

type Client = Redis & {
  sidecacheTrustClaim(
    lease: string,
    issued: string,
    readers: string,
    me: string,
    ttl: string,
    flag: string,
  ): Promise<[number, number]>;
  sidecacheTrustSwept(swept: string, ticket: string): Promise<number>;
  sidecacheTrustRelease(lease: string, me: string): Promise<number>;
};

export class RedisTrustBoard implements TrustBoard {
  private readonly redis: Client;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    /** every call passes the cache's own error handling */
    private readonly call: <T>(what: string, run: () => Promise<T>) => Promise<T>,
  ) {
    this.redis = redis as Client;
    this.redis.defineCommand("sidecacheTrustClaim", { numberOfKeys: 3, lua: CLAIM_LUA });
    this.redis.defineCommand("sidecacheTrustSwept", { numberOfKeys: 1, lua: SWEPT_LUA });
    this.redis.defineCommand("sidecacheTrustRelease", { numberOfKeys: 1, lua: RELEASE_LUA });
  }

  private key(board: string, what: string): string {
    return `${this.prefix}:trust:{${board}}:${what}`;
  }

  async read(board: string, readerMs?: number): Promise<TrustBoardState> {
    const keys = [this.key(board, "lease"), this.key(board, "issued"), this.key(board, "swept")];
    const [lease, issued, swept] = await this.call("MGET", async () => {
      if (readerMs === undefined) return this.redis.mget(keys);
      const r = await this.redis
        .pipeline()
        .mget(keys)
        .set(this.key(board, "readers"), "1", "PX", Math.max(1, Math.ceil(readerMs)))
        .exec();
      for (const [err] of r ?? []) if (err) throw err;
      return r![0]![1] as (string | null)[];
    });
    const bar = lease ? lease.lastIndexOf("|") : -1;
    return {
      holder: lease && bar > 0 ? lease.slice(0, bar) : null,
      holderStoreFailing: lease !== null && lease !== undefined && lease.endsWith("|1"),
      issued: Number(issued ?? 0),
      swept: Number(swept ?? 0),
    };
  }

  async claim(
    board: string,
    me: string,
    ttlMs: number,
    storeFailing: boolean,
  ): Promise<{ ticket: number | null } | null> {
    const [ticket, readers] = await this.call("trust claim", () =>
      this.redis.sidecacheTrustClaim(
        this.key(board, "lease"),
        this.key(board, "issued"),
        this.key(board, "readers"),
        me,
        String(Math.max(1, Math.ceil(ttlMs))),
        storeFailing ? "1" : "0",
      ),
    );
    if (ticket < 0) return null;
    return { ticket: readers === 1 ? ticket : null };
  }

  async swept(board: string, ticket: number): Promise<void> {
    await this.call("trust swept", () =>
      this.redis.sidecacheTrustSwept(this.key(board, "swept"), String(ticket)),
    );
  }

  async release(board: string, me: string): Promise<void> {
    await this.call("trust release", () => this.redis.sidecacheTrustRelease(this.key(board, "lease"), me));
  }
}
