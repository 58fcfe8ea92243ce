/**
 * write-through: PostgreSQL and the cache both hold the new value before the answer.
 * strict: inside the PostgreSQL transaction, before the commit, the cache takes a tombstone at the new
 * version (if it can not, the transaction rolls back and the write fails with 503); after the commit the
 * value replaces it. Readers meanwhile miss and read PostgreSQL's committed row, whose fill the tombstone
 * refuses: nobody is served a value before PostgreSQL committed it. A commit that fails for sure (a refused
 * deferred constraint, a failed precondition) takes its tombstone back if it is still there; one whose
 * outcome is unknown leaves it, and the key is settled against PostgreSQL (BaseStrategy.storeWrite).
 * eventual: the commit is the point of truth; a failed cache update is repaired in the background.
 */
import { WRITE_MARKER_MIN_MS } from "../cache/adapter.js";
import { BackendUnavailableError } from "../errors.js";
import type { WriteOp, WriteResult } from "../store/adapter.js";
import { BaseStrategy, conditionsOp, outcomeUnknown, versionsOf } from "./base.js";
import type { Conditions, DeleteAck, ManyWriteAck, WriteAck } from "./strategy.js";

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
    const ks = this.ctx.keyspace;
    // Tombstones this write put in the cache before its commit, by key.
    const pending = new Map<string, number>();
    let results: WriteResult[];
    try {
      const hook = async (uncommitted: WriteResult[]) => {
        const ttlMs = Math.max(ks.ttlMs, WRITE_MARKER_MIN_MS);
        await Promise.all(
          uncommitted.map(async (r) => {
            pending.set(r.key, r.version);
            const entry = { kind: "tombstone" as const, version: r.version, freshUntil: 0 };
            try {
              await this.ctx.cache.setIfNewer(ks.name, r.key, entry, ttlMs);
            } catch (err) {
              throw new BackendUnavailableError(
                "cache",
                `The cache could not take the write, so PostgreSQL was rolled back (${ks.name} is write-through strict).`,
                err,
              );
            }
          }),
        );
      };
      results = await this.storeWrite(ops, hook, pending);
    } catch (err) {
      // Not committed for sure: the tombstones go, unless a later write replaced them. Unknown: they stay
      // (they let the write's own value in, should it have committed).
      if (!outcomeUnknown(err)) await Promise.all([...pending].map(([k, v]) => this.takeBack(k, v)));
      throw err;
    }
    await Promise.all(
      results.map(async (r, i) => {
        const { entry, ttlMs } = this.entryFor(r, ops[i]!.value);
        const set = async () => {
          await this.ctx.cache.setIfNewer(ks.name, r.key, entry, ttlMs);
        };
        // The tombstone keeps readers on PostgreSQL until the value lands, so the write is acknowledged.
        await set().catch(() => this.repairs.schedule(r.key, set, async () => {}));
      }),
    );
    return results;
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
