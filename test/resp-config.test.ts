/** server.resp in the configuration file: off unless given; problems named by file, line and path. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";

const FILE = "resp.yaml";

function problem(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("no ConfigError");
}

describe("server.resp", () => {
  it("is off unless given; host defaults to server.host", () => {
    expect(parseConfig("keyspaces:\n", FILE).server.resp).toBeUndefined();
    expect(
      parseConfig("server:\n  host: 10.0.0.5\n  resp: { port: 6380 }\nkeyspaces:\n", FILE).server.resp,
    ).toEqual({
      host: "10.0.0.5",
      port: 6380,
    });
    expect(
      parseConfig("server:\n  resp:\n    host: 0.0.0.0\n    port: ${RESP_PORT:-6390}\nkeyspaces:\n", FILE, {})
        .server.resp,
    ).toEqual({ host: "0.0.0.0", port: 6390 });
  });

  const bad: [string, number, string, string][] = [
    ["server:\n  resp: 6380\nkeyspaces:\n", 2, "server.resp", "must be a mapping with the fields host, port"],
    [
      "server:\n  resp: { port: 70000 }\nkeyspaces:\n",
      2,
      "server.resp.port",
      "an integer from 0 to 65535; got 70000",
    ],
    ["server:\n  resp: { host: 127.0.0.1 }\nkeyspaces:\n", 2, "server.resp.port", "is required"],
    [
      "server:\n  resp:\n    prot: 6380\nkeyspaces:\n",
      3,
      "server.resp.prot",
      "not a known field; allowed fields here: host, port",
    ],
    ["server:\n  resp: { host: '', port: 6380 }\nkeyspaces:\n", 2, "server.resp.host", "must not be empty"],
    [
      "server:\n  port: 7070\n  resp:\n    port: 7070\nkeyspaces:\n",
      4,
      "server.resp.port",
      "is server.port (7070) too; the Redis protocol needs a port of its own",
    ],
  ];
  for (const [text, line, path, says] of bad) {
    it(`refuses ${JSON.stringify(text.split("\n").slice(0, -2).join(" "))}: ${FILE}:${line}: ${path}`, () => {
      const e = problem(text);
      expect(e.message).toContain(`${FILE}:${line}: ${path}: `);
      expect(e.message).toContain(says);
    });
  }
});
