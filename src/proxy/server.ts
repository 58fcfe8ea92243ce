/**
 * The HTTP listener: node:http, or node:https when server.tls names a certificate and key. Timeouts so a
 * slow client can not hold the daemon; a connection limit answered in the protocol's error shape; a graceful close.
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { OverloadedError } from "../errors.js";
import type { ProxyContext } from "./context.js";
import { sendError } from "./respond.js";
import { createHandler } from "./router.js";

/** How often Node looks for requests past their headers or request timeout (its default is 30s). */
const TIMEOUT_CHECK_MS = 1000;

export class HttpServer {
  readonly secure: boolean;
  private readonly server: Server;
  private open = 0;
  /** connections accepted beyond max_connections: their first request is answered 503 and they close */
  private readonly overLimit = new WeakSet<Socket>();
  /** every open connection, and since when an answer it holds queued has not moved (0: nothing queued) */
  private readonly sockets = new Map<Socket, { written: number; since: number }>();
  private readonly sweep: NodeJS.Timeout;

  constructor(ctx: ProxyContext) {
    const s = ctx.server;
    const options = {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      // A bad request line or header gets a 400 from Node itself; keep the default 16 KiB header limit.
      maxHeaderSize: 16 * 1024,
    };
    const handle = createHandler(ctx);
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (!this.overLimit.has(req.socket)) return handle(req, res);
      res.setHeader("connection", "close");
      sendError(
        res,
        new OverloadedError(`The daemon holds its limit of ${s.maxConnections} connections; retry shortly.`),
      );
    };
    this.secure = s.tls !== undefined;
    this.server = s.tls
      ? (createHttpsServer(
          { ...options, cert: readPem(s.tls.certFile, "certificate"), key: readPem(s.tls.keyFile, "key") },
          handler,
        ) as unknown as Server)
      : createServer(options, handler);
    // Past the limit connections are still taken, so that they get an answer; far past it Node drops them.
    this.server.maxConnections = s.maxConnections + Math.max(16, Math.ceil(s.maxConnections / 10));
    // A client that stops reading its answer holds a socket: it is closed once its queued answer has not
    // moved for request_timeout. Looked for once a second rather than with Node's socket timeout
    // (server.timeout), which re-arms a timer on every read and write of every connection.
    this.sweep = setInterval(() => this.closeStalledReaders(s.requestTimeoutMs), TIMEOUT_CHECK_MS);
    this.sweep.unref();
    this.server.on(this.secure ? "secureConnection" : "connection", (socket: Socket) => {
      if (++this.open > s.maxConnections) this.overLimit.add(socket);
      this.sockets.set(socket, { written: 0, since: 0 });
      socket.once("close", () => {
        this.open--;
        this.sockets.delete(socket);
      });
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy();
      const status =
        err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
      const code = status === 408 ? "timeout" : "invalid_request";
      const body = JSON.stringify({
        error: { code, message: `The HTTP request could not be read (${err.code ?? "malformed"}).` },
      });
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : status === 408 ? "Request Timeout" : "Bad Request"}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  }

  private closeStalledReaders(timeoutMs: number): void {
    const now = Date.now();
    for (const [socket, seen] of this.sockets) {
      // bytesWritten counts what is still queued too: what went to the kernel is the difference
      const flushed = socket.bytesWritten - socket.writableLength;
      if (socket.writableLength === 0) {
        seen.since = 0;
      } else if (seen.since === 0 || flushed !== seen.written) {
        seen.written = flushed;
        seen.since = now;
      } else if (now - seen.since >= timeoutMs) {
        socket.destroy();
      }
    }
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

  /** Stops accepting, lets requests in flight finish, closes idle keep-alive connections; forces the rest after deadlineMs. */
  close(deadlineMs: number): Promise<void> {
    clearInterval(this.sweep);
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), deadlineMs);
      force.unref();
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }
}

export function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(`server.tls: the ${what} file ${JSON.stringify(file)} can not be read (${why}).`);
  }
}
