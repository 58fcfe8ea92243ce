/**
 * A Lua script run by its SHA1, sent whole on the first NOSCRIPT (a restarted server, a promoted replica,
 * a Cluster node seen for the first time). On a Cluster it goes to the node of its first key.
 */
import { createHash } from "node:crypto";
import type { RedisClient } from "./connect.js";

export class Script {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash("sha1").update(lua).digest("hex");
  }

  async run(redis: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes("NOSCRIPT")) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}
