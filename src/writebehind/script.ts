/** A Lua script run by its SHA1, loaded on the first NOSCRIPT (after a Redis restart, say). */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

export class Script {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash("sha1").update(lua).digest("hex");
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}
