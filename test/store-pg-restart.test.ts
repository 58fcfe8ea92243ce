/**
 * A pg store whose PostgreSQL goes away (clean stop, crash) fails its calls with
 * BackendUnavailableError("store") within the timeout, never crashes the process, and recovers by itself
 * when the server is back.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendUnavailableError } from "../src/errors.js";
import type { StoreAdapter, TableStore } from "../src/store/adapter.js";
import { isCommitUnknown } from "../src/store/errors.js";
import { createStore } from "../src/store/index.js";
import { startPrivatePostgres, type PrivatePostgres } from "./support/pg-server.js";

const TIMEOUT_MS = 2000;

describe("pg store across PostgreSQL restarts", () => {
  let server: PrivatePostgres;
  let store: StoreAdapter;
  let table: TableStore;
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);

  beforeAll(async () => {
    process.on("uncaughtException", onCrash);
    process.on("unhandledRejection", onCrash);
    server = await startPrivatePostgres();
    store = await createStore({ url: server.url, poolSize: 4, timeoutMs: TIMEOUT_MS });
    table = await store.table({ table: "restart_kv" });
  });

  afterAll(async () => {
    await store?.close();
    await server?.cleanup();
    process.off("uncaughtException", onCrash);
    process.off("unhandledRejection", onCrash);
  });

  /** The call rejects with BackendUnavailableError("store"), and not later than the timeout allows. */
  async function expectUnavailable(call: () => Promise<unknown>): Promise<void> {
    const started = Date.now();
    const err = await call().then(
      () => new Error("the call succeeded"),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).backend).toBe("store");
    expect((err as BackendUnavailableError).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);
  }

  /** Polls (bounded) until the adapter answers again by itself. */
  async function waitUntilBack(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await store.ping();
        return;
      } catch (err) {
        expect(err).toBeInstanceOf(BackendUnavailableError);
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  it("works on the private server", async () => {
    const [w] = await table.write([{ key: "k", value: '"before"' }], { minVersion: 1 });
    expect(await table.get("k")).toEqual({ key: "k", value: '"before"', version: w!.version });
    // Fill the pool with idle connections, so that the stop has some to break.
    await Promise.all(Array.from({ length: 8 }, () => table.get("k")));
  });

  it("fails calls with BackendUnavailableError while the server is stopped, then recovers by itself", async () => {
    await server.stop();
    await expectUnavailable(() => table.get("k"));
    await expectUnavailable(() => table.getMany(["k"]));
    await expectUnavailable(() => table.write([{ key: "k", value: '"during"' }], { minVersion: 1 }));
    await expectUnavailable(() => table.applyVersioned([{ key: "k", value: '"during"', version: 10 }]));
    await expectUnavailable(() => store.ping());
    await expectUnavailable(() => store.table({ table: "restart_other" }));

    await server.start();
    await waitUntilBack();
    const row = await table.get("k");
    expect(row?.value).toBe('"before"');
    const [w] = await table.write([{ key: "k", value: '"after"' }], { minVersion: 1 });
    expect(w!.version).toBeGreaterThan(row!.version);
    expect(await table.get("k")).toMatchObject({ value: '"after"' });
  });

  it("fails a write the stop cuts in half as an unknown outcome, and leaves nothing of it behind", async () => {
    const before = await table.get("k");
    // A trigger that sleeps on "slow" values: the stop lands while the write's statement runs.
    const raw = new pg.Client({ connectionString: server.url });
    await raw.connect();
    await raw.query(`create or replace function restart_slow() returns trigger language plpgsql as $$
      begin if new.value ? 'slow' then perform pg_sleep(5); end if; return new; end $$`);
    await raw.query(`create trigger restart_slow before insert or update on restart_kv
      for each row execute function restart_slow()`);
    await raw.end();
    const cut = table.write([{ key: "k", value: '{"slow": true}' }], { minVersion: 1 }).then(
      () => new Error("the write succeeded"),
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    await server.stop();
    const err = await cut;
    expect(err).toBeInstanceOf(BackendUnavailableError);
    // It was sent and may have committed, as far as the daemon can tell: the strategies settle its key.
    expect(isCommitUnknown(err)).toBe(true);
    await server.start();
    await waitUntilBack();
    expect(await table.get("k")).toEqual(before);
  });

  it("survives a crash of the server (SIGKILL) the same way", async () => {
    await Promise.all(Array.from({ length: 4 }, () => table.get("k")));
    await server.kill();
    await expectUnavailable(() => table.get("k"));
    await expectUnavailable(() => table.write([{ key: "k", value: '"crash"' }], { minVersion: 1 }));
    await server.start();
    await waitUntilBack();
    const [w] = await table.write([{ key: "k", value: '"recovered"' }], { minVersion: 1 });
    expect(await table.get("k")).toEqual({ key: "k", value: '"recovered"', version: w!.version });
  });

  it("gives up on a server that hangs within the timeout, and recovers when it answers again", async () => {
    await Promise.all(Array.from({ length: 4 }, () => table.get("k")));
    await server.pause();
    try {
      await expectUnavailable(() => table.get("k")); // a pooled connection that gets no answer
      const hung = table.write([{ key: "k", value: '"hung"' }], { minVersion: 1 }).catch((e: unknown) => e);
      await expectUnavailable(() => hung.then((e) => Promise.reject(e)));
      // Its statement may sit in the frozen server's socket and run once it wakes: an unknown outcome,
      // which the strategies settle, never a refusal.
      expect(isCommitUnknown(await hung)).toBe(true);
      await expectUnavailable(() => store.ping());
    } finally {
      await server.resume();
    }
    await waitUntilBack();
    // all of the write or nothing of it
    expect(['"recovered"', '"hung"']).toContain((await table.get("k"))?.value);
  });

  it("never crashed the process", () => {
    expect(crashes).toEqual([]);
  });
});
