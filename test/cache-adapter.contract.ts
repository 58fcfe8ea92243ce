/** What every CacheAdapter does; run by test/cache-adapter.test.ts against each implementation. */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheAdapter, CacheEntry } from "../src/cache/adapter.js";

const TTL = 60_000;

function value(version: number, text: string, freshUntil = Date.now() + TTL): CacheEntry {
  return { kind: "value", version, value: text, freshUntil };
}

function tombstone(version: number): CacheEntry {
  return { kind: "tombstone", version, freshUntil: 0 };
}

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export function cacheAdapterContract(name: string, make: () => Promise<CacheAdapter>): void {
  describe(`CacheAdapter contract: ${name}`, () => {
    let cache: CacheAdapter;
    // every test works in keyspaces of its own
    const ks = (label: string) => `${label}-${randomBytes(4).toString("hex")}`;

    beforeAll(async () => {
      cache = await make();
    });
    afterAll(async () => {
      await cache?.close();
    });

    it("matches the interface", () => {
      expect(typeof cache.kind).toBe("string");
      expect(cache.kind.length).toBeGreaterThan(0);
      for (const method of [
        "get",
        "getMany",
        "setIfNewer",
        "setManyIfNewer",
        "delete",
        "deleteKeyspace",
        "sampleKeys",
        "ping",
        "close",
      ] as const) {
        expect(typeof cache[method]).toBe("function");
      }
    });

    it("answers null for a key never set, and ping resolves", async () => {
      await expect(cache.get(ks("missing"), "nothing-here")).resolves.toBeNull();
      await expect(cache.ping()).resolves.toBeUndefined();
    });

    it("round-trips every kind, the value text byte for byte, with odd keys", async () => {
      const space = ks("roundtrip");
      const big = JSON.stringify({ blob: "x".repeat(1024 * 1024 - 20), n: 1 });
      const texts = [
        '{"b": 2,   "a":[1, 2.50, "x"]}',
        '"héllo wörld — ünïcödé ✓ 日本語 🚀"',
        "null",
        "0",
        '"a:b:c"',
        '"\\u0000 \\ud83d\\ude00 escapes kept as written"',
        big,
      ];
      const keys = [
        "plain",
        "with:colons:in:it",
        "slash/and/more",
        "with spaces  twice",
        "emoji-😀-🎉",
        "ключ-日本",
        "k".repeat(512),
        "é".repeat(256), // 512 bytes of UTF-8
        "*?[glob]\\chars",
        "{braces}",
      ];
      for (const [i, key] of keys.entries()) {
        const text = texts[i % texts.length] as string;
        const entry = value(1000 + i, text, 1_700_000_000_123 + i);
        await expect(cache.setIfNewer(space, key, entry, TTL)).resolves.toBe(true);
        const got = await cache.get(space, key);
        expect(got).toEqual(entry);
        expect(got?.value === text).toBe(true);
      }
      const bigEntry = value(5, big);
      await cache.setIfNewer(space, "big", bigEntry, TTL);
      const gotBig = await cache.get(space, "big");
      expect(gotBig?.value?.length).toBe(big.length);
      expect(gotBig?.value === big).toBe(true);

      const absent: CacheEntry = { kind: "absent", version: 7, freshUntil: 1_700_000_000_999 };
      await expect(cache.setIfNewer(space, "absent-key", absent, TTL)).resolves.toBe(true);
      const gotAbsent = await cache.get(space, "absent-key");
      expect(gotAbsent).toEqual(absent);
      expect(gotAbsent?.value).toBeUndefined();

      await expect(cache.setIfNewer(space, "tomb-key", tombstone(9), TTL)).resolves.toBe(true);
      const gotTomb = await cache.get(space, "tomb-key");
      expect(gotTomb).toEqual(tombstone(9));
      expect(gotTomb?.value).toBeUndefined();
    });

    it("never takes an older version over a value, nor an equal tombstone or absent marker", async () => {
      const space = ks("order");
      expect(await cache.setIfNewer(space, "k", value(10, '"ten"'), TTL)).toBe(true);
      expect(await cache.setIfNewer(space, "k", value(9, '"nine"'), TTL)).toBe(false);
      expect(await cache.setIfNewer(space, "k", tombstone(10), TTL)).toBe(false);
      expect(await cache.setIfNewer(space, "k", { kind: "absent", version: 3, freshUntil: 0 }, TTL)).toBe(
        false,
      );
      expect((await cache.get(space, "k"))?.value).toBe('"ten"');
      expect(await cache.setIfNewer(space, "k", value(11, '"eleven"'), TTL)).toBe(true);
      expect(await cache.get(space, "k")).toMatchObject({ kind: "value", version: 11, value: '"eleven"' });
    });

    it("renews a value with a refill of the same version (its TTL and freshness)", async () => {
      const space = ks("renew");
      expect(await cache.setIfNewer(space, "k", { ...value(10, '"ten"'), freshUntil: 1 }, TTL)).toBe(true);
      expect(
        await cache.setIfNewer(space, "k", { ...value(10, '"ten"'), freshUntil: 2_000_000_000_000 }, TTL),
      ).toBe(true);
      expect(await cache.get(space, "k")).toMatchObject({
        kind: "value",
        version: 10,
        freshUntil: 2_000_000_000_000,
      });
      expect(await cache.setIfNewer(space, "k", { kind: "absent", version: 10, freshUntil: 0 }, TTL)).toBe(
        false,
      );
    });

    it("takes an equal version over a tombstone, and a higher tombstone replaces a value", async () => {
      const space = ks("tomb");
      expect(await cache.setIfNewer(space, "k", value(5, '"five"'), TTL)).toBe(true);
      expect(await cache.setIfNewer(space, "k", tombstone(6), TTL)).toBe(true);
      expect(await cache.get(space, "k")).toMatchObject({ kind: "tombstone", version: 6 });
      expect(await cache.setIfNewer(space, "k", value(5, '"late five"'), TTL)).toBe(false);
      expect(await cache.setIfNewer(space, "k", value(6, '"six"'), TTL)).toBe(true);
      expect(await cache.get(space, "k")).toMatchObject({ kind: "value", version: 6, value: '"six"' });
      // an equal tombstone does not replace the value it was made from
      expect(await cache.setIfNewer(space, "k", tombstone(6), TTL)).toBe(false);
    });

    it("compares versions exactly up to 2^53 (microsecond clocks)", async () => {
      const space = ks("big-versions");
      const top = 2 ** 53;
      expect(await cache.setIfNewer(space, "k", value(top - 1, '"a"'), TTL)).toBe(true);
      expect(await cache.setIfNewer(space, "k", value(top - 2, '"b"'), TTL)).toBe(false);
      expect(await cache.setIfNewer(space, "k", tombstone(top - 1), TTL)).toBe(false);
      expect(await cache.setIfNewer(space, "k", value(top, '"d"'), TTL)).toBe(true);
      expect(await cache.get(space, "k")).toMatchObject({ version: top, value: '"d"' });
      // a version with more digits than the cached one must still compare as a number, not as text
      expect(await cache.setIfNewer(space, "n", value(9, '"nine"'), TTL)).toBe(true);
      expect(await cache.setIfNewer(space, "n", value(10, '"ten"'), TTL)).toBe(true);
      const micros = Date.now() * 1000;
      expect(await cache.setIfNewer(space, "n", value(micros, '"now"'), TTL)).toBe(true);
      expect(await cache.setIfNewer(space, "n", value(micros + 1, '"next"'), TTL)).toBe(true);
      expect(await cache.setIfNewer(space, "n", value(micros, '"again"'), TTL)).toBe(false);
      expect(await cache.get(space, "n")).toMatchObject({ version: micros + 1, value: '"next"' });
    });

    it("drops an entry after its TTL, and then takes any version", async () => {
      const space = ks("ttl");
      expect(await cache.setIfNewer(space, "short", value(50, '"short-lived"'), 80)).toBe(true);
      expect(await cache.setIfNewer(space, "long", value(50, '"long-lived"'), TTL)).toBe(true);
      expect(await cache.get(space, "short")).not.toBeNull();
      const deadline = Date.now() + 3000;
      while ((await cache.get(space, "short")) !== null) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await cache.get(space, "long")).not.toBeNull();
      expect(await cache.setIfNewer(space, "short", value(1, '"older, but nothing cached"'), TTL)).toBe(true);
      expect((await cache.get(space, "short"))?.version).toBe(1);
    });

    it("getMany answers in the order asked, null where nothing is cached", async () => {
      const space = ks("many");
      await cache.setIfNewer(space, "a", value(1, '"A"'), TTL);
      await cache.setIfNewer(space, "c", value(3, '"C"'), TTL);
      await cache.setIfNewer(space, "t", tombstone(4), TTL);
      const got = await cache.getMany(space, ["c", "missing", "a", "t", "a"]);
      expect(got.map((e) => e && [e.kind, e.version, e.value])).toEqual([
        ["value", 3, '"C"'],
        null,
        ["value", 1, '"A"'],
        ["tombstone", 4, undefined],
        ["value", 1, '"A"'],
      ]);
      await expect(cache.getMany(space, [])).resolves.toEqual([]);
    });

    it("delete removes the entry whatever its version; deleting nothing is fine", async () => {
      const space = ks("delete");
      await cache.setIfNewer(space, "k", value(100, '"v"'), TTL);
      await cache.delete(space, "k");
      expect(await cache.get(space, "k")).toBeNull();
      expect(await cache.setIfNewer(space, "k", value(1, '"lower after delete"'), TTL)).toBe(true);
      await expect(cache.delete(space, "never-there")).resolves.toBeUndefined();
    });

    it("deleteKeyspace removes every entry of that keyspace only, whatever its kind and version", async () => {
      const space = ks("drop");
      const other = ks("drop-other");
      const keys = Array.from({ length: 2500 }, (_, i) => `k:${i}/é*?[`);
      await Promise.all(
        keys.map((key, i) =>
          cache.setIfNewer(space, key, i % 3 === 0 ? tombstone(i + 1) : value(i + 1, String(i)), TTL),
        ),
      );
      await cache.setIfNewer(other, "k:1/é*?[", value(5, '"kept"'), TTL);
      expect(await cache.deleteKeyspace(space)).toBe(keys.length);
      expect(await cache.getMany(space, keys.slice(0, 50))).toEqual(keys.slice(0, 50).map(() => null));
      expect(await cache.sampleKeys(space, 10)).toEqual([]);
      expect((await cache.get(other, "k:1/é*?["))?.value).toBe('"kept"');
      // emptied, it takes any version again
      expect(await cache.setIfNewer(space, keys[3]!, value(1, '"again"'), TTL)).toBe(true);
      expect(await cache.deleteKeyspace(ks("never-used"))).toBe(0);
    });

    it("sampleKeys returns distinct keys of that keyspace only, at most n", async () => {
      const space = ks("sample");
      const other = ks("sample-other");
      const keys = Array.from({ length: 60 }, (_, i) => `key:${i}/é 😀`);
      for (const [i, key] of keys.entries()) await cache.setIfNewer(space, key, value(i + 1, String(i)), TTL);
      for (let i = 0; i < 30; i++) await cache.setIfNewer(other, `other-${i}`, value(1, "1"), TTL);

      const some = await cache.sampleKeys(space, 10);
      expect(some.length).toBeGreaterThan(0);
      expect(some.length).toBeLessThanOrEqual(10);
      expect(new Set(some).size).toBe(some.length);
      for (const k of some) expect(keys).toContain(k);

      const all = await cache.sampleKeys(space, 1000);
      expect([...all].sort()).toEqual([...keys].sort());
      expect(await cache.sampleKeys(ks("empty"), 10)).toEqual([]);
      expect(await cache.sampleKeys(space, 0)).toEqual([]);
    });

    it("keeps keyspaces apart", async () => {
      const a = ks("iso-a");
      const b = ks("iso-b");
      await cache.setIfNewer(a, "same", value(10, '"in a"'), TTL);
      expect(await cache.get(b, "same")).toBeNull();
      expect(await cache.setIfNewer(b, "same", value(1, '"in b"'), TTL)).toBe(true);
      expect((await cache.get(a, "same"))?.value).toBe('"in a"');
      expect((await cache.get(b, "same"))?.value).toBe('"in b"');
      await cache.delete(b, "same");
      expect((await cache.get(a, "same"))?.value).toBe('"in a"');
      expect(await cache.sampleKeys(b, 10)).toEqual([]);
    });

    it("ends at the highest version when versions 1..200 race in random order", async () => {
      const space = ks("race");
      const versions = shuffled(Array.from({ length: 200 }, (_, i) => i + 1));
      const results = await Promise.all(
        versions.map((v) => cache.setIfNewer(space, "hot", value(v, JSON.stringify({ v })), TTL)),
      );
      expect(results[versions.indexOf(200)]).toBe(true);
      expect(await cache.get(space, "hot")).toMatchObject({
        kind: "value",
        version: 200,
        value: '{"v":200}',
      });
    });

    it("setManyIfNewer takes or refuses each entry by the setIfNewer rule, answering in the order given", async () => {
      const space = ks("many");
      await cache.setIfNewer(space, "newer-cached", value(10, '"ten"'), TTL);
      await cache.setIfNewer(space, "tombstoned", tombstone(5), TTL);
      await cache.setIfNewer(space, "older-cached", value(1, '"one"'), TTL);
      const taken = await cache.setManyIfNewer(space, [
        { key: "fresh", entry: value(3, '"fresh"'), ttlMs: TTL },
        { key: "newer-cached", entry: value(9, '"nine"'), ttlMs: TTL },
        { key: "tombstoned", entry: value(5, '"five"'), ttlMs: TTL },
        { key: "older-cached", entry: tombstone(2), ttlMs: TTL },
        // two entries of one key: as if set one after the other
        { key: "twice", entry: tombstone(7), ttlMs: TTL },
        { key: "twice", entry: value(6, '"six"'), ttlMs: TTL },
      ]);
      expect(taken).toEqual([true, false, true, true, true, false]);
      expect(
        await cache.getMany(space, ["fresh", "newer-cached", "tombstoned", "older-cached", "twice"]),
      ).toEqual([
        expect.objectContaining({ kind: "value", version: 3, value: '"fresh"' }),
        expect.objectContaining({ kind: "value", version: 10, value: '"ten"' }),
        expect.objectContaining({ kind: "value", version: 5, value: '"five"' }),
        expect.objectContaining({ kind: "tombstone", version: 2 }),
        expect.objectContaining({ kind: "tombstone", version: 7 }),
      ]);
      expect(await cache.setManyIfNewer(space, [])).toEqual([]);
    });

    it("setManyIfNewer gives each entry its own TTL", async () => {
      const space = ks("many-ttl");
      await cache.setManyIfNewer(space, [
        { key: "short", entry: value(1, '"s"'), ttlMs: 150 },
        { key: "long", entry: value(1, '"l"'), ttlMs: TTL },
      ]);
      await new Promise((r) => setTimeout(r, 400));
      expect(await cache.get(space, "short")).toBeNull();
      expect((await cache.get(space, "long"))?.value).toBe('"l"');
    });
  });
}
