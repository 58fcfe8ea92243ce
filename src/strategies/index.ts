/** The one place a keyspace's strategy is chosen from its config. */
import { CacheAsideStrategy } from "./cache-aside.js";
import { ReadThroughStrategy } from "./read-through.js";
import type { Strategy, StrategyContext } from "./strategy.js";
import { WriteAroundStrategy } from "./write-around.js";
import { WriteBehindStrategy } from "./write-behind.js";
import { WriteThroughStrategy } from "./write-through.js";

export type StrategyFactory = (ctx: StrategyContext) => Strategy;

const factories: Record<string, StrategyFactory> = {
  "cache-aside": (ctx) => new CacheAsideStrategy(ctx),
  "read-through": (ctx) => new ReadThroughStrategy(ctx),
  "write-through": (ctx) => new WriteThroughStrategy(ctx),
  "write-around": (ctx) => new WriteAroundStrategy(ctx),
  "write-behind": (ctx) => new WriteBehindStrategy(ctx),
};

/** write-behind registers itself here (it needs more than the shared context). */
export function registerStrategy(name: string, factory: StrategyFactory): void {
  factories[name] = factory;
}

export function createStrategy(ctx: StrategyContext): Strategy {
  const factory = factories[ctx.keyspace.strategy];
  if (!factory) throw new Error(`no strategy named ${ctx.keyspace.strategy}`);
  return factory(ctx);
}
