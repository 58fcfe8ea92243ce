/**
 * A TCP proxy that holds every chunk for a fixed time in each direction: a slow network, for real. It can
 * also stop delivering to the connections that subscribed to a channel (Redis pub/sub) while the others
 * carry on, as a firewall that forgot an idle connection would: nothing arrives, nothing is refused.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export class TcpDelay {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  /** the client side of each connection that sent a SUBSCRIBE, with what is held back from it */
  private readonly subscribers = new Map<Socket, Buffer[] | undefined>();
  private stalled = false;
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
      client.on("data", (chunk: Buffer) => {
        if (/subscribe/i.test(chunk.toString("latin1")) && !this.subscribers.has(client)) {
          this.subscribers.set(client, undefined);
        }
        this.later(upstream, chunk);
      });
      client.on("close", () => this.subscribers.delete(client));
      upstream.on("data", (chunk: Buffer) => {
        if (this.stalled && this.subscribers.has(client)) {
          const held = this.subscribers.get(client) ?? [];
          held.push(chunk);
          this.subscribers.set(client, held);
        } else this.later(client, chunk);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  private later(to: Socket, chunk: Buffer): void {
    // timers of equal delay fire in the order they were set: the stream stays in order
    setTimeout(() => to.writable && to.write(chunk), this.oneWayMs);
  }

  /** From now on, what Redis sends to a subscribed connection is held back. */
  stallSubscribers(): void {
    this.stalled = true;
  }

  /** Delivers what was held back, in order, and what comes next. */
  resumeSubscribers(): void {
    this.stalled = false;
    for (const [client, held] of this.subscribers) {
      for (const chunk of held ?? []) this.later(client, chunk);
      this.subscribers.set(client, undefined);
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
