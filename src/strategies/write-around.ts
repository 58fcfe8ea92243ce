/** write-around: writes go to PostgreSQL only; the entry is dropped (tombstoned), never filled by the write. */
import { CacheAsideStrategy } from "./cache-aside.js";
import { conditionsOp } from "./base.js";
import type { Conditions, DeleteAck } from "./strategy.js";

export class WriteAroundStrategy extends CacheAsideStrategy {
  override readonly name = "write-around";

  override async delete(key: string, conditions: Conditions): Promise<DeleteAck> {
    const [result] = await this.storeWrite([conditionsOp(key, null, conditions)]);
    await this.afterCommit(key, this.tombstone(result!));
    return { status: 204 };
  }
}
