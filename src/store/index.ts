/** Opens the store a StoreConfig names: postgres:// (a pg pool) or pglite:PATH / pglite:memory (embedded). */
import { resolve } from "node:path";
import type { StoreConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { StoreAdapter } from "./adapter.js";
import { mapStoreError } from "./errors.js";
import { PostgresDriver } from "./postgres.js";
import { SqlStoreAdapter } from "./sql-store.js";

export type { StoreAdapter, TableStore } from "./adapter.js";
export { SqlStoreAdapter } from "./sql-store.js";

export async function createStore(config: StoreConfig, log?: Logger): Promise<StoreAdapter> {
  const { url } = config;
  if (/^postgres(ql)?:\/\//i.test(url)) {
    const driver = new PostgresDriver({
      url,
      poolSize: config.poolSize,
      timeoutMs: config.timeoutMs,
      pooler: config.pooler,
      log,
    });
    return new SqlStoreAdapter(driver, log);
  }
  if (url.startsWith("pglite:")) {
    const rest = url.slice("pglite:".length);
    if (rest === "")
      throw new Error(`store.url ${JSON.stringify(url)} names no directory (pglite:PATH or pglite:memory).`);
    const path = rest === "memory" || rest === "memory://" ? null : resolve(rest.replace(/^file:\/\//, ""));
    try {
      // Loaded only for the embedded store: a daemon on PostgreSQL does not carry it (about 4 MiB of RSS).
      const { PgliteDriver } = await import("./pglite.js");
      const driver = await PgliteDriver.open(path);
      return new SqlStoreAdapter(driver, log);
    } catch (err) {
      throw mapStoreError(err);
    }
  }
  throw new Error(`store.url ${JSON.stringify(url)} is not postgres://..., postgresql://... or pglite:PATH.`);
}
