import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll } from "vitest";
import { createStore, type SqlStoreAdapter } from "../src/store/index.js";
import { storeAdapterContract } from "./store-adapter.contract.js";

const PG_URL = process.env.SIDECACHE_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/test";

storeAdapterContract("postgres", async () => {
  const store = await createStore({ url: PG_URL, poolSize: 10, timeoutMs: 10_000 });
  return {
    store,
    sql: async (text) => {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(text);
      } finally {
        await client.end();
      }
    },
  };
});

// PGlite is one connection: the fixtures go through the adapter's own.
storeAdapterContract("pglite (memory)", async () => {
  const store = await createStore({ url: "pglite:memory", poolSize: 1, timeoutMs: 10_000 });
  return { store, sql: async (text) => void (await (store as SqlStoreAdapter).driver.query(text)) };
});

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

storeAdapterContract("pglite (directory)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sidecache-pglite-"));
  dirs.push(dir);
  const store = await createStore({
    url: `pglite:${join(dir, "nested", "pg")}`,
    poolSize: 1,
    timeoutMs: 10_000,
  });
  return { store, sql: async (text) => void (await (store as SqlStoreAdapter).driver.query(text)) };
});
