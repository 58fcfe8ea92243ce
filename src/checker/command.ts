/** `sidecache check`: one consistency run from the command line. Replaced by the checker when it lands. */
import type { Config } from "../config/types.js";

export async function runCheckCommand(_config: Config, _options: { keyspace?: string; full: boolean }): Promise<number> {
  process.stderr.write("sidecache check: the consistency checker is not built yet\n");
  return 2;
}
