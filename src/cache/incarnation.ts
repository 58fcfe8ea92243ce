/**
 * Which Redis the cache is talking to. A Redis restarted (from an RDB or AOF file, or empty), failed over to
 * a replica, emptied by FLUSHALL or replaced by another server at the same address may hold entries older
 * than writes this daemon or another one acknowledged: the entries that replaced them were lost. So every
 * entry carries the incarnation it was written for, and an entry of another incarnation is never served.
 *
 * An incarnation is a random id kept in a marker key (one per hash tag, so the scripts that check it stay
 * in one slot: on a Cluster one per bucket, guarding the bucket's keys on the shard that holds them)
 * together with the run id of the Redis process that holds it: `<run_id>:<incarnation>`.
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

/**
 * KEYS[1] the marker; ARGV[1] a new incarnation. Returns {run id, the incarnation to use}. The run id is
 * read here, on the server that holds the marker, so the two can not come from different servers (a
 * Cluster slot that moved, a failover in between). A replica refuses: markers are adopted on masters only.
 */
export const ADOPT_LUA = `
if string.match(redis.call('INFO', 'replication'), 'role:slave') then
  return redis.error_reply('READONLY the incarnation is adopted on a master only')
end
local rid = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local m = redis.call('GET', KEYS[1])
if m then
  local mrid, inc = string.match(m, '^(.*):(%w+)$')
  if mrid == rid then return {rid, inc} end
end
redis.call('SET', KEYS[1], rid .. ':' .. ARGV[1])
return {rid, ARGV[1]}
`;

export interface IncarnationIo<N> {
  /** runs ADOPT_LUA on the marker of the tag, on the server that serves the tag now */
  adopt(tag: string, candidate: string): Promise<{ runId: string; incarnation: string; node: N }>;
  /** the marker's text as the server the tag was adopted on holds it, null when missing */
  read(tag: string, on: N): Promise<string | null>;
}

export interface Adopted<N> {
  runId: string;
  incarnation: string;
  /** the connection it was adopted on: on a Cluster, the node every command of the tag goes to */
  node: N;
}

export function newIncarnation(): string {
  // 60 bits in base 36: 12 characters at most
  const n = randomBytes(8).readBigUInt64BE() >> 4n;
  return n.toString(36).slice(0, INCARNATION_MAX);
}

export class Incarnations<N> {
  private readonly adopted = new Map<string, Adopted<N>>();
  private readonly adopting = new Map<string, Promise<Adopted<N>>>();
  /** the last incarnation each marker had, across connections: a change bumps the generation */
  private readonly last = new Map<string, string>();
  private gen = 0;
  private connection = 0;

  constructor(
    private readonly io: IncarnationIo<N>,
    private readonly onChange: (tag: string, from: string, to: string) => void,
  ) {}

  /** Bumped whenever any marker's incarnation changes. */
  get generation(): number {
    return this.gen;
  }

  /** A new connection: its server may be another one; everything is adopted again on first use. */
  reconnected(): void {
    this.connection++;
    this.adopted.clear();
    this.adopting.clear();
  }

  /** The adopted state of a tag, if adopted on this connection (the hot path: no promise). */
  peek(tag: string): Adopted<N> | undefined {
    return this.adopted.get(tag);
  }

  /** The incarnation of the tag, adopting it first when needed. */
  async of(tag: string): Promise<Adopted<N>> {
    return this.adopted.get(tag) ?? this.adopt(tag);
  }

  /** Forgets the tag's incarnation (its marker changed behind our back) and adopts it again. */
  readopt(tag: string): Promise<Adopted<N>> {
    this.adopted.delete(tag);
    return this.adopt(tag);
  }

  /** Reads every adopted marker again; adopts anew where one changed (FLUSHALL, a replaced server). */
  async verify(): Promise<void> {
    await Promise.all(
      [...this.adopted].map(async ([tag, a]) => {
        const text = await this.io.read(tag, a.node);
        if (text !== `${a.runId}:${a.incarnation}`) await this.readopt(tag);
      }),
    );
  }

  markerText(a: Adopted<N>): string {
    return `${a.runId}:${a.incarnation}`;
  }

  /** Forgets every tag adopted on this connection (it closed, or its node no longer serves them). */
  forgetNode(node: N): void {
    for (const [tag, a] of this.adopted) if (a.node === node) this.adopted.delete(tag);
  }

  /** Forgets the tags for which the test holds. */
  forgetIf(test: (tag: string, a: Adopted<N>) => boolean): void {
    for (const [tag, a] of this.adopted) if (test(tag, a)) this.adopted.delete(tag);
  }

  /** Forgets one tag: adopted again on its next use. */
  forget(tag: string): void {
    this.adopted.delete(tag);
  }

  private adopt(tag: string): Promise<Adopted<N>> {
    let p = this.adopting.get(tag);
    if (p) return p;
    const connection = this.connection;
    p = (async () => {
      const a = await this.io.adopt(tag, newIncarnation());
      const incarnation = a.incarnation;
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
