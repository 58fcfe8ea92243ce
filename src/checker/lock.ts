/**
 * What several daemons sharing one Redis agree on, so that each schedule tick runs once across them:
 * - a tick claim: SET NX on `<prefix>:checker:{ks}:tick:<slot ms>`, kept for a lease after the run, so a
 *   daemon whose clock fires late does not run the same tick again;
 * - a run lease: one check of a keyspace at a time across daemons, renewed while it runs, released with
 *   compare-and-delete so an expired holder can not release its successor's lease;
 * - the alert state of a keyspace (firing or not), so the daemon that sees a keyspace recover sends the
 *   resolved alert even when another one sent the firing alert.
 * With the embedded `memory:` cache every daemon has its own cache, so the same is kept in the process.
 */
import { randomBytes } from "node:crypto";
import type { RedisClient } from "../cache/connect.js";

export interface AlertState {
  /** when the firing alert started, ms since the epoch */
  startsAt: number;
  /** when it was last sent */
  sentAt: number;
}

export interface Coordination {
  /** true for exactly one caller per keyspace and slot within the lease */
  claimTick(keyspace: string, slotMs: number, leaseMs: number): Promise<boolean>;
  /** a release function, or null when another run of the keyspace holds the lease */
  acquireRun(keyspace: string, leaseMs: number): Promise<(() => Promise<void>) | null>;
  /** marks the keyspace firing; the state, and whether this call made the transition */
  fire(keyspace: string, now: number): Promise<{ transition: boolean; state: AlertState }>;
  markSent(keyspace: string, state: AlertState): Promise<void>;
  /** clears the firing state; the state it had when this call made the transition, else null */
  resolve(keyspace: string): Promise<AlertState | null>;
}

const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RESOLVE_LUA = `local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v`;

export class RedisCoordination implements Coordination {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private key(keyspace: string, what: string): string {
    return `${this.prefix}:checker:{${keyspace}}:${what}`;
  }

  async claimTick(keyspace: string, slotMs: number, leaseMs: number): Promise<boolean> {
    const ok = await this.redis.set(this.key(keyspace, `tick:${slotMs}`), token(), "PX", leaseMs, "NX");
    return ok === "OK";
  }

  async acquireRun(keyspace: string, leaseMs: number): Promise<(() => Promise<void>) | null> {
    const key = this.key(keyspace, "running");
    const me = token();
    if ((await this.redis.set(key, me, "PX", leaseMs, "NX")) !== "OK") return null;
    const renew = setInterval(
      () => {
        this.redis.eval(RENEW_LUA, 1, key, me, String(leaseMs)).catch(() => {});
      },
      Math.max(100, Math.floor(leaseMs / 3)),
    );
    renew.unref();
    return async () => {
      clearInterval(renew);
      await this.redis.eval(RELEASE_LUA, 1, key, me).catch(() => {});
    };
  }

  async fire(keyspace: string, now: number): Promise<{ transition: boolean; state: AlertState }> {
    const key = this.key(keyspace, "alert");
    const fresh: AlertState = { startsAt: now, sentAt: 0 };
    if ((await this.redis.set(key, JSON.stringify(fresh), "NX")) === "OK")
      return { transition: true, state: fresh };
    const text = await this.redis.get(key);
    return { transition: false, state: parseState(text) ?? fresh };
  }

  async markSent(keyspace: string, state: AlertState): Promise<void> {
    // XX: a resolve that came in between wins.
    await this.redis.set(this.key(keyspace, "alert"), JSON.stringify(state), "XX");
  }

  async resolve(keyspace: string): Promise<AlertState | null> {
    const text = (await this.redis.eval(RESOLVE_LUA, 1, this.key(keyspace, "alert"))) as string | null;
    return text === null ? null : (parseState(text) ?? { startsAt: 0, sentAt: 0 });
  }
}

export class LocalCoordination implements Coordination {
  private readonly ticks = new Map<string, number>();
  private readonly running = new Set<string>();
  private readonly alerts = new Map<string, AlertState>();

  async claimTick(keyspace: string, slotMs: number, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    for (const [k, until] of this.ticks) if (until <= now) this.ticks.delete(k);
    const k = `${keyspace}\u0000${slotMs}`;
    if (this.ticks.has(k)) return false;
    this.ticks.set(k, now + leaseMs);
    return true;
  }

  async acquireRun(keyspace: string): Promise<(() => Promise<void>) | null> {
    if (this.running.has(keyspace)) return null;
    this.running.add(keyspace);
    return async () => {
      this.running.delete(keyspace);
    };
  }

  async fire(keyspace: string, now: number): Promise<{ transition: boolean; state: AlertState }> {
    const state = this.alerts.get(keyspace);
    if (state) return { transition: false, state };
    const fresh = { startsAt: now, sentAt: 0 };
    this.alerts.set(keyspace, fresh);
    return { transition: true, state: fresh };
  }

  async markSent(keyspace: string, state: AlertState): Promise<void> {
    if (this.alerts.has(keyspace)) this.alerts.set(keyspace, state);
  }

  async resolve(keyspace: string): Promise<AlertState | null> {
    const state = this.alerts.get(keyspace) ?? null;
    this.alerts.delete(keyspace);
    return state;
  }
}

function token(): string {
  return randomBytes(8).toString("hex");
}

function parseState(text: string | null): AlertState | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as Partial<AlertState>;
    if (typeof v.startsAt === "number" && typeof v.sentAt === "number")
      return { startsAt: v.startsAt, sentAt: v.sentAt };
  } catch {
    // not ours: treated as a fresh firing state
  }
  return null;
}
