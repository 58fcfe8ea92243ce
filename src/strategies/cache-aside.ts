/** cache-aside: reads fill the cache; writes commit to PostgreSQL, then invalidate the entry. */
import type { WriteOrigin } from "../store/adapter.js";
import { BaseStrategy, conditionsOp, versionsOf } from "./base.js";
import type { Conditions, DeleteAck, ManyWriteAck, WriteAck } from "./strategy.js";

export class CacheAsideStrategy extends BaseStrategy {
  readonly name: string = "cache-aside";

  async put(key: string, value: string, conditions: Conditions, origin?: WriteOrigin): Promise<WriteAck> {
    const [result] = await this.storeWrite([conditionsOp(key, value, conditions)], { origin });
    await this.afterCommit(key, this.tombstone(result!));
    return { status: 200, version: result!.version };
  }

  async delete(key: string, conditions: Conditions, origin?: WriteOrigin): Promise<DeleteAck> {
    const [result] = await this.storeWrite([conditionsOp(key, null, conditions)], { origin });
    // The store answered "absent" for good at this version: cache that, guarded like any fill.
    await this.afterCommit(key, this.entryFor(result!, null));
    return { status: 204 };
  }

  async putMany(items: Map<string, string>, origin?: WriteOrigin): Promise<ManyWriteAck> {
    const results = await this.storeWrite(
      [...items].map(([k, v]) => conditionsOp(k, v, {})),
      { origin, mset: true },
    );
    await Promise.all(results.map((r) => this.afterCommit(r.key, this.tombstone(r))));
    return { status: 200, versions: versionsOf(results) };
  }
}
