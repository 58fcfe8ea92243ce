/**
 * A TCP proxy in front of PostgreSQL, started by the bench. It can hold every chunk for a fixed time in
 * each direction (a slow network for real: a round trip costs twice the one-way delay), and it reads the
 * frontend side of the wire protocol to count the statements clients send (simple 'Q' and extended 'E'
 * messages), so the bench sees exactly what reaches PostgreSQL without trusting the daemon's own metrics.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface StatementCounts {
  /** every statement executed: simple queries and extended-protocol Executes */
  statements: number;
  /** statements that begin with `select` and name the table, not counting advisory-lock selects */
  selects: Map<string, number>;
  /** statements that begin with insert, update or delete (or with `with`) */
  writes: number;
  commits: number;
  /** statements by kind: begin, commit, rollback, lock (advisory), select, insert, update, delete, with, other */
  byKind: Map<string, number>;
  /** statements whose text matches a pattern given to watch(), by its name */
  watched: Map<string, number>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

export class PgProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  readonly counts: StatementCounts = {
    statements: 0,
    selects: new Map(),
    writes: 0,
    commits: 0,
    byKind: new Map(),
    watched: new Map(),
  };
  port = 0;
  private readonly watches: { name: string; pattern: RegExp }[] = [];

  constructor(
    private readonly target: { host: string; port: number },
    /** held this long in each direction */
    readonly oneWayDelayMs: number,
    /** tables whose selects are counted (names as configured, unquoted) */
    private readonly tables: string[] = [],
  ) {}

  listen(): Promise<number> {
    this.server = createServer((client) => this.accept(client));
    return new Promise((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(0, "127.0.0.1", () => {
        this.port = (this.server!.address() as { port: number }).port;
        resolve(this.port);
      });
    });
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/test`;
  }

  /** Counts, under `name`, the statements whose text matches `pattern`. */
  watch(name: string, pattern: RegExp): void {
    this.watches.push({ name, pattern });
    this.counts.watched.set(name, 0);
  }

  watched(name: string): number {
    return this.counts.watched.get(name) ?? 0;
  }

  selectsOn(table: string): number {
    return this.counts.selects.get(table) ?? 0;
  }

  snapshot(): {
    statements: number;
    writes: number;
    commits: number;
    selects: Record<string, number>;
    byKind: Record<string, number>;
    watched: Record<string, number>;
  } {
    return {
      statements: this.counts.statements,
      writes: this.counts.writes,
      commits: this.counts.commits,
      selects: Object.fromEntries(this.counts.selects),
      byKind: Object.fromEntries(this.counts.byKind),
      watched: Object.fromEntries(this.counts.watched),
    };
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const toServer = this.delayed(upstream);
    const toClient = this.delayed(client);
    const parse = this.frontendParser();
    client.on("data", (chunk: Buffer) => {
      parse(chunk);
      toServer(chunk);
    });
    upstream.on("data", (chunk: Buffer) => toClient(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  }

  /** A writer that delivers chunks to `to` in order, each oneWayDelayMs after it arrived. */
  private delayed(to: Socket): (chunk: Buffer) => void {
    const delay = this.oneWayDelayMs;
    if (delay <= 0) return (chunk) => void (to.writable && to.write(chunk));
    const queue: { at: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0]!.at <= now + 0.5) {
        const item = queue.shift()!;
        if (to.writable) to.write(item.chunk);
      }
      if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0]!.at - now));
    };
    return (chunk) => {
      queue.push({ at: performance.now() + delay, chunk });
      timer ??= setTimeout(flush, delay);
    };
  }

  /** Follows the messages a client sends and counts statements. */
  private frontendParser(): (chunk: Buffer) => void {
    let buf: Buffer = Buffer.alloc(0);
    let startup = true;
    let lastParsed = "";
    return (chunk) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        if (startup) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) startup = false;
          buf = buf.subarray(len);
          continue;
        }
        if (buf.length < 5) return;
        const type = String.fromCharCode(buf[0]!);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        const body = buf.subarray(5, 1 + len);
        if (type === "Q") {
          this.count(cstring(body, 0));
        } else if (type === "P") {
          const nameEnd = body.indexOf(0);
          lastParsed = cstring(body, nameEnd + 1);
        } else if (type === "E") {
          this.count(lastParsed);
        }
        buf = buf.subarray(1 + len);
      }
    };
  }

  private count(sql: string): void {
    const c = this.counts;
    c.statements++;
    const head = sql.trimStart().slice(0, 12).toLowerCase();
    const word = /^[a-z]+/.exec(head)?.[0] ?? "other";
    const kind = sql.includes("pg_advisory")
      ? "lock"
      : ["begin", "commit", "rollback", "select", "insert", "update", "delete", "with"].includes(word)
        ? word
        : "other";
    c.byKind.set(kind, (c.byKind.get(kind) ?? 0) + 1);
    for (const w of this.watches)
      if (w.pattern.test(sql)) c.watched.set(w.name, (c.watched.get(w.name) ?? 0) + 1);
    if (head.startsWith("commit")) c.commits++;
    else if (/^(insert|update|delete|with)\b/.test(head)) c.writes++;
    else if (head.startsWith("select") && !sql.includes("pg_advisory")) {
      for (const t of this.tables) {
        if (sql.includes(`"${t}"`)) c.selects.set(t, (c.selects.get(t) ?? 0) + 1);
      }
    }
  }
}

function cstring(b: Buffer, from: number): string {
  const end = b.indexOf(0, from);
  return b.toString("utf8", from, end < 0 ? b.length : end);
}
