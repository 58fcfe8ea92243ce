/**
 * write-through: PostgreSQL and the cache both hold the new value before the answer.
 * strict: the cache takes the value inside the PostgreSQL transaction; if it can not, the transaction
 * rolls back and the write fails with 503; if the commit fails after the cache took it, the entry is removed.
 * eventual: the commit is the point of truth; a failed cache update is repaired in the background.
 * A strict write that fails hides the value it may have left in the cache behind a short-lived tombstone
 * one version above it: unlike a delete, that can not remove the entry of a later write.
 */
import { BackendUnavailableError, SidecacheError } from "../errors.js";
import type { WriteOp, WriteResult } from "../store/adapter.js";
import { BaseStrategy, conditionsOp, versionsOf } from "./base.js";
import type { Conditions, DeleteAck, ManyWriteAck, WriteAck } from "./strategy.js";

/** Long enough for commands a hung cache still holds to run first; short, so refills of the row resume. */
const HIDE_TTL_MS = 2_000;

export class WriteThroughStrategy extends BaseStrategy {
  readonly name = "write-through";

  async put(key: string, value: string, conditions: Conditions): Promise<WriteAck> {
    const [result] = await this.write([conditionsOp(key, value, conditions)]);
    return { status: 200, version: result!.version };
  }

  async delete(key: string, conditions: Conditions): Promise<DeleteAck> {
    await this.write([conditionsOp(key, null, conditions)]);
    return { status: 204 };
  }

  async putMany(items: Map<string, string>): Promise<ManyWriteAck> {
    const results = await this.write([...items].map(([k, v]) => conditionsOp(k, v, {})));
    return { status: 200, versions: versionsOf(results) };
  }

  private write(ops: WriteOp[]): Promise<WriteResult[]> {
    return this.ctx.keyspace.consistency === "strict" ? this.strict(ops) : this.eventual(ops);
  }

  private async eventual(ops: WriteOp[]): Promise<WriteResult[]> {
    const results = await this.storeWrite(ops);
    await Promise.all(results.map((r, i) => this.afterCommit(r.key, this.entryFor(r, ops[i]!.value))));
    return results;
  }

  private async strict(ops: WriteOp[]): Promise<WriteResult[]> {
    const ks = this.ctx.keyspace.name;
    // Keys whose entry may hold a value the commit did not keep: taken by the cache, or sent to it without
    // an answer (a command that timed out can still run when a hung Redis resumes).
    const touched: { key: string; version: number }[] = [];
    try {
      return await this.storeWrite(ops, async (results) => {
        for (const [i, r] of results.entries()) {
          const { entry, ttlMs } = this.entryFor(r, ops[i]!.value);
          touched.push({ key: r.key, version: r.version });
          try {
            await this.ctx.cache.setIfNewer(ks, r.key, entry, ttlMs);
          } catch (err) {
            throw new BackendUnavailableError(
              "cache",
              `The cache could not take the write, so PostgreSQL was rolled back (${ks} is write-through strict).`,
              err,
            );
          }
        }
      });
    } catch (err) {
      const cacheFailed =
        err instanceof SidecacheError &&
        err.code === "backend_unavailable" &&
        (err as BackendUnavailableError).backend === "cache";
      // The cache is failing: do not wait on it; reads of these keys skip it until the entries are gone.
      if (cacheFailed) {
        for (const { key, version } of touched) {
          const hide = this.hide(key, version + 1);
          this.repairs.schedule(key, hide, hide);
        }
      } else await Promise.all(touched.map((t) => this.removeEntry(t.key, t.version + 1)));
      throw err;
    }
  }

  /** A tombstone at `version` replaces the entry below it and nothing newer. */
  private hide(key: string, version: number): () => Promise<void> {
    const entry = { kind: "tombstone" as const, version, freshUntil: 0 };
    return async () => {
      await this.ctx.cache.setIfNewer(this.ctx.keyspace.name, key, entry, HIDE_TTL_MS);
    };
  }

  /**
   * The commit failed after the cache took the value one version below `version`. When hiding it fails
   * too, the intent is recorded (best effort: PostgreSQL just failed), so a sweeper's tombstone hides it
   * even if this daemon dies; the write fails either way.
   */
  private async removeEntry(key: string, version: number): Promise<void> {
    const hide = this.hide(key, version);
    try {
      await hide();
    } catch {
      const repair = this.thenClear(key, version, hide);
      this.repairs.schedule(key, repair, repair);
      await this.ctx.store.recordRepair(key, version).catch(() => {});
    }
  }
}
