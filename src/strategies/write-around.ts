/** write-around: writes go to PostgreSQL only; the entry is dropped (tombstoned), never filled by the write. */
import { CacheAsideStrategy } from "./cache-aside.js";
import { conditionsOp } from "./base.js";
import type { Conditions, DeleteAck } from "./strategy.js";
import type { WriteOrigin } from "../store/adapter.js";

export class WriteAroundStrategy extends CacheAsideStrategy {
  override readonly name = "write-around";

  override async delete(key: string, conditions: Conditions, origin?: WriteOrigin): Promise<DeleteAck> {
    const [result] = await this.storeWrite([conditionsOp(key, null, conditions)], { origin });
    await this.afterCommit(key, this.tombstone(result!));
    return { status: 204 };
  }
}
