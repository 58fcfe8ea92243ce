/**
 * The clients people use, pointed at sidecache unchanged: redis-cli (commands, --pipe, -3, --tls), ioredis
 * and redis-py (Debian's python3-redis), with AUTH on the same tokens and permissions as HTTP, and TLS with
 * the HTTP listener's certificate.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import type { Daemon } from "../src/daemon.js";
import { PG_URL, REDIS_URL, startDaemon, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { cleanupShared, encodeCommand, plain, RawResp, RespErrorReply } from "./support/resp.js";
import { selfSignedCert } from "./support/tls.js";

const run = promisify(execFile);
const tag = uniqueTag();
const tables = ["aside", "wts", "wb"].map((k) => `${tag}_${k}`);
const dir = mkdtempSync(join(tmpdir(), "sidecache-resp-"));
const APP = `app-token-${tag}-0123456789`;
const READER = `reader-token-${tag}-0123456789`;
const SCOPED = `scoped-token-${tag}-0123456789`;
let daemon: Daemon;
let tlsDaemon: Daemon;
let ca: Buffer;

const keyspaces = `
keyspaces:
  aside: { strategy: cache-aside, table: ${tag}_aside }
  wts: { strategy: write-through, table: ${tag}_wts }
  wb: { strategy: write-behind, table: ${tag}_wb, write_behind: { flush_interval: 100ms } }
`;
const authYaml = (tokens: string) => `
server: { resp: { port: 0 } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
auth:
  tokens:
${tokens}
${keyspaces}`;
const TOKENS = `    - { name: app, token: ${APP}, allow: { "*": write } }
    - { name: reader, token: ${READER}, allow: { "*": read } }
    - { name: scoped, token: ${SCOPED}, allow: { aside: write } }`;

beforeAll(async () => {
  ca = (await selfSignedCert(dir)).cert;
  daemon = await startDaemon(authYaml(TOKENS));
  tlsDaemon = await startDaemon(`
server: { resp: { port: 0 }, tls: { cert: ${join(dir, "cert.pem")}, key: ${join(dir, "key.pem")} } }
cache: { url: ${REDIS_URL}, prefix: ${tag} }
store: { url: ${PG_URL} }
checker: { enabled: false }
${keyspaces}`);
});

afterAll(async () => {
  await daemon?.stop();
  await tlsDaemon?.stop();
  await cleanupShared(tag, tables);
  rmSync(dir, { recursive: true, force: true });
});

/** redis-cli with these arguments; stdout (errors included: redis-cli prints them there). */
async function cli(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("redis-cli", args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("error", reject);
    child.on("close", () => resolve(out));
    child.stdin.end(input ?? "");
  });
}

describe("AUTH: the tokens and permissions of HTTP", () => {
  it("every command but AUTH, HELLO and QUIT answers NOAUTH until AUTH; a wrong token is WRONGPASS", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      for (const cmd of [["PING"], ["GET", "aside:a"], ["SET", "aside:a", "1"], ["INFO"], ["CLIENT", "ID"]]) {
        expect(((await c.one(...cmd)) as RespErrorReply).message).toBe("NOAUTH Authentication required.");
      }
      expect(((await c.one("HELLO", "3")) as RespErrorReply).code).toBe("NOAUTH");
      expect(((await c.one("AUTH", "not-a-token")) as RespErrorReply).message).toBe(
        "WRONGPASS The token is not valid.",
      );
      expect(((await c.one("AUTH", "someone", APP)) as RespErrorReply).code).toBe("WRONGPASS");
      expect(((await c.one("GET", "aside:a")) as RespErrorReply).code).toBe("NOAUTH");
      expect(plain(await c.one("AUTH", "app", APP))).toBe("OK");
      expect(plain(await c.one("SET", "aside:a", "1"))).toBe("OK");
      expect(plain(await c.one("AUTH", "default", READER))).toBe("OK");
      expect(((await c.one("SET", "aside:a", "2")) as RespErrorReply).message).toBe(
        'FORBIDDEN Token "reader" may not write keyspace "aside".',
      );
      expect(plain(await c.one("GET", "aside:a"))).toBe("1");
    } finally {
      c.end();
    }
  });

  it("HELLO 3 AUTH authenticates and switches in one step; a token scoped to one keyspace is FORBIDDEN elsewhere", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      expect(plain(await c.one("HELLO", "3", "AUTH", "scoped", SCOPED, "SETNAME", "svc"))).toMatchObject({
        proto: 3,
      });
      expect(plain(await c.one("SET", "aside:s", "ok"))).toBe("OK");
      expect(((await c.one("GET", "wts:s")) as RespErrorReply).message).toBe(
        'FORBIDDEN Token "scoped" may not read keyspace "wts".',
      );
      expect(((await c.one("MGET", "aside:s", "wts:s")) as RespErrorReply).code).toBe("FORBIDDEN");
      expect(((await c.one("DEL", "aside:s", "wb:s")) as RespErrorReply).code).toBe("FORBIDDEN");
      expect(plain(await c.one("GET", "aside:s"))).toBe("ok"); // nothing was deleted
    } finally {
      c.end();
    }
    const m = (await call(daemon.url, "GET", "/metrics")).text;
    expect(m).toMatch(
      /sidecache_requests_total\{keyspace="wts",op="get",status="403",protocol="resp"\} [1-9]/,
    );
  });

  it("a reload that removes a token ends its sessions' access at their next command", async () => {
    const c = await RawResp.connect(daemon.respPort!);
    try {
      expect(plain(await c.one("AUTH", READER))).toBe("OK");
      expect(plain(await c.one("GET", "aside:a"))).toBe("1");
      const next = parseConfig(
        authYaml(
          TOKENS.split("\n")
            .filter((l) => !l.includes("reader"))
            .join("\n"),
        ),
        "r.yaml",
      );
      await daemon.reload(next);
      expect(((await c.one("GET", "aside:a")) as RespErrorReply).code).toBe("NOAUTH");
      await daemon.reload(parseConfig(authYaml(TOKENS), "r.yaml"));
    } finally {
      c.end();
    }
  });
});

describe("redis-cli", () => {
  const base = () => ["-h", "127.0.0.1", "-p", String(daemon.respPort), "--no-auth-warning", "-a", APP];

  it("runs every command and prints what it prints against Redis", async () => {
    const r = async (...args: string[]) => (await cli([...base(), ...args])).trim();
    expect(await r("PING")).toBe("PONG");
    expect(await r("SET", "wts:cli", "hello world")).toBe("OK");
    expect(await r("GET", "wts:cli")).toBe("hello world");
    expect(await r("SET", "wts:cli", "x", "NX")).toBe("");
    expect(await r("MSET", "wts:m1", "1", "wts:m2", "2")).toBe("OK");
    expect(await r("MGET", "wts:m1", "wts:m2", "wts:none")).toBe("1\n2"); // and an empty line for the nil
    expect(await r("EXISTS", "wts:m1", "wts:none")).toBe("1");
    expect(await r("DEL", "wts:m1", "wts:m2", "wts:none")).toBe("2");
    expect(await r("GET", "nope:x")).toBe('UNKNOWN_KEYSPACE No keyspace named "nope" is configured.');
    expect(await r("INFO", "persistence")).toContain("loading:0");
    expect(await r("COMMAND", "COUNT")).toBe("16");
    expect(await r("CLIENT", "ID")).toMatch(/^\d+$/);
    expect(await r("HSET", "h", "f", "v")).toMatch(/^ERR unknown command 'HSET'/);
    // without the token
    expect((await cli(["-p", String(daemon.respPort), "GET", "wts:cli"])).trim()).toBe(
      "NOAUTH Authentication required.",
    );
  });

  it("-3 speaks RESP3 (HELLO 3 at connect)", async () => {
    const out = await cli([...base(), "-3", "HELLO", "3"]);
    expect(out).toMatch(/proto\s*\n?3/);
    expect((await cli([...base(), "-3", "GET", "wts:none"])).trim()).toBe("");
    expect((await cli([...base(), "-3", "GET", "wts:cli"])).trim()).toBe("hello world");
  });

  it("--pipe: 10,000 commands of raw protocol, every reply counted, no error", async () => {
    const n = 10_000;
    const cmds: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      if (i % 5 === 0) cmds.push(encodeCommand(["SET", `wb:pipe${i % 500}`, `v${i}`]));
      else cmds.push(encodeCommand(["GET", `aside:pipe${i % 100}`]));
    }
    const out = await cli([...base(), "--pipe"], Buffer.concat(cmds).toString("latin1"));
    expect(out).toContain(`errors: 0, replies: ${n}`);
    expect((await cli([...base(), "GET", "wb:pipe495"])).trim()).toBe(`v${n - 5}`);
  });

  it("--tls against the TLS listener, with the HTTP listener's certificate", async () => {
    const args = ["--tls", "--cacert", join(dir, "cert.pem"), "--sni", "localhost", "-h", "127.0.0.1"];
    const r = async (...a: string[]) => (await cli([...args, "-p", String(tlsDaemon.respPort), ...a])).trim();
    expect(await r("SET", "aside:tls", "secret")).toBe("OK");
    expect(await r("GET", "aside:tls")).toBe("secret");
    // a plain client gets nothing it can read from a TLS port
    const plainOut = await cli(["-h", "127.0.0.1", "-p", String(tlsDaemon.respPort), "PING"]);
    expect(plainOut).not.toContain("PONG");
  });
});

describe("ioredis", () => {
  it("connects with a password, with user and password, and over TLS; a wrong password fails to connect", async () => {
    const withPass = new Redis({
      port: daemon.respPort!,
      password: APP,
      connectionName: "io",
      lazyConnect: true,
    });
    const withUser = new Redis({
      port: daemon.respPort!,
      username: "reader",
      password: READER,
      lazyConnect: true,
    });
    const tls = new Redis({
      port: tlsDaemon.respPort!,
      tls: { ca, servername: "localhost" },
      lazyConnect: true,
    });
    try {
      await withPass.connect();
      await withUser.connect();
      await tls.connect();
      expect(await withPass.client("GETNAME")).toBe("io");
      expect(await withPass.set("aside:io", "1")).toBe("OK");
      expect(await withUser.get("aside:io")).toBe("1");
      await expect(withUser.set("aside:io", "2")).rejects.toThrow(/^FORBIDDEN/);
      expect(await tls.set("wb:io", "over tls")).toBe("OK");
      expect(await tls.get("wb:io")).toBe("over tls");
    } finally {
      withPass.disconnect();
      withUser.disconnect();
      tls.disconnect();
    }
    const wrong = new Redis({
      port: daemon.respPort!,
      password: "wrong-wrong-wrong",
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    const errors: string[] = [];
    wrong.on("error", (e: Error) => errors.push(e.message));
    await expect(wrong.connect()).rejects.toThrow();
    expect(errors.join("\n")).toMatch(/WRONGPASS The token is not valid/);
    wrong.disconnect();
  });
});

describe("redis-py (python3-redis)", () => {
  it("connects with a password and a client name; commands, a pipeline and errors as with Redis", async () => {
    const script = `
import json, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), password=sys.argv[2], client_name="py", decode_responses=True)
out = {}
out["ping"] = r.ping()
out["set"] = r.set("wts:py", "from python é")
out["get"] = r.get("wts:py")
out["nx"] = r.set("wts:py", "x", nx=True)
out["get_old"] = r.set("wts:py", "newer", get=True)
out["mset"] = r.mset({"aside:p1": "1", "aside:p2": '{"k": [1, 2]}'})
out["mget"] = r.mget(["aside:p1", "aside:p2", "aside:none"])
out["exists"] = r.exists("aside:p1", "aside:none")
out["delete"] = r.delete("aside:p1", "aside:none")
out["name"] = r.client_getname()
p = r.pipeline(transaction=False)
for i in range(300):
    p.set("wb:pp%d" % (i % 30), "v%d" % i)
    p.get("wb:pp%d" % (i % 30))
res = p.execute()
out["pipeline_ok"] = all(res[2 * i] is True and res[2 * i + 1] == "v%d" % i for i in range(300))
errors = {}
for name, f in [("unknown_keyspace", lambda: r.get("nope:x")), ("ex", lambda: r.set("wts:py", "v", ex=10)),
                ("unknown_command", lambda: r.hset("wts:h", "f", "v"))]:
    try:
        f()
        errors[name] = "no error"
    except redis.exceptions.ResponseError as e:
        errors[name] = str(e)
out["errors"] = errors
try:
    redis.Redis(host="127.0.0.1", port=int(sys.argv[1])).get("wts:py")
    out["noauth"] = "no error"
except redis.exceptions.AuthenticationError as e:
    out["noauth"] = "AuthenticationError: " + str(e)
print(json.dumps(out))
`;
    const { stdout } = await run("/usr/bin/python3", ["-c", script, String(daemon.respPort), APP]);
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      ping: true,
      set: true,
      get: "from python é",
      nx: null,
      get_old: "from python é",
      mset: true,
      mget: ["1", '{"k": [1, 2]}', null],
      exists: 1,
      delete: 1,
      name: "py",
      pipeline_ok: true,
      noauth: "AuthenticationError: Authentication required.",
    });
    const errors = out.errors as Record<string, string>;
    expect(errors.unknown_keyspace).toMatch(/^UNKNOWN_KEYSPACE No keyspace named "nope"/);
    expect(errors.ex).toMatch(/^INVALID_REQUEST SET \.\.\. EX is refused/);
    // redis-py drops the "ERR " of generic errors, as it does with Redis
    expect(errors.unknown_command).toMatch(/^unknown command 'HSET'/);
  });
});
