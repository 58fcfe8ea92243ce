/** cache.url, cache.cluster and cache.sentinel: exactly one, each checked, errors in the usual shape. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";

const FILE = "redis.yaml";

function expectError(text: string, where: { line: number; path: string }, says: string[]): void {
  let caught: unknown;
  try {
    parseConfig(text, FILE, {});
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const e = caught as ConfigError;
  expect({ line: e.line, path: e.path }).toEqual(where);
  expect(e.message).toContain(`${FILE}:${where.line}: ${where.path}: `);
  for (const s of says) expect(e.message).toContain(s);
}

describe("cache targets", () => {
  it("a Cluster from its node URLs", () => {
    const c = parseConfig(
      "cache:\n  cluster: [redis://10.0.0.1:7000, 'rediss://u:p@10.0.0.2:7001']\n  prefix: app\nkeyspaces:\n",
      FILE,
      {},
    );
    expect(c.cache.redis).toEqual({
      kind: "cluster",
      nodes: ["redis://10.0.0.1:7000", "rediss://u:p@10.0.0.2:7001"],
    });
    expect(c.cache.prefix).toBe("app");
    // named for logs without the password
    expect(c.cache.url).toBe("redis-cluster://10.0.0.1:7000,10.0.0.2:7001");
  });

  it("a master through Sentinel", () => {
    const c = parseConfig(
      'cache:\n  sentinel: { name: mymaster, nodes: ["10.0.0.1:26379", "[::1]:26380"] }\nkeyspaces:\n',
      FILE,
      {},
    );
    expect(c.cache.redis).toEqual({
      kind: "sentinel",
      name: "mymaster",
      nodes: [
        { host: "10.0.0.1", port: 26379 },
        { host: "::1", port: 26380 },
      ],
    });
  });

  it("one server by URL, and memory: without a Redis target", () => {
    const one = parseConfig("cache:\n  url: redis://127.0.0.1:6379\nkeyspaces:\n", FILE, {});
    expect(one.cache.redis).toEqual({ kind: "url", url: "redis://127.0.0.1:6379" });
    expect(parseConfig("keyspaces:\n", FILE, {}).cache.redis).toBeUndefined();
  });

  it("refuses two targets at once, naming both", () => {
    expectError(
      "cache:\n  url: redis://127.0.0.1:6379\n  cluster: [redis://127.0.0.1:7000]\nkeyspaces:\n",
      { line: 3, path: "cache.cluster" },
      ["exactly one of url, cluster and sentinel", "url and cluster"],
    );
  });

  it("refuses an empty Cluster, a node that is not a redis:// URL, and a scalar for the list", () => {
    expectError("cache:\n  cluster: []\nkeyspaces:\n", { line: 2, path: "cache.cluster" }, [
      "at least one node",
    ]);
    expectError(
      "cache:\n  cluster: [http://10.0.0.1:7000]\nkeyspaces:\n",
      { line: 2, path: "cache.cluster[0]" },
      ["redis://HOST:PORT"],
    );
    expectError(
      "cache:\n  cluster: redis://10.0.0.1:7000\nkeyspaces:\n",
      { line: 2, path: "cache.cluster" },
      ["must be a list of node URLs"],
    );
  });

  it("refuses a Sentinel without a name, with a bad address, or with an unknown field", () => {
    expectError(
      'cache:\n  sentinel: { nodes: ["10.0.0.1:26379"] }\nkeyspaces:\n',
      { line: 2, path: "cache.sentinel.name" },
      ["is required"],
    );
    expectError(
      'cache:\n  sentinel:\n    name: m\n    nodes: ["10.0.0.1"]\nkeyspaces:\n',
      { line: 4, path: "cache.sentinel.nodes[0]" },
      ['"host:port"'],
    );
    expectError(
      "cache:\n  sentinel:\n    name: m\n    nodes: []\nkeyspaces:\n",
      { line: 4, path: "cache.sentinel.nodes" },
      ["at least one sentinel"],
    );
    expectError(
      'cache:\n  sentinel:\n    name: m\n    nodes: ["h:1"]\n    password: x\nkeyspaces:\n',
      { line: 5, path: "cache.sentinel.password" },
      ["name", "nodes"],
    );
  });

  it("write-behind and near caches take a Cluster or Sentinel as a Redis cache", () => {
    const c = parseConfig(
      "cache:\n  cluster: [redis://10.0.0.1:7000]\nkeyspaces:\n  ev: { strategy: write-behind, table: ev, near_cache: { ttl: 1s } }\n",
      FILE,
      {},
    );
    expect(c.keyspaces.get("ev")!.strategy).toBe("write-behind");
  });
});
