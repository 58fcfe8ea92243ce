/**
 * write-through: PostgreSQL and the cache both hold the new value before the answer.
 * strict: before the write goes to PostgreSQL, the cache takes a tombstone at the version the write will
 * have (if it can not, nothing is written and the write fails with 503); the write is one statement that
 * takes exactly that version or nothing (VersionTakenError: another writer got there first, so it tries
 * again a version higher); after the commit the value replaces the tombstone. Readers meanwhile miss and
 * read PostgreSQL's committed row, whose fill the tombstone refuses: nobody is served a value before
 * PostgreSQL committed it. A write that fails for sure (a refused row or commit, a failed precondition)
 * takes its tombstone back if it is still there; one whose outcome is unknown leaves it, and the key is
 * settled against PostgreSQL (BaseStrategy.storeWrite).
 * eventual: the commit is the point of truth; a failed cache update is repaired in the background.
 */
import { WRITE_MARKER_MIN_MS, type CacheEntry } from "../cache/adapter.js";
import { BackendUnavailableError, TimeoutError, VersionTakenError } from "../errors.js";
import type { WriteOp, WriteOrigin, WriteResult } from "../store/adapter.js";
import { nextVersion, observeVersion } from "../version.js";
import { BaseStrategy, conditionsOp, outcomeUnknown, versionsOf, type WriteBy } from "./base.js";
import type { Conditions, DeleteAck, ManyWriteAck, WriteAck } from "./strategy.js";
import type { RequestContext } from "../backend/request-context.js";

/** Versions tried when other writers keep holding newer ones (in the cache, or in PostgreSQL). */
const ANNOUNCE_ATTEMPTS = 20;

export class WriteThroughStrategy extends BaseStrategy {
  readonly name = "write-through";

  async put(key: string, value: string, conditions: Conditions, origin?: WriteOrigin): Promise<WriteAck> {
    const [result] = await this.write([conditionsOp(key, value, conditions)], { origin });
    return { status: 200, version: result!.version };
  }

  async delete(key: string, conditions: Conditions, origin?: WriteOrigin): Promise<DeleteAck> {
    await this.write([conditionsOp(key, null, conditions)], { origin });
    return { status: 204 };
  }

  async putMany(items: Map<string, string>, origin?: WriteOrigin): Promise<ManyWriteAck> {
    const results = await this.write(
      [...items].map(([k, v]) => conditionsOp(k, v, {})),
      { origin, mset: true },
    );
    return { status: 200, versions: versionsOf(results) };
  }

  private write(ops: WriteOp[], by: WriteBy): Promise<WriteResult[]> {
    return this.ctx.keyspace.consistency === "strict" ? this.strict(ops, by) : this.eventual(ops, by);
  }

  private async eventual(ops: WriteOp[], by: WriteBy): Promise<WriteResult[]> {
    const results = await this.storeWrite(ops, by);
    await eachOf(results, (r, i) => this.afterCommit(r.key, this.entryFor(r, ops[i]!.value)));
    return results;
  }

  private async strict(ops: WriteOp[], by: WriteBy): Promise<WriteResult[]> {
    const ks = this.ctx.keyspace;
    // The version the write takes, by key, and the tombstones of it the write put in the cache.
    const versions = new Map<string, number>();
    const pending = new Map<string, number>();
    let results!: WriteResult[];
    const request = by.origin?.request;
    let sent = false;
    try {
      for (let attempt = 1; ; attempt++) {
        await eachOf(ops, (o) => this.announce(o.key, versions, pending, request));
        if (request && Date.now() >= request.deadline) {
          // The tombstones went out with the turn's other cache writes, under the cache's own timeout; the
          // request was answered 504 meanwhile: nothing is sent to PostgreSQL.
          throw new TimeoutError(
            "The request's deadline passed before the write was sent; nothing was written.",
          );
        }
        sent = true;
        try {
          results = await this.storeWrite(
            ops.map((o) => ({ ...o, atVersion: versions.get(o.key) })),
            by,
            pending,
          );
          break;
        } catch (err) {
          if (!(err instanceof VersionTakenError)) throw err;
          sent = false; // that statement wrote nothing of this write
          for (const v of err.current.values()) observeVersion(v);
          // Once overtaken (two writes of a key announced in one order, sent in the other) it goes again at
          // once, above the version it found; writers that keep overtaking each other (daemons racing for
          // one key) pause a jittered while, longer each time, which breaks the tie.
          if (attempt > 1 && attempt < ANNOUNCE_ATTEMPTS) {
            await new Promise((r) => setTimeout(r, Math.random() * 4 * attempt));
          }
          if (attempt >= ANNOUNCE_ATTEMPTS) {
            throw new BackendUnavailableError(
              "store",
              `Other writers kept taking the versions this write announced (${ks.name} is write-through strict); nothing was written.`,
            );
          }
        }
      }
    } catch (err) {
      // Not written for sure: the tombstones go, unless a later write replaced them. Unknown: they stay
      // (they let the write's own value in, should it have committed).
      if (!sent || !outcomeUnknown(err)) await Promise.all([...pending].map(([k, v]) => this.takeBack(k, v)));
      throw err;
    }
    await eachOf(results, async (r, i) => {
      const update = this.entryFor(r, ops[i]!.value);
      // Without a tombstone of its own the write must not be answered on a cache update that failed:
      // the durable repair of eventual does it.
      if (pending.get(r.key) !== r.version) return this.afterCommit(r.key, update);
      const set = async () => {
        await this.cacheWrites.set(r.key, update.entry, update.ttlMs);
      };
      // The tombstone keeps readers on PostgreSQL until the value lands, so the write is acknowledged.
      await set().catch(() => this.repairs.schedule(r.key, set, async () => {}));
    });
    return results;
  }

  /**
   * Puts a tombstone in the cache at a version above anything it holds of the key (and above anything
   * this daemon has seen): the version the write takes. When the cache already holds a newer tombstone
   * (another write of the key, under way), that one hides the key as well as the write's own would: the
   * write goes on at its version without one (pending has no entry for the key).
   */
  private async announce(
    key: string,
    versions: Map<string, number>,
    pending: Map<string, number>,
    request: RequestContext | undefined,
  ): Promise<void> {
    const ks = this.ctx.keyspace;
    const ttlMs = Math.max(ks.ttlMs, WRITE_MARKER_MIN_MS);
    for (let attempt = 1; ; attempt++) {
      const version = nextVersion();
      versions.set(key, version);
      let cached: CacheEntry | null = null;
      try {
        const entry = { kind: "tombstone" as const, version, freshUntil: 0 };
        if (await this.cacheWrites.set(key, entry, ttlMs)) {
          pending.set(key, version);
          return;
        }
        cached = await this.ctx.cache.get(ks.name, key, { skipNear: true, request });
      } catch (err) {
        throw new BackendUnavailableError(
          "cache",
          `The cache could not take the write, so nothing was written (${ks.name} is write-through strict).`,
          err,
        );
      }
      pending.delete(key);
      if (cached?.kind === "tombstone" && cached.version >= version) return;
      if (cached) observeVersion(cached.version);
      if (attempt >= ANNOUNCE_ATTEMPTS) {
        throw new BackendUnavailableError(
          "cache",
          `The cache kept holding newer entries of ${JSON.stringify(key)} than this write; nothing was written.`,
        );
      }
    }
  }

  private async takeBack(key: string, version: number): Promise<void> {
    const observed = { kind: "tombstone" as const, version };
    const remove = async () => {
      await this.ctx.cache.deleteIf(this.ctx.keyspace.name, key, observed);
    };
    // While it stays, reads of the key miss (their fills are refused): correct, only slower.
    await remove().catch(() => this.repairs.schedule(key, remove, remove));
  }
}

/** Runs `each` over the items at once and waits for all; a single item (most writes) without Promise.all. */
function eachOf<T>(items: T[], each: (item: T, i: number) => Promise<unknown>): Promise<unknown> {
  return items.length === 1 ? each(items[0]!, 0) : Promise.all(items.map(each));
}
