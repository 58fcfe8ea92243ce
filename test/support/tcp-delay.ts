/** A TCP proxy that holds every chunk for a fixed time in each direction: a slow network, for real. */
import { connect, createServer, type Server, type Socket } from "node:net";

export class TcpDelay {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly oneWayMs: number,
  ) {}

  async listen(): Promise<number> {
    this.server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.setNoDelay(true);
        s.on("error", () => {});
        s.on("close", () => {
          client.destroy();
          upstream.destroy();
          this.sockets.delete(s);
        });
      }
      client.on("data", (chunk: Buffer) => this.later(upstream, chunk));
      upstream.on("data", (chunk: Buffer) => this.later(client, chunk));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  private later(to: Socket, chunk: Buffer): void {
    // timers of equal delay fire in the order they were set: the stream stays in order
    setTimeout(() => to.writable && to.write(chunk), this.oneWayMs);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
