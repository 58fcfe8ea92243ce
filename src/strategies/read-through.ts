/** read-through: cache-aside reads, refreshed in the background before they expire; no writes through sidecache. */
import { MethodNotAllowedError } from "../errors.js";
import { BaseStrategy } from "./base.js";
import type { DeleteAck, ManyWriteAck, StrategyContext, WriteAck } from "./strategy.js";

export class ReadThroughStrategy extends BaseStrategy {
  readonly name = "read-through";

  constructor(ctx: StrategyContext) {
    super(ctx, { refreshAhead: true });
  }

  private refuse(): never {
    throw new MethodNotAllowedError(
      `Keyspace ${JSON.stringify(this.ctx.keyspace.name)} is read-through: it is written in PostgreSQL, not through sidecache.`,
      ["GET"],
    );
  }

  async put(): Promise<WriteAck> {
    this.refuse();
  }

  async delete(): Promise<DeleteAck> {
    this.refuse();
  }

  async putMany(): Promise<ManyWriteAck> {
    this.refuse();
  }
}
