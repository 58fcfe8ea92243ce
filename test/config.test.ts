import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeConfigError, loadConfig, parseConfig } from "../src/config/load.js";
import { parseDuration, parseSize } from "../src/config/units.js";
import { ConfigError } from "../src/errors.js";

const FILE = "test-config.yaml";

/** Parses `text` expecting a ConfigError at `line` / `path` whose message holds every string of `says`. */
function expectError(text: string, where: { line: number; path: string }, says: string[], env = {}): string {
  let caught: unknown;
  try {
    parseConfig(text, FILE, env);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const e = caught as ConfigError;
  expect({ file: e.file, line: e.line, path: e.path }).toEqual({ file: FILE, ...where });
  expect(e.message).toContain(`${FILE}:${where.line}: ${where.path || "(root)"}: `);
  for (const s of says) expect(e.message).toContain(s);
  return e.message;
}

function ks(body: string, preamble = ""): string {
  return `${preamble}keyspaces:\n  users:\n${body}`;
}

describe("defaults", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sidecache-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a file with only keyspaces: runs on the embedded defaults", async () => {
    const file = join(dir, "only-keyspaces.yaml");
    await writeFile(file, "keyspaces:\n");
    const c = await loadConfig(file, {});
    expect(c.file).toBe(file);
    expect(c.server).toEqual({
      host: "127.0.0.1",
      port: 7070,
      maxValue: 1024 * 1024,
      maxBatch: 1000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 10_000,
      shutdownTimeoutMs: 30_000,
      requestDeadlineMs: 10_000,
    });
    const breaker = { failures: 5, cooldownMs: 2000 };
    expect(c.cache).toEqual({
      url: "memory:",
      prefix: "sidecache",
      maxEntries: 100_000,
      timeoutMs: 1000,
      trustLeaseMs: 1500,
      breaker,
    });
    expect(c.store).toEqual({
      url: "pglite:./data/pg",
      poolSize: 10,
      timeoutMs: 5000,
      breaker,
      pooler: "none",
    });
    expect(c.auth).toBeUndefined();
    expect(c.alerts).toEqual({ webhooks: [] });
    expect(c.checker).toEqual({
      schedule: "*/1 * * * *",
      sample: 100,
      repair: "invalidate",
      alertRatio: 0.01,
      enabled: true,
    });
    expect(c.log).toEqual({ level: "info", access: false });
    expect(c.keyspaces.size).toBe(0);
  });

  it("a keyspace with no settings gets the keyspace defaults, its table named after it", () => {
    const c = parseConfig("keyspaces:\n  users:\n", FILE, {});
    expect(c.keyspaces.get("users")).toEqual({
      name: "users",
      strategy: "cache-aside",
      consistency: "strict",
      table: "users",
      mapped: undefined,
      ttlMs: 3_600_000,
      negativeTtlMs: 30_000,
      staleGraceMs: 300_000,
      refreshAheadMs: 720_000,
      ttlJitter: 0.1,
      writeBehind: { flushIntervalMs: 1000, batchSize: 500, maxQueue: 100_000, maxAttempts: 5 },
      checker: c.checker,
      fillLeaseMs: 2_000,
      near: undefined,
      warm: undefined,
    });
  });

  it("refresh_ahead defaults to 20% of the keyspace's ttl", () => {
    const c = parseConfig(ks("    ttl: 10m\n"), FILE, {});
    expect(c.keyspaces.get("users")?.refreshAheadMs).toBe(120_000);
  });

  it("a keyspace checker: merges over the global checker:", () => {
    const c = parseConfig(
      "checker:\n  sample: 7\n  repair: report\nkeyspaces:\n  users:\n    checker:\n      repair: rewrite\n  other:\n",
      FILE,
      {},
    );
    expect(c.keyspaces.get("users")?.checker).toEqual({ ...c.checker, sample: 7, repair: "rewrite" });
    expect(c.keyspaces.get("other")?.checker).toEqual({ ...c.checker, sample: 7, repair: "report" });
  });

  it("a missing file is a ConfigError naming it", async () => {
    const file = join(dir, "absent.yaml");
    await expect(loadConfig(file, {})).rejects.toThrow(`${file}: (root): can not be read: no such file`);
  });
});

describe("environment variables", () => {
  const text = [
    "server:",
    "  host: ${HOST}",
    "  port: ${PORT:-7171}",
    "cache:",
    "  prefix: app-${STAGE:-dev}-cache",
    "store:",
    '  url: "postgres://app:${PGPASS}@db:5432/app"',
    "keyspaces:",
  ].join("\n");

  it("${VAR} takes the variable, ${VAR:-default} the default when unset or empty", () => {
    const c = parseConfig(text, FILE, { HOST: "0.0.0.0", PGPASS: "s3cret", STAGE: "" });
    expect(c.server.host).toBe("0.0.0.0");
    expect(c.server.port).toBe(7171); // an unquoted substitution is read as YAML would: a number
    expect(c.cache.prefix).toBe("app-dev-cache");
    expect(c.store.url).toBe("postgres://app:s3cret@db:5432/app");
  });

  it("${VAR:-default} takes the variable when it is set", () => {
    const c = parseConfig(text, FILE, { HOST: "::1", PGPASS: "x", PORT: "9000", STAGE: "prod" });
    expect(c.server.port).toBe(9000);
    expect(c.cache.prefix).toBe("app-prod-cache");
  });

  it("an unset ${VAR} without default names the variable, the line and the field", () => {
    expectError(text, { line: 2, path: "server.host" }, ["HOST", "not set", "${HOST:-default}"], {
      PGPASS: "x",
    });
  });

  it("a malformed reference is refused", () => {
    expectError(ks("    table: ${TABLE\n"), { line: 3, path: "keyspaces.users.table" }, ["${NAME:-default}"]);
  });
});

describe("units", () => {
  it("reads every duration form", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("5s")).toBe(5000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("1m")).toBe(60_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("1d")).toBe(86_400_000);
    expect(parseDuration("0s")).toBe(0);
    expect(parseDuration("5")).toBeUndefined();
    expect(parseDuration("5 sec")).toBeUndefined();
  });

  it("reads every size form, k = 1024", () => {
    expect(parseSize("100b")).toBe(100);
    expect(parseSize("512kb")).toBe(512 * 1024);
    expect(parseSize("1mb")).toBe(1024 * 1024);
    expect(parseSize("1gb")).toBe(1024 ** 3);
    expect(parseSize("2MB")).toBe(2 * 1024 * 1024);
    expect(parseSize("1m")).toBeUndefined();
  });

  it("applies them to the configuration", () => {
    const c = parseConfig(
      "server:\n  max_value: 512kb\n  request_timeout: 1m\n  headers_timeout: 250ms\n" +
        ks("    ttl: 1d\n    negative_ttl: 5s\n    stale_grace: 1h\n    refresh_ahead: 30m\n"),
      FILE,
      {},
    );
    expect(c.server.maxValue).toBe(524_288);
    expect(c.server.requestTimeoutMs).toBe(60_000);
    expect(c.server.headersTimeoutMs).toBe(250);
    const users = c.keyspaces.get("users");
    expect([users?.ttlMs, users?.negativeTtlMs, users?.staleGraceMs, users?.refreshAheadMs]).toEqual([
      86_400_000, 5000, 3_600_000, 1_800_000,
    ]);
  });
});

describe("errors name the file, the line, the path and what is allowed", () => {
  it("unknown field", () => {
    expectError(ks("    strategy: cache-aside\n    tll: 1h\n"), { line: 4, path: "keyspaces.users.tll" }, [
      "not a known field",
      "strategy, consistency, table",
      "ttl",
      "write_behind",
    ]);
    expectError("server:\n  prot: 1\nkeyspaces:\n", { line: 2, path: "server.prot" }, [
      "host, port, max_value",
    ]);
  });

  it("duplicate key", () => {
    expectError(ks("    ttl: 1h\n    ttl: 2h\n"), { line: 4, path: "keyspaces.users.ttl" }, [
      "given twice",
      "line 3",
    ]);
  });

  it("bad strategy", () => {
    expectError(ks("    strategy: write-thru\n"), { line: 3, path: "keyspaces.users.strategy" }, [
      "cache-aside, read-through, write-through, write-around, write-behind",
      '"write-thru"',
    ]);
  });

  it("bad duration and plain number", () => {
    expectError(ks("    ttl: 5 minutes\n"), { line: 3, path: "keyspaces.users.ttl" }, [
      "ms, s, m, h or d",
      "250ms",
    ]);
    expectError(ks("    ttl: 5000\n"), { line: 3, path: "keyspaces.users.ttl" }, [
      "plain number",
      "write it with a unit",
      "5000ms or 5000s",
    ]);
  });

  it("bad size", () => {
    expectError("server:\n  max_value: 1000\nkeyspaces:\n", { line: 2, path: "server.max_value" }, [
      "plain number",
      "512kb",
    ]);
  });

  it("bad identifier", () => {
    expectError(ks("    table: users; drop table x\n"), { line: 3, path: "keyspaces.users.table" }, [
      "SQL identifier",
      "letters, digits or _",
    ]);
    expectError(
      ks('    table: users\n    key_column: id\n    columns: [id, "na me"]\n    version_column: version\n'),
      { line: 5, path: "keyspaces.users.columns[1]" },
      ["SQL identifier"],
    );
    expectError("keyspaces:\n  us.ers:\n", { line: 2, path: 'keyspaces["us.ers"]' }, [
      "letters, digits, _ or -",
    ]);
  });

  it("a schema-qualified table is refused, saying how to reach another schema", () => {
    expectError(ks("    table: app.users\n"), { line: 3, path: "keyspaces.users.table" }, ["search_path"]);
  });

  it("mapped table missing a field, key not in columns, version in columns", () => {
    expectError(
      ks("    table: users\n    key_column: id\n    columns: [id, name]\n"),
      { line: 2, path: "keyspaces.users.version_column" },
      ["key_column, columns and version_column together"],
    );
    expectError(
      ks("    key_column: uid\n    columns: [id, name]\n    version_column: version\n"),
      { line: 3, path: "keyspaces.users.key_column" },
      ["one of the columns (id, name)"],
    );
    expectError(
      ks("    key_column: id\n    columns: [id, version]\n    version_column: version\n"),
      { line: 5, path: "keyspaces.users.version_column" },
      ["must not be one of the columns"],
    );
    const c = parseConfig(
      ks("    key_column: id\n    columns: [id, name]\n    version_column: v\n"),
      FILE,
      {},
    );
    expect(c.keyspaces.get("users")?.mapped).toEqual({
      keyColumn: "id",
      columns: ["id", "name"],
      versionColumn: "v",
    });
  });

  it("write-behind on memory:", () => {
    expectError(ks("    strategy: write-behind\n"), { line: 3, path: "keyspaces.users.strategy" }, [
      "write-behind needs a Redis cache: its queue must outlive the daemon",
      "redis://",
    ]);
    const c = parseConfig(
      ks("    strategy: write-behind\n", "cache:\n  url: redis://127.0.0.1:6379\n"),
      FILE,
      {},
    );
    expect(c.keyspaces.get("users")?.strategy).toBe("write-behind");
  });

  it("bad cron", () => {
    expectError('checker:\n  schedule: "* * *"\nkeyspaces:\n', { line: 2, path: "checker.schedule" }, [
      "3 fields",
      "5 fields",
      "seconds",
    ]);
    expectError(
      ks('    checker:\n      schedule: "99 * * * *"\n'),
      { line: 4, path: "keyspaces.users.checker.schedule" },
      ["not a valid cron schedule", '"*/1 * * * *"'],
    );
    const c = parseConfig('checker:\n  schedule: "*/30 * * * * *"\nkeyspaces:\n', FILE, {});
    expect(c.checker.schedule).toBe("*/30 * * * * *");
  });

  it("token too short, without echoing it", () => {
    const secret = "hunter2-secret";
    const message = expectError(
      `auth:\n  tokens:\n    - name: app\n      token: \${APP_TOKEN}\n      allow: { "*": read }\nkeyspaces:\n`,
      { line: 4, path: "auth.tokens[0].token" },
      ["at least 16 characters"],
      { APP_TOKEN: secret },
    );
    expect(message).not.toContain(secret);
    expect(message).not.toContain("hunter2");
  });

  it("a token that is not a string is not echoed either", () => {
    const message = expectError(
      "auth:\n  tokens:\n    - name: app\n      token: 12345678901234567890\nkeyspaces:\n",
      { line: 4, path: "auth.tokens[0].token" },
      ["at least 16 characters"],
    );
    expect(message).not.toContain("1234567890");
  });

  it("auth allow names existing keyspaces and read, write or admin", () => {
    const head = "auth:\n  tokens:\n    - name: app\n      token: abcdefghijklmnopqrstuvwxyz\n      allow:\n";
    expectError(`${head}        orders: read\n${ks("")}`, { line: 6, path: "auth.tokens[0].allow.orders" }, [
      '"*" or one of users',
    ]);
    expectError(`${head}        users: own\n${ks("")}`, { line: 6, path: "auth.tokens[0].allow.users" }, [
      "read, write, admin",
    ]);
    const c = parseConfig(`${head}        users: write\n        "*": read\n${ks("")}`, FILE, {});
    expect(c.auth).toEqual({
      tokens: [{ name: "app", token: "abcdefghijklmnopqrstuvwxyz", allow: { users: "write", "*": "read" } }],
      protectOps: false,
    });
  });

  it("consistency, repair, port, ratios and URLs", () => {
    expectError(
      ks("    strategy: write-through\n    consistency: loose\n"),
      { line: 4, path: "keyspaces.users.consistency" },
      ["strict, eventual"],
    );
    expectError(ks("    consistency: strict\n"), { line: 3, path: "keyspaces.users.consistency" }, [
      "only to write-through",
    ]);
    expectError("checker:\n  repair: fix\nkeyspaces:\n", { line: 2, path: "checker.repair" }, [
      "invalidate, rewrite, report",
    ]);
    expectError("server:\n  port: 70000\nkeyspaces:\n", { line: 2, path: "server.port" }, [
      "from 0 to 65535",
    ]);
    expectError("checker:\n  alert_ratio: 2\nkeyspaces:\n", { line: 2, path: "checker.alert_ratio" }, [
      "from 0 to 1",
    ]);
    expectError(ks("    ttl_jitter: 0.9\n"), { line: 3, path: "keyspaces.users.ttl_jitter" }, [
      "from 0 to 0.5",
    ]);
    expectError(ks("    checker: { sample: 0 }\n"), { line: 3, path: "keyspaces.users.checker.sample" }, [
      "at least 1",
    ]);
    const pwd = expectError(
      "cache:\n  url: http://user:pa55word@host\nkeyspaces:\n",
      { line: 2, path: "cache.url" },
      ["memory:", "redis://", "rediss://"],
    );
    expect(pwd).not.toContain("pa55word");
    expectError("store:\n  url: mysql://db\nkeyspaces:\n", { line: 2, path: "store.url" }, [
      "postgres://",
      "pglite:PATH",
      "pglite:memory",
    ]);
    expectError(
      "alerts:\n  webhooks:\n    - url: ftp://x\nkeyspaces:\n",
      { line: 3, path: "alerts.webhooks[0].url" },
      ["http:// or https://"],
    );
    expectError(
      "alerts:\n  webhooks:\n    - url: http://x\n      format: slack\nkeyspaces:\n",
      { line: 4, path: "alerts.webhooks[0].format" },
      ["alertmanager, json"],
    );
  });

  it("an unquoted memory: gets a hint to quote it", () => {
    expectError("cache:\n  url: memory:\nkeyspaces:\n", { line: 2, path: "cache.url" }, [
      "not valid YAML",
      'url: "memory:"',
    ]);
  });

  it("describeConfigError gives one line for a person", () => {
    try {
      parseConfig(ks("    strategy: nope\n"), FILE, {});
    } catch (e) {
      expect(describeConfigError(e)).toBe(
        `invalid configuration: ${FILE}:3: keyspaces.users.strategy: must be one of cache-aside, read-through, write-through, write-around, write-behind; got "nope"`,
      );
    }
    expect.assertions(1);
  });
});

describe("shipped configuration files", () => {
  it("config/sidecache.yaml loads: embedded cache and store, users and profiles", async () => {
    const c = await loadConfig("config/sidecache.yaml", {});
    expect(c.cache.url).toBe("memory:");
    expect(c.store.url).toBe("pglite:./data/pg");
    expect(c.server.host).toBe("127.0.0.1");
    expect(c.server.port).toBe(7070);
    expect([...c.keyspaces.values()].map((k) => [k.name, k.strategy])).toEqual([
      ["users", "cache-aside"],
      ["profiles", "read-through"],
    ]);
  });

  it("config/example.yaml loads: Redis, PostgreSQL and every strategy", async () => {
    const c = await loadConfig("config/example.yaml", {});
    expect(c.cache.url).toBe("redis://127.0.0.1:6379");
    expect(c.store.url).toBe("postgres://postgres@127.0.0.1:5432/test");
    const strategies = [...c.keyspaces.values()].map((k) => [k.name, k.strategy, k.consistency]);
    expect(strategies).toEqual([
      ["users", "cache-aside", "strict"],
      ["catalog", "read-through", "strict"],
      ["products", "write-through", "strict"],
      ["prices", "write-through", "eventual"],
      ["audit", "write-around", "strict"],
      ["events", "write-behind", "strict"],
    ]);
    expect(c.keyspaces.get("events")?.writeBehind).toEqual({
      flushIntervalMs: 1000,
      batchSize: 500,
      maxQueue: 100_000,
      maxAttempts: 5,
    });
    expect(c.keyspaces.get("audit")?.mapped?.keyColumn).toBe("id");
    expect(c.keyspaces.get("products")?.checker.repair).toBe("rewrite");
    expect(c.alerts.webhooks).toEqual([
      { url: "http://127.0.0.1:9093/api/v2/alerts", format: "alertmanager" },
    ]);
  });
});
