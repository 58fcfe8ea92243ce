/**
 * Inline commands (`SET users:a "hello world"`), split as Redis splits them: words separated by spaces;
 * "double quotes" with \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes' with \' only. A closing quote
 * must be followed by a space or the end. Control bytes outside quotes are not text a person typed: the
 * line is refused as garbage.
 */
import { ProtocolError } from "./errors.js";

const SPACE = 0x20;
const TAB = 0x09;
const DQUOTE = 0x22;
const SQUOTE = 0x27;
const BACKSLASH = 0x5c;

const ESCAPES: Record<number, number> = {
  0x6e: 0x0a, // n
  0x72: 0x0d, // r
  0x74: 0x09, // t
  0x62: 0x08, // b
  0x61: 0x07, // a
};

export function splitInline(line: Buffer): Buffer[] {
  const args: Buffer[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && (line[i] === SPACE || line[i] === TAB)) i++;
    if (i >= n) break;
    const c = line[i]!;
    if (c === DQUOTE) i = doubleQuoted(line, i + 1, args);
    else if (c === SQUOTE) i = singleQuoted(line, i + 1, args);
    else {
      const start = i;
      while (i < n && line[i] !== SPACE && line[i] !== TAB) {
        if (isControl(line[i]!)) throw new ProtocolError("garbage: control bytes in an inline command");
        i++;
      }
      args.push(line.subarray(start, i));
    }
  }
  return args;
}

function doubleQuoted(line: Buffer, i: number, args: Buffer[]): number {
  const out: number[] = [];
  for (; i < line.length; i++) {
    const c = line[i]!;
    if (c === DQUOTE) return closeQuote(line, i, out, args);
    if (c !== BACKSLASH || i + 1 >= line.length) {
      out.push(c);
      continue;
    }
    const e = line[i + 1]!;
    if (e === 0x78 && i + 3 < line.length && isHex(line[i + 2]!) && isHex(line[i + 3]!)) {
      out.push(parseInt(String.fromCharCode(line[i + 2]!, line[i + 3]!), 16));
      i += 3;
    } else {
      out.push(ESCAPES[e] ?? e);
      i++;
    }
  }
  throw new ProtocolError("unbalanced quotes in an inline command");
}

function singleQuoted(line: Buffer, i: number, args: Buffer[]): number {
  const out: number[] = [];
  for (; i < line.length; i++) {
    const c = line[i]!;
    if (c === SQUOTE) return closeQuote(line, i, out, args);
    if (c === BACKSLASH && line[i + 1] === SQUOTE) {
      out.push(SQUOTE);
      i++;
    } else out.push(c);
  }
  throw new ProtocolError("unbalanced quotes in an inline command");
}

function closeQuote(line: Buffer, i: number, out: number[], args: Buffer[]): number {
  const next = line[i + 1];
  if (next !== undefined && next !== SPACE && next !== TAB) {
    throw new ProtocolError("unbalanced quotes in an inline command: a closing quote must end the word");
  }
  args.push(Buffer.from(out));
  return i + 1;
}

function isControl(c: number): boolean {
  return (c < 0x20 && c !== TAB) || c === 0x7f;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}
