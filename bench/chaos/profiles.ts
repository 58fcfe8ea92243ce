/**
 * The two fault sets a chaos run can use. write-behind's promise (no acknowledged write lost) rests on
 * Redis keeping its queue: it holds with an append-only file fsynced on every write (docs/write-behind.md),
 * and can not hold when Redis goes back to an older RDB snapshot or is emptied. So `durable` runs every
 * strategy under faults that keep what Redis acknowledged, and `lossy-cache` adds the faults that lose it
 * and leaves write-behind out.
 */
import { CACHE_LOSING, FAULTS, type Fault } from "./faults.js";

export interface KeyspaceSpec {
  name: string;
  strategy: string;
  /** the rest of its YAML line */
  yaml: string;
  /** PostgreSQL commits each acknowledged write: refused and slow commits can be asked for */
  synchronous: boolean;
}

export const KEYSPACES: readonly KeyspaceSpec[] = [
  { name: "cache-aside", strategy: "cache-aside", yaml: "strategy: cache-aside, ttl: 1m", synchronous: true },
  {
    name: "aside-short-ttl",
    strategy: "cache-aside",
    // entries expire under load; expired ones are served STALE while PostgreSQL is down
    yaml: "strategy: cache-aside, ttl: 700ms, negative_ttl: 300ms",
    synchronous: true,
  },
  {
    name: "aside-near",
    strategy: "cache-aside with a coherent near cache",
    // hits answered from each daemon's memory (without a round trip) while writes go through the others
    yaml: "strategy: cache-aside, ttl: 1m, near_cache: { mode: coherent, ttl: 1m }",
    synchronous: true,
  },
  {
    name: "wt-strict",
    strategy: "write-through strict",
    yaml: "strategy: write-through, consistency: strict, ttl: 1m",
    synchronous: true,
  },
  {
    name: "wt-eventual",
    strategy: "write-through eventual",
    yaml: "strategy: write-through, consistency: eventual, ttl: 1s",
    synchronous: true,
  },
  {
    name: "write-around",
    strategy: "write-around",
    yaml: "strategy: write-around, ttl: 1s",
    synchronous: true,
  },
  {
    name: "write-behind",
    strategy: "write-behind",
    yaml: "strategy: write-behind, ttl: 2s, write_behind: { flush_interval: 200ms, batch_size: 200 }",
    synchronous: false,
  },
];

export interface Profile {
  keyspaces: readonly KeyspaceSpec[];
  faults: readonly Fault[];
  /** what it leaves out and why, printed at the start of a run */
  note: string;
}

export const PROFILES = {
  durable: {
    keyspaces: KEYSPACES,
    faults: FAULTS.filter((f) => !CACHE_LOSING.includes(f)),
    note: "every strategy; Redis keeps what it acknowledged (append-only file, fsync always)",
  },
  "lossy-cache": {
    keyspaces: KEYSPACES.filter((k) => k.strategy !== "write-behind"),
    faults: FAULTS,
    note:
      "Redis also restarted from an older RDB snapshot and flushed; write-behind left out: its queue " +
      "lives in Redis and its durability needs the append-only file",
  },
} satisfies Record<string, Profile>;

export type ProfileName = keyof typeof PROFILES;
export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[];
