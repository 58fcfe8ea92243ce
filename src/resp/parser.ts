/**
 * The request side of RESP: bytes in, commands out, nothing else (no sockets). A command is an array of
 * bulk strings (`*2\r\n$3\r\nGET\r\n$5\r\nusers:a\r\n`) or an inline line (`GET users:a\r\n`). Frames may
 * arrive split or merged at any byte; the parser keeps the unread tail and the state of the command it is
 * in. Limits: arguments per command, bytes per argument and per command; an argument past its limit is
 * skipped as it streams by and the command is handed on marked `oversize`, so it can be answered in order.
 */
import { ProtocolError } from "./errors.js";
import { splitInline } from "./inline.js";

export interface ParserLimits {
  /** most arguments in one command (the command name included) */
  maxArgs: number;
  /** largest argument kept, in bytes; larger ones are skipped and the command marked oversize */
  maxBulk: number;
  /** most bytes of arguments one command may hold; past it the command is marked oversize */
  maxCommandBytes: number;
  /** longest inline command line */
  maxInline: number;
  /** a bulk length above this is not skipped: the stream is refused (Redis' proto-max-bulk-len) */
  maxSkip: number;
}

export interface Frame {
  args: Buffer[];
  /** sent as an inline line rather than an array */
  inline?: boolean;
  /** set when an argument or the whole command passed a limit: its arguments were not kept */
  oversize?: number;
}

const enum Byte {
  Star = 0x2a, // *
  Dollar = 0x24, // $
  CR = 0x0d,
  LF = 0x0a,
  Minus = 0x2d, // -
  Zero = 0x30,
  Nine = 0x39,
}

/** A `*N` or `$N` line is at most this long: a sign, 19 digits and CRLF, with room to spare. */
const MAX_HEADER_LINE = 32;
const EMPTY = Buffer.alloc(0);

export class RespParser {
  /** unread bytes */
  private buf: Buffer = EMPTY;
  /** chunks received since the last parse, while waiting for `need` bytes (a large argument) */
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  private need = 0;
  private failed = false;

  // The array being read: how many arguments it announced, those read, the bulk in progress.
  private argc = 0;
  private args: Buffer[] = [];
  private bulk = -1;
  private bytes = 0;
  private oversize = 0;
  /** bytes still to skip of an argument past its limit (its CRLF included) */
  private skip = 0;

  constructor(private readonly limits: ParserLimits) {}

  /** Whether a command has been started but not finished (for a timeout on half-sent commands). */
  get partial(): boolean {
    return this.argc > 0 || this.buf.length > 0 || this.waitingBytes > 0 || this.skip > 0;
  }

  /** Parses what it can; calls emit per complete command. Throws ProtocolError; after that, ignores input. */
  feed(chunk: Buffer, emit: (frame: Frame) => void): void {
    if (this.failed || chunk.length === 0) return;
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length);
      this.skip -= n;
      if (this.skip > 0) return;
      chunk = chunk.subarray(n);
      this.skipped(emit);
      if (chunk.length === 0) return;
    }
    this.waiting.push(chunk);
    this.waitingBytes += chunk.length;
    if (this.buf.length + this.waitingBytes < this.need) return;
    const buf =
      this.buf.length === 0 && this.waiting.length === 1
        ? chunk
        : Buffer.concat([this.buf, ...this.waiting], this.buf.length + this.waitingBytes);
    this.waiting = [];
    this.waitingBytes = 0;
    this.need = 0;
    let pos = 0;
    try {
      for (;;) {
        const next = this.step(buf, pos, emit);
        if (next < 0) break;
        pos = next;
        if (this.skip > 0) {
          // An argument past its limit: skip what of it is here, the rest as it arrives.
          const n = Math.min(this.skip, buf.length - pos);
          this.skip -= n;
          pos += n;
          if (this.skip > 0) break;
          this.skipped(emit);
        }
      }
    } catch (err) {
      this.failed = true;
      this.buf = EMPTY;
      throw err;
    }
    this.buf = pos >= buf.length ? EMPTY : buf.subarray(pos);
  }

  /** Parses one element at pos; returns the position after it, or -1 when more bytes are needed. */
  private step(buf: Buffer, pos: number, emit: (frame: Frame) => void): number {
    if (pos >= buf.length) return -1;
    if (this.argc === 0) {
      if (buf[pos] !== Byte.Star) return this.inline(buf, pos, emit);
      const end = lineEnd(buf, pos, MAX_HEADER_LINE, "multibulk length");
      if (end < 0) return -1;
      const n = parseLength(buf, pos + 1, end, "multibulk length");
      if (n > this.limits.maxArgs) {
        throw new ProtocolError(
          `too many arguments in one command: ${n}; the limit is ${this.limits.maxArgs}`,
        );
      }
      // `*0` and `*-1` are empty commands; Redis skips them.
      if (n > 0) this.begin(n);
      return end + 2;
    }
    if (this.bulk < 0) {
      if (buf[pos] !== Byte.Dollar) {
        throw new ProtocolError(`expected '$' to begin an argument, got ${describe(buf[pos]!)}`);
      }
      const end = lineEnd(buf, pos, MAX_HEADER_LINE, "bulk length");
      if (end < 0) return -1;
      const n = parseLength(buf, pos + 1, end, "bulk length");
      if (n < 0) throw new ProtocolError("invalid bulk length: an argument may not be null");
      if (n > this.limits.maxSkip) {
        throw new ProtocolError(`invalid bulk length ${n}: larger than any argument accepted`);
      }
      this.bytes += n;
      if (n > this.limits.maxBulk || this.bytes > this.limits.maxCommandBytes) {
        this.oversize = Math.max(this.oversize, n > this.limits.maxBulk ? n : this.bytes);
        this.skip = n + 2;
        return end + 2;
      }
      this.bulk = n;
      return end + 2;
    }
    const n = this.bulk;
    if (buf.length - pos < n + 2) {
      this.need = n + 2;
      return -1;
    }
    if (buf[pos + n] !== Byte.CR || buf[pos + n + 1] !== Byte.LF) {
      throw new ProtocolError("an argument is not followed by CRLF where its length says it ends");
    }
    this.args.push(buf.subarray(pos, pos + n));
    this.endArgument(emit);
    return pos + n + 2;
  }

  private begin(argc: number): void {
    this.argc = argc;
    this.args = [];
    this.bulk = -1;
    this.bytes = 0;
    this.oversize = 0;
  }

  /** An argument skipped for its size keeps its place as an empty one. */
  private skipped(emit: (frame: Frame) => void): void {
    this.args.push(EMPTY);
    this.endArgument(emit);
  }

  /** One argument done; emits the command when it was the last. */
  private endArgument(emit: (frame: Frame) => void): void {
    this.bulk = -1;
    if (this.args.length < this.argc) return;
    const frame: Frame =
      this.oversize > 0 ? { args: this.args, oversize: this.oversize } : { args: this.args };
    this.argc = 0;
    this.args = [];
    this.oversize = 0;
    emit(frame);
  }

  private inline(buf: Buffer, pos: number, emit: (frame: Frame) => void): number {
    const lf = buf.indexOf(Byte.LF, pos);
    if (lf < 0) {
      if (buf.length - pos > this.limits.maxInline) {
        throw new ProtocolError(`an inline command is longer than ${this.limits.maxInline} bytes`);
      }
      return -1;
    }
    if (lf - pos > this.limits.maxInline) {
      throw new ProtocolError(`an inline command is longer than ${this.limits.maxInline} bytes`);
    }
    const end = lf > pos && buf[lf - 1] === Byte.CR ? lf - 1 : lf;
    const args = splitInline(buf.subarray(pos, end));
    if (args.length > this.limits.maxArgs) {
      throw new ProtocolError(`too many arguments in one command; the limit is ${this.limits.maxArgs}`);
    }
    if (args.length > 0) emit({ args, inline: true });
    return lf + 1;
  }
}

/** Index of the CR of the line starting at pos, -1 if it has not arrived; refuses lines longer than max. */
function lineEnd(buf: Buffer, pos: number, max: number, what: string): number {
  const limit = Math.min(buf.length, pos + max);
  for (let i = pos + 1; i < limit; i++) {
    if (buf[i] === Byte.CR) {
      if (i + 1 >= buf.length) return -1;
      if (buf[i + 1] !== Byte.LF) throw new ProtocolError(`invalid ${what}: CR not followed by LF`);
      return i;
    }
    if (buf[i] === Byte.LF) throw new ProtocolError(`invalid ${what}: LF without CR`);
  }
  if (buf.length >= pos + max) throw new ProtocolError(`invalid ${what}: the line is too long`);
  return -1;
}

/** A decimal integer, optionally negative, with nothing else on the line. */
function parseLength(buf: Buffer, from: number, to: number, what: string): number {
  let i = from;
  const negative = buf[i] === Byte.Minus;
  if (negative) i++;
  if (i >= to || to - i > 18) throw new ProtocolError(`invalid ${what}`);
  let n = 0;
  for (; i < to; i++) {
    const c = buf[i]!;
    if (c < Byte.Zero || c > Byte.Nine) throw new ProtocolError(`invalid ${what}`);
    n = n * 10 + (c - Byte.Zero);
  }
  return negative ? -n : n;
}

function describe(byte: number): string {
  return byte >= 0x21 && byte <= 0x7e ? `'${String.fromCharCode(byte)}'` : `byte 0x${byte.toString(16)}`;
}
