/**
 * The client against a real daemon (Redis and PostgreSQL) for every strategy: typed values, versions and
 * ETags, If-Match from a previous read, If-None-Match: *, optimistic updates, mget/mset, delete, flush,
 * check, keyspaces and dead letters. What PostgreSQL holds is read back directly.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "../../test/support/daemon.js";
import {
  MethodNotAllowedError,
  NotFoundError,
  SidecacheClient,
  VersionMismatchError,
  etag,
  parseEtag,
  type Strategy,
} from "../src/index.js";
import { cleanup } from "./support.js";

const tag = uniqueTag();
const SYNC = {
  aside: "cache-aside",
  wts: "write-through",
  wte: "write-through",
  around: "write-around",
} as const;
const tables = ["aside", "wts", "wte", "around", "wb", "rt", "stock"].map((t) => `${tag}_${t}`);
let daemon: Daemon;
let db: pg.Client;
let sc: SidecacheClient;

interface Profile {
  name: string;
  visits: number;
  tags?: string[];
}

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${tag}_stock (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  daemon = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  wts: { strategy: write-through, consistency: strict, table: ${tag}_wts }
  wte: { strategy: write-through, consistency: eventual, table: ${tag}_wte }
  around: { strategy: write-around, table: ${tag}_around }
  wb:
    strategy: write-behind
    table: ${tag}_wb
    write_behind: { flush_interval: 10s, batch_size: 500, max_queue: 100000, max_attempts: 2 }
  rt: { strategy: read-through, table: ${tag}_rt }
  stock:
    strategy: write-behind
    table: ${tag}_stock
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 50ms, batch_size: 100, max_queue: 1000, max_attempts: 1 }
`);
  sc = new SidecacheClient({ url: daemon.url });
});

afterAll(async () => {
  await sc?.close();
  await daemon?.stop();
  await db?.end();
  await cleanup(tag, tables);
});

async function row(ks: string, key: string): Promise<{ value: unknown; version: number } | undefined> {
  const r = await db.query(`select value, version from ${tag}_${ks} where key = $1`, [key]);
  const first = r.rows[0] as { value: unknown; version: string } | undefined;
  return first && { value: first.value, version: Number(first.version) };
}

const STRATEGIES = [...Object.entries(SYNC), ["wb", "write-behind"]] as [string, Strategy][];

describe.each(STRATEGIES)("%s (%s)", (ks, strategy) => {
  const queued = strategy === "write-behind";
  const users = () => sc.keyspace<Profile>(ks);
  const land = async () => {
    if (queued) expect(await users().flush()).toBeGreaterThanOrEqual(0);
  };

  it("creates once, reads the value with its version and ETag, and refuses a second create", async () => {
    const created = await users().create("alice", { name: "Alice", visits: 0, tags: ["a"] });
    expect(created.queued).toBe(queued);
    expect(created.etag).toBe(etag(created.version));
    const read = await users().get("alice");
    expect(read).not.toBeNull();
    expect(read!.value).toEqual({ name: "Alice", visits: 0, tags: ["a"] });
    expect(read!.version).toBe(created.version);
    expect(parseEtag(read!.etag)).toBe(created.version);
    expect(["HIT", "MISS"]).toContain(read!.cache);
    expect((await users().get("alice"))!.cache).toBe("HIT");

    const again = await users()
      .create("alice", { name: "Mallory", visits: 9 })
      .catch((e: unknown) => e);
    expect(again).toBeInstanceOf(VersionMismatchError);
    expect(again).toMatchObject({ code: "version_mismatch", status: 412 });
    expect((await users().get("alice"))!.value.name).toBe("Alice");
    await land();
    expect(await row(ks, "alice")).toEqual({
      value: { name: "Alice", visits: 0, tags: ["a"] },
      version: created.version,
    });
  });

  it("writes with If-Match from a previous read, and refuses a stale one without changing anything", async () => {
    await users().put("bob", { name: "Bob", visits: 1 });
    const first = (await users().get("bob"))!;
    const second = await users().put("bob", { name: "Bob", visits: 2 }, { ifMatch: first });
    expect(second.version).toBeGreaterThan(first.version);
    for (const stale of [first, first.version, first.etag]) {
      const err = await users()
        .put("bob", { name: "Bob", visits: 99 }, { ifMatch: stale })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VersionMismatchError);
    }
    expect(await users().get("bob")).toMatchObject({ value: { visits: 2 }, version: second.version });
    // If-Match on an absent key is a mismatch too.
    await expect(users().put("nobody", { name: "", visits: 0 }, { ifMatch: 1 })).rejects.toBeInstanceOf(
      VersionMismatchError,
    );
    expect(await users().get("nobody")).toBeNull();
  });

  it("update() retries on version mismatches: concurrent increments all count", async () => {
    await users().put("counter", { name: "c", visits: 0 });
    await Promise.all(
      Array.from({ length: 6 }, () =>
        users().update("counter", (cur) => ({ ...cur!, visits: cur!.visits + 1 }), { attempts: 50 }),
      ),
    );
    expect((await users().get("counter"))!.value.visits).toBe(6);
    const fresh = await users().update("fresh", (cur) => ({ name: "new", visits: (cur?.visits ?? 0) + 1 }));
    expect(fresh.value).toEqual({ name: "new", visits: 1 });
  });

  it("mset writes all, mget reads them back in order with null for absent keys", async () => {
    const items = new Map<string, Profile>([
      ["m1", { name: "one", visits: 1 }],
      ["m/2 ü", { name: "two", visits: 2 }],
      ["m3", { name: "three", visits: 3 }],
    ]);
    const written = await users().mset(items);
    expect(written.queued).toBe(queued);
    expect([...written.versions.keys()].sort()).toEqual([...items.keys()].sort());
    const read = await users().mget(["m3", "absent", "m1", "m/2 ü", "m1"]);
    expect([...read.keys()]).toEqual(["m3", "absent", "m1", "m/2 ü"]);
    expect(read.get("absent")).toBeNull();
    expect(read.get("m/2 ü")).toEqual({ name: "two", visits: 2 });
    const single = (await users().get("m/2 ü"))!;
    expect(single.version).toBe(written.versions.get("m/2 ü"));
    await land();
    expect((await row(ks, "m3"))?.value).toEqual({ name: "three", visits: 3 });
  });

  it("deletes (absent keys too), conditionally with If-Match", async () => {
    const w = await users().put("gone", { name: "g", visits: 0 });
    await expect(users().delete("gone", { ifMatch: w.version - 1 })).rejects.toBeInstanceOf(
      VersionMismatchError,
    );
    const d = await users().delete("gone", { ifMatch: w });
    expect(d.queued).toBe(queued);
    if (queued) expect(d.version).toBeGreaterThan(w.version);
    expect(await users().get("gone")).toBeNull();
    expect((await users().delete("never-there")).key).toBe("never-there");
    await land();
    expect(await row(ks, "gone")).toBeUndefined();
  });
});

describe("read-through", () => {
  it("serves rows written in PostgreSQL, and refuses writes with MethodNotAllowedError", async () => {
    await db.query(
      `insert into ${tag}_rt (key, value, version, updated_at) values ('r1', '{"name":"row","visits":7}', 5, now())`,
    );
    const rt = sc.keyspace<Profile>("rt");
    expect(await rt.get("r1")).toMatchObject({ value: { name: "row", visits: 7 }, version: 5, etag: '"5"' });
    for (const write of [
      () => rt.put("r1", { name: "x", visits: 0 }),
      () => rt.delete("r1"),
      () => rt.mset({ r2: { name: "y", visits: 0 } }),
    ]) {
      const err = await write().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MethodNotAllowedError);
      expect(err).toMatchObject({ code: "method_not_allowed", status: 405, allow: ["GET"] });
    }
    expect((await rt.get("r1"))!.value.visits).toBe(7);
  });
});

describe("admin calls", () => {
  it("keyspaces() lists every keyspace with its strategy; check() returns a report", async () => {
    const all = await sc.keyspaces();
    expect(Object.keys(all).sort()).toEqual(["around", "aside", "rt", "stock", "wb", "wte", "wts"]);
    expect(all.wts).toMatchObject({ strategy: "write-through", consistency: "strict" });
    expect(all.wb!.strategy).toBe("write-behind");
    const report = await sc.keyspace("aside").check({ full: true });
    expect(report).toMatchObject({ keyspace: "aside", mode: "full", inconsistent: 0 });
    expect(report.sampled).toBeGreaterThan(0);
    await expect(sc.flush("no-such-keyspace")).rejects.toMatchObject({
      code: "unknown_keyspace",
      status: 404,
    });
  });

  it("lists, drops and replays dead letters", async () => {
    const stock = sc.keyspace<{ id: string; qty: number }>("stock");
    await stock.put("ok", { id: "ok", qty: 1 });
    await stock.put("neg", { id: "neg", qty: -1 });
    await stock.put("neg2", { id: "neg2", qty: -2 });
    await stock.flush();
    const letters = await sc.deadLetters("stock");
    expect(letters.map((l) => l.key).sort()).toEqual(["neg", "neg2"]);
    expect(await sc.deadLetters("stock", { count: 1 })).toHaveLength(1);
    const neg2 = letters.find((l) => l.key === "neg2")!;
    await sc.dropDeadLetter("stock", neg2.id);
    const again = await sc.dropDeadLetter("stock", neg2.id).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(NotFoundError);
    expect(again).toMatchObject({ code: "not_found" });

    await db.query(`alter table ${tag}_stock drop constraint ${tag}_stock_qty_check`);
    const neg = letters.find((l) => l.key === "neg")!;
    expect(await sc.replayDeadLetter("stock", neg.id)).toBeGreaterThan(neg.version);
    await stock.flush();
    const r = await db.query(`select qty from ${tag}_stock where id = 'neg'`);
    expect(r.rows[0]?.qty).toBe(-1);
    expect(await sc.deadLetters("stock")).toEqual([]);
  });
});
