/** The HTTP listener: node:http with timeouts so a slow client can not hold the daemon, and a graceful close. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ProxyContext } from "./context.js";
import { createHandler } from "./router.js";

export class HttpServer {
  private readonly server: Server;

  constructor(ctx: ProxyContext) {
    const s = ctx.server;
    this.server = createServer(
      {
        headersTimeout: s.headersTimeoutMs,
        requestTimeout: s.requestTimeoutMs,
        keepAliveTimeout: s.keepAliveTimeoutMs,
        // A bad request line or header gets a 400 from Node itself; keep the default 16 KiB header limit.
        maxHeaderSize: 16 * 1024,
      },
      createHandler(ctx),
    );
    this.server.maxConnections = s.maxConnections;
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
