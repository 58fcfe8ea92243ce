/**
 * The RESP request parser on its own, as pg-protocol tests its codec: every frame fed whole, split at every
 * byte boundary, one byte at a time and merged with the others; limits; garbage.
 */
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../src/resp/errors.js";
import { RespParser, type Frame, type ParserLimits } from "../src/resp/parser.js";
import { array, bulk, error, integer, map, nil, simple } from "../src/resp/reply.js";

const LIMITS: ParserLimits = {
  maxArgs: 16,
  maxBulk: 64,
  maxCommandBytes: 256,
  maxInline: 128,
  maxSkip: 4096,
};

const b = (s: string) => Buffer.from(s, "latin1");
const strings = (frames: Frame[]) => frames.map((f) => f.args.map((a) => a.toString("latin1")));

/** frame bytes → the arguments it must give */
const FRAMES: [string, string[][]][] = [
  ["*1\r\n$4\r\nPING\r\n", [["PING"]]],
  ["*3\r\n$3\r\nSET\r\n$7\r\nusers:a\r\n$5\r\nhello\r\n", [["SET", "users:a", "hello"]]],
  ["*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [["ECHO", ""]]],
  // a bulk may hold CR, LF and what looks like a frame
  ["*2\r\n$4\r\nECHO\r\n$11\r\n\r\n*1\r\n$1\r\nX\r\n", [["ECHO", "\r\n*1\r\n$1\r\nX"]]],
  ["*2\r\n$4\r\nECHO\r\n$4\r\n\x00\xff\x80\x01\r\n", [["ECHO", "\x00\xff\x80\x01"]]],
  // UTF-8: é is two bytes
  ["*2\r\n$3\r\nGET\r\n$9\r\nusers:\xc3\xa9t\r\n", [["GET", "users:\xc3\xa9t"]]],
  ["PING\r\n", [["PING"]]],
  ["GET users:a\n", [["GET", "users:a"]]],
  ['SET users:a "hello world"\r\n', [["SET", "users:a", "hello world"]]],
  ["SET users:a 'it\\'s'\r\n", [["SET", "users:a", "it's"]]],
  ['ECHO "a\\x41\\n\\"b"\r\n', [["ECHO", 'aA\n"b']]],
  ["  \t GET \t users:a   \r\n", [["GET", "users:a"]]],
  // empty lines and empty arrays are skipped, as Redis skips them
  ["\r\n", []],
  ["*0\r\n", []],
  ["*-1\r\n", []],
];

function parseAll(parts: Buffer[], limits = LIMITS): Frame[] {
  const parser = new RespParser(limits);
  const out: Frame[] = [];
  for (const p of parts) parser.feed(p, (f) => out.push(f));
  expect(parser.partial).toBe(false);
  return out;
}

function splits(bytes: Buffer): Buffer[][] {
  const all: Buffer[][] = [[bytes]];
  for (let i = 1; i < bytes.length; i++) all.push([bytes.subarray(0, i), bytes.subarray(i)]);
  all.push([...bytes].map((x) => Buffer.from([x])));
  return all;
}

describe("RESP parser: frames split and merged at every byte", () => {
  for (const [text, expected] of FRAMES) {
    it(`${JSON.stringify(text)} gives the same command however it is split`, () => {
      for (const parts of splits(b(text))) expect(strings(parseAll(parts))).toEqual(expected);
    });
  }

  it("every frame merged into one stream, split at every boundary and byte by byte, in order", () => {
    const stream = b(FRAMES.map(([t]) => t).join(""));
    const expected = FRAMES.flatMap(([, e]) => e);
    for (const parts of splits(stream)) expect(strings(parseAll(parts))).toEqual(expected);
  });

  it("split at every pair of boundaries (three pieces) for a pipeline of three commands", () => {
    const stream = b("*2\r\n$3\r\nGET\r\n$3\r\nu:a\r\nPING\r\n*3\r\n$3\r\nSET\r\n$3\r\nu:b\r\n$2\r\nvv\r\n");
    const expected = [["GET", "u:a"], ["PING"], ["SET", "u:b", "vv"]];
    for (let i = 1; i < stream.length; i++) {
      for (let j = i + 1; j < stream.length; j++) {
        const parts = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
        expect(strings(parseAll(parts))).toEqual(expected);
      }
    }
  });

  it("partial while a command is incomplete, not once it is", () => {
    const parser = new RespParser(LIMITS);
    const out: Frame[] = [];
    parser.feed(b("*2\r\n$3\r\nGET"), (f) => out.push(f));
    expect(parser.partial).toBe(true);
    parser.feed(b("\r\n$3\r\nu:a\r\n"), (f) => out.push(f));
    expect(parser.partial).toBe(false);
    expect(out).toHaveLength(1);
  });
});

describe("RESP parser: limits", () => {
  it("an argument past maxBulk is skipped as it streams, the command marked oversize, the next one intact", () => {
    const big = "x".repeat(100);
    const text = `*3\r\n$3\r\nSET\r\n$3\r\nu:a\r\n$100\r\n${big}\r\n*1\r\n$4\r\nPING\r\n`;
    for (const parts of splits(b(text))) {
      const frames = parseAll(parts);
      expect(frames).toHaveLength(2);
      expect(frames[0]!.oversize).toBe(100);
      expect(frames[0]!.args).toHaveLength(3);
      expect(frames[0]!.args[2]!.length).toBe(0);
      expect(strings([frames[1]!])).toEqual([["PING"]]);
      expect(frames[1]!.oversize).toBeUndefined();
    }
  });

  it("a command past maxCommandBytes in all is marked oversize", () => {
    const v = "y".repeat(60);
    const args = ["MSET", "a:1", v, "a:2", v, "a:3", v, "a:4", v, "a:5", v];
    const text = `*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join("")}`;
    const frames = parseAll([b(text)]);
    expect(frames[0]!.oversize).toBeGreaterThan(LIMITS.maxCommandBytes);
    expect(frames[0]!.args).toHaveLength(args.length);
  });

  const refused: [string, string, RegExp][] = [
    ["too many arguments", `*17\r\n`, /too many arguments/],
    ["a bulk longer than anything skipped", "*2\r\n$3\r\nGET\r\n$99999999999\r\n", /invalid bulk length/],
    ["a negative bulk length", "*2\r\n$3\r\nGET\r\n$-5\r\n", /invalid bulk length/],
    ["a null argument", "*2\r\n$3\r\nGET\r\n$-1\r\n", /null/],
    ["a multibulk length that is no number", "*abc\r\n", /invalid multibulk length/],
    ["a length with a plus sign", "*+1\r\n", /invalid multibulk length/],
    ["an argument without $", "*1\r\n:1\r\n", /expected '\$'/],
    ["an argument not ended by CRLF", "*1\r\n$3\r\nGETXY", /not followed by CRLF/],
    ["a header line without CRLF, too long", `*${"1".repeat(40)}`, /too long/],
    ["a header with LF only", "*1\n$4\r\nPING\r\n", /LF without CR/],
    ["an inline line past maxInline without a newline", "G".repeat(200), /longer than/],
    ["control bytes in an inline command", "GET \x00\x01\x02\r\n", /garbage/],
    ["unbalanced quotes", 'SET u:a "open\r\n', /unbalanced/],
    ["a closing quote glued to a word", 'SET u:a "a"b\r\n', /unbalanced/],
  ];
  for (const [what, text, message] of refused) {
    it(`refuses ${what}, split anywhere, and ignores what follows`, () => {
      for (const parts of splits(b(text + "*1\r\n$4\r\nPING\r\n"))) {
        const parser = new RespParser(LIMITS);
        const out: Frame[] = [];
        let thrown: unknown;
        for (const p of parts) {
          try {
            parser.feed(p, (f) => out.push(f));
          } catch (err) {
            thrown ??= err;
          }
        }
        expect(thrown).toBeInstanceOf(ProtocolError);
        expect((thrown as Error).message).toMatch(message);
        expect(out).toEqual([]);
      }
    });
  }
});

describe("RESP replies", () => {
  it("encodes each type, RESP2 and RESP3", () => {
    expect(simple("OK")).toBe("+OK\r\n");
    expect(error("QUEUE_FULL", "full\r\nreally")).toBe("-QUEUE_FULL full really\r\n");
    expect(integer(-3)).toBe(":-3\r\n");
    expect(bulk("é")).toBe("$2\r\né\r\n");
    expect(bulk(Buffer.from([0, 255]))).toEqual(Buffer.from("$2\r\n\x00\xff\r\n", "latin1"));
    expect(nil(2)).toBe("$-1\r\n");
    expect(nil(3)).toBe("_\r\n");
    expect(array([integer(1), bulk("a")])).toBe("*2\r\n:1\r\n$1\r\na\r\n");
    expect(map([[bulk("k"), integer(1)]], 3)).toBe("%1\r\n$1\r\nk\r\n:1\r\n");
    expect(map([[bulk("k"), integer(1)]], 2)).toBe("*2\r\n$1\r\nk\r\n:1\r\n");
    expect(array([bulk("a"), bulk(Buffer.from([1]))])).toEqual(
      Buffer.from("*2\r\n$1\r\na\r\n$1\r\n\x01\r\n"),
    );
  });
});
