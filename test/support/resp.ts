/**
 * A raw RESP client for tests: sends bytes exactly as given (split, garbage, hostile frames) and decodes
 * replies, RESP2 and RESP3, so a test sees precisely what the daemon wrote.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import pg from "pg";
import { Redis } from "ioredis";
import { PG_URL, REDIS_URL } from "./daemon.js";

export class RespErrorReply {
  constructor(readonly message: string) {}
  get code(): string {
    return this.message.split(" ")[0]!;
  }
}

export type RespValue =
  string | number | null | Buffer | RespErrorReply | RespValue[] | { map: [RespValue, RespValue][] };

/** Decodes one reply from buf at pos: [value, next position], or undefined when it is not all there. */
export function decode(buf: Buffer, pos = 0): [RespValue, number] | undefined {
  const eol = buf.indexOf("\r\n", pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos]!);
  const line = buf.toString("utf8", pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+":
      return [line, next];
    case "-":
      return [new RespErrorReply(line), next];
    case ":":
      return [Number(line), next];
    case "_":
      return [null, next];
    case "$": {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return undefined;
      return [buf.subarray(next, next + n), next + n + 2];
    }
    case "*":
    case "%": {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: RespValue[] = [];
      let p = next;
      for (let i = 0; i < (type === "%" ? 2 * n : n); i++) {
        const r = decode(buf, p);
        if (!r) return undefined;
        items.push(r[0]);
        p = r[1];
      }
      if (type === "*") return [items, p];
      const entries: [RespValue, RespValue][] = [];
      for (let i = 0; i < items.length; i += 2) entries.push([items[i]!, items[i + 1]!]);
      return [{ map: entries }, p];
    }
    default:
      throw new Error(`unknown reply type ${JSON.stringify(type)} in ${JSON.stringify(buf.toString())}`);
  }
}

/** Bulk strings as UTF-8 text, maps as objects: easy to compare. */
export function plain(v: RespValue): unknown {
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object" && "map" in v) {
    return Object.fromEntries(v.map.map(([k, val]) => [String(plain(k)), plain(val)]));
  }
  return v;
}

export class RawResp {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly ended: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.wake();
    });
    socket.on("error", () => {});
    this.ended = new Promise((resolve) =>
      socket.once("close", () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static connect(port: number, tls?: { ca: Buffer }): Promise<RawResp> {
    return new Promise((resolve, reject) => {
      const socket = tls
        ? tlsConnect({ port, host: "127.0.0.1", ca: tls.ca, servername: "localhost" })
        : netConnect({ port, host: "127.0.0.1" });
      socket.once(tls ? "secureConnect" : "connect", () => resolve(new RawResp(socket)));
      socket.once("error", reject);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
  }

  /** Sends a command as a RESP array of bulk strings. */
  command(...args: (string | Buffer)[]): void {
    this.send(encodeCommand(args));
  }

  /** The next n replies; fails if the connection closes first or they take longer than ms. */
  async read(n = 1, ms = 10_000): Promise<RespValue[]> {
    const out: RespValue[] = [];
    const deadline = Date.now() + ms;
    while (out.length < n) {
      const r = decode(this.buf);
      if (r) {
        out.push(r[0]);
        this.buf = this.buf.subarray(r[1]);
        continue;
      }
      if (this.closed) throw new Error(`connection closed after ${out.length} of ${n} replies`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${out.length} of ${n} replies`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return out;
  }

  async one(...args: (string | Buffer)[]): Promise<RespValue> {
    this.command(...args);
    return (await this.read(1))[0]!;
  }

  /** Bytes received and not decoded (after the connection closed, what it left). */
  get rest(): Buffer {
    return this.buf;
  }

  end(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export function encodeCommand(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === "string" ? Buffer.from(a, "utf8") : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/** Drops a test's tables, tombstones and repair intents, and its keys in the shared Redis. */
export async function cleanupShared(prefix: string, tables: string[]): Promise<void> {
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  for (const t of tables) await db.query(`drop table if exists ${t}`);
  for (const t of tables) {
    await db.query(`delete from sidecache_tombstones where tbl = $1`, [t]).catch(() => {});
    await db.query(`delete from sidecache_cache_repairs where tbl = $1`, [t]).catch(() => {});
  }
  await db.end();
  const redis = new Redis(REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  redis.disconnect();
}
