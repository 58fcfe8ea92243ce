/**
 * The Redis protocol listener (server.resp): plain TCP, or TLS with the HTTP listener's certificate when
 * server.tls is set. Limits follow the HTTP listener's: max_connections, max_value per argument,
 * max_value × 16 per command, request_timeout for a command sent only in part. Closing stops accepting,
 * answers every command already read, then closes each connection; the rest is cut at the deadline.
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { ProxyContext } from "../proxy/context.js";
import { readPem } from "../proxy/server.js";
import { COMMANDS } from "./command-table.js";
import type { RespContext } from "./command.js";
import { RespConnection } from "./connection.js";
import type { ParserLimits } from "./parser.js";
import { error } from "./reply.js";

/** A command may hold this many values' worth of bytes (MSET), as an HTTP _mset body may. */
const COMMAND_BYTES_FACTOR = 16;
/** Keys and short arguments fit whatever max_value is. */
const MIN_ARGUMENT_BYTES = 64 * 1024;
/** A bulk longer than this is not skipped but refused, as Redis refuses it (proto-max-bulk-len). */
const MAX_SKIP_BYTES = 512 * 1024 * 1024;
const SWEEP_MS = 1000;

export class RespServer {
  private readonly server: Server;
  private readonly open = new Set<RespConnection>();
  /** every TCP connection, TLS handshakes not yet done included */
  private readonly sockets = new Set<Socket>();
  private readonly limits: ParserLimits;
  private readonly context: RespContext;
  private readonly sweeper: NodeJS.Timeout;
  private nextId = 0;
  private closing = false;

  constructor(private readonly proxy: ProxyContext) {
    const s = proxy.server;
    this.limits = {
      maxArgs: 2 * s.maxBatch + 8,
      maxBulk: Math.max(s.maxValue, MIN_ARGUMENT_BYTES),
      maxCommandBytes: Math.max(s.maxValue * COMMAND_BYTES_FACTOR, MIN_ARGUMENT_BYTES),
      maxInline: MIN_ARGUMENT_BYTES,
      maxSkip: MAX_SKIP_BYTES,
    };
    this.context = {
      proxy,
      commands: COMMANDS,
      startedAt: Date.now(),
      port: () => (this.server.address() as AddressInfo | null)?.port ?? 0,
      connections: () => this.open.size,
    };
    const accept = (socket: Socket) => this.accept(socket);
    if (s.tls) {
      const tls = createTlsServer({
        cert: readPem(s.tls.certFile, "certificate"),
        key: readPem(s.tls.keyFile, "key"),
      });
      tls.on("secureConnection", accept);
      tls.on("tlsClientError", (err) => proxy.log.debug({ err }, "redis protocol TLS handshake failed"));
      this.server = tls;
    } else {
      this.server = createServer(accept);
    }
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting; answers what each connection has read, then closes it; cuts the rest at the deadline. */
  async close(deadlineMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const connections = [...this.open];
    for (const conn of connections) conn.drain();
    const force = setTimeout(() => {
      for (const conn of this.open) conn.destroy();
    }, deadlineMs);
    force.unref();
    await Promise.all(connections.map((c) => c.closed));
    // What is left never became a connection (a TLS handshake under way): nothing to answer.
    for (const socket of this.sockets) socket.destroy();
    await closed;
    clearTimeout(force);
  }

  private accept(socket: Socket): void {
    if (this.closing) return void socket.destroy();
    const max = this.proxy.server.maxConnections;
    if (this.open.size >= max) {
      socket.on("error", () => socket.destroy());
      socket.end(error("OVERLOADED", `The daemon holds its limit of ${max} connections; retry shortly.`));
      return;
    }
    socket.setNoDelay(true);
    const conn = new RespConnection(socket, this.context, ++this.nextId, this.limits, this.proxy.log);
    this.open.add(conn);
    socket.once("close", () => this.open.delete(conn));
  }

  /** A command sent only in part for longer than request_timeout holds a connection: close it. */
  private sweep(): void {
    const limit = this.proxy.server.requestTimeoutMs;
    const now = Date.now();
    for (const conn of this.open) {
      if (conn.partialSince === 0 || conn.paused || now - conn.partialSince <= limit) continue;
      conn.abort(
        error("TIMEOUT", `The command was not sent in full within ${limit} ms; closing the connection.`),
      );
    }
  }
}
