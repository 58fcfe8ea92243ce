/**
 * Which Redis the cache is talking to. A Redis restarted (from an RDB or AOF file, or empty), failed over to
 * a replica, emptied by FLUSHALL or replaced by another server at the same address may hold entries older
 * than writes this daemon or another one acknowledged: the entries that replaced them were lost. So every
 * entry carries the incarnation it was written for, and an entry of another incarnation is never served.
 *
 * An incarnation is a random id kept in a marker key (one per hash tag, so the scripts that check it stay
 * in one slot) together with the run id of the Redis process that holds it: `<run_id>:<incarnation>`.
 * On every (re)connection the daemon reads the server's run id and adopts the marker's incarnation when its
 * run id is the server's; otherwise (another process: a restart, a failover, a new server; or no marker: a
 * FLUSHALL, an eviction) it writes a new incarnation. Every daemon adopts the same one (the marker is set
 * by a compare in Lua), so a warm cache survives daemon restarts and only a cache that may have lost writes
 * goes cold. setIfNewer refuses to write when the marker is not the one the daemon expects, so nothing
 * written for an old incarnation lands after the change, and `generation` tells fills that read PostgreSQL
 * before a change to drop what they read.
 */
import { randomBytes } from "node:crypto";
import { INCARNATION_MAX } from "./codec.js";

/** KEYS[1] the marker; ARGV[1] the server's run id; ARGV[2] a new incarnation. Returns the one to use. */
export const ADOPT_LUA = `
local m = redis.call('GET', KEYS[1])
if m then
  local rid, inc = string.match(m, '^(.*):(%w+)$')
  if rid == ARGV[1] then return inc end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
return ARGV[2]
`;

export interface IncarnationIo {
  /** the run id of the server on the current connection */
  runId(): Promise<string>;
  /** runs ADOPT_LUA on the marker */
  adopt(marker: string, runId: string, candidate: string): Promise<string>;
  /** the marker's text, null when missing */
  read(marker: string): Promise<string | null>;
}

interface Adopted {
  runId: string;
  incarnation: string;
}

export function newIncarnation(): string {
  // 60 bits in base 36: 12 characters at most
  const n = randomBytes(8).readBigUInt64BE() >> 4n;
  return n.toString(36).slice(0, INCARNATION_MAX);
}

export class Incarnations {
  private runId?: Promise<string>;
  private readonly adopted = new Map<string, Adopted>();
  private readonly adopting = new Map<string, Promise<Adopted>>();
  /** the last incarnation each marker had, across connections: a change bumps the generation */
  private readonly last = new Map<string, string>();
  private gen = 0;
  private connection = 0;

  constructor(
    private readonly io: IncarnationIo,
    private readonly markerOf: (tag: string) => string,
    private readonly onChange: (tag: string, from: string, to: string) => void,
  ) {}

  /** Bumped whenever any marker's incarnation changes. */
  get generation(): number {
    return this.gen;
  }

  /** A new connection: its server may be another one; everything is adopted again on first use. */
  reconnected(): void {
    this.connection++;
    this.runId = undefined;
    this.adopted.clear();
    this.adopting.clear();
  }

  /** The adopted state of a tag, if adopted on this connection (the hot path: no promise). */
  peek(tag: string): Adopted | undefined {
    return this.adopted.get(tag);
  }

  /** The incarnation of the tag, adopting it first when needed. */
  async of(tag: string): Promise<Adopted> {
    return this.adopted.get(tag) ?? this.adopt(tag);
  }

  /** Forgets the tag's incarnation (its marker changed behind our back) and adopts it again. */
  readopt(tag: string): Promise<Adopted> {
    this.adopted.delete(tag);
    return this.adopt(tag);
  }

  /** Reads every adopted marker again; adopts anew where one changed (FLUSHALL, a replaced server). */
  async verify(): Promise<void> {
    for (const [tag, a] of [...this.adopted]) {
      const text = await this.io.read(this.markerOf(tag));
      if (text !== `${a.runId}:${a.incarnation}`) await this.readopt(tag);
    }
  }

  markerText(a: Adopted): string {
    return `${a.runId}:${a.incarnation}`;
  }

  private adopt(tag: string): Promise<Adopted> {
    let p = this.adopting.get(tag);
    if (p) return p;
    const connection = this.connection;
    p = (async () => {
      this.runId ??= this.io.runId();
      const runId = await this.runId.catch((err: unknown) => {
        this.runId = undefined;
        throw err;
      });
      const incarnation = await this.io.adopt(this.markerOf(tag), runId, newIncarnation());
      const a = { runId, incarnation };
      const before = this.last.get(tag);
      this.last.set(tag, incarnation);
      if (before !== undefined && before !== incarnation) {
        this.gen++;
        this.onChange(tag, before, incarnation);
      }
      if (connection === this.connection) this.adopted.set(tag, a);
      return a;
    })().finally(() => {
      if (this.adopting.get(tag) === p) this.adopting.delete(tag);
    });
    this.adopting.set(tag, p);
    return p;
  }
}
