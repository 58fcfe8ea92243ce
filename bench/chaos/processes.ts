/**
 * The processes a chaos run kills: a redis-server with an append-only file fsynced on every write (so a
 * SIGKILL loses nothing it acknowledged, as write-behind requires) that can also be sent back to an older
 * RDB snapshot or emptied, and the daemons as child processes on fixed ports, so clients keep their URLs
 * across restarts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Redis } from "ioredis";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

export async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A child process that is stopped by signal and started again with the same arguments. */
abstract class Restartable {
  protected proc: ChildProcess | undefined;
  protected tail = "";

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** The last few kilobytes of its output, for reports. */
  output(): string {
    return this.tail;
  }

  /** SIGSTOP: the process hangs, its sockets stay open. */
  freeze(): void {
    this.proc?.kill("SIGSTOP");
  }

  /** SIGCONT after freeze(). */
  thaw(): void {
    this.proc?.kill("SIGCONT");
  }

  async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.proc;
    if (!child) return;
    const exited = once(child, "exit");
    child.kill(sig);
    await exited;
  }

  protected launch(command: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env });
    const keep = (c: Buffer) => {
      this.tail = (this.tail + c.toString()).slice(-8192);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const reap = () => child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => {
      process.off("exit", reap);
      if (this.proc === child) this.proc = undefined;
    });
    this.proc = child;
    return child;
  }
}

export class DurableRedis extends Restartable {
  readonly dir = mkdtempSync(join(tmpdir(), "sidecache-chaos-redis-"));
  private constructor(readonly port: number) {
    super();
  }

  static async start(): Promise<DurableRedis> {
    const r = new DurableRedis(await freePort());
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it from its append-only file (from its RDB snapshot with aof false). */
  async start(aof = true): Promise<void> {
    if (this.proc) return;
    const child = this.launch("redis-server", [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--appendonly",
      aof ? "yes" : "no",
      "--appendfsync",
      "always",
      "--maxmemory-policy",
      "noeviction",
    ]);
    await until(
      "redis-server answering PING",
      async () => {
        if (child.exitCode !== null) throw new Error(`redis-server exited: ${this.tail}`);
        return ping(this.port);
      },
      15_000,
    );
  }

  /** An RDB snapshot of what it holds now (SAVE). */
  async save(): Promise<void> {
    await this.command(["save"]);
  }

  /**
   * Killed and started again from the last snapshot (its append-only file removed): every write since the
   * snapshot is gone, as after a restart of a Redis that persists with RDB only. The append-only file is
   * then turned on again (a rewrite from what was loaded), so later kills lose nothing.
   */
  async restartFromSnapshot(): Promise<void> {
    await this.signal("SIGKILL");
    rmSync(join(this.dir, "appendonlydir"), { recursive: true, force: true });
    await this.start(false);
    await this.command(["config", "set", "appendonly", "yes"]);
    await until(
      "the append-only file rewritten after a snapshot restart",
      async () => {
        const info = String(await this.command(["info", "persistence"]));
        return (
          /aof_enabled:1/.test(info) &&
          /aof_rewrite_in_progress:0/.test(info) &&
          /aof_rewrite_scheduled:0/.test(info)
        );
      },
      15_000,
    );
  }

  /** FLUSHALL: every key gone, the server the same. */
  async flushAll(): Promise<void> {
    await this.command(["flushall"]);
  }

  private async command(args: [string, ...string[]]): Promise<unknown> {
    const client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    try {
      await client.connect();
      return await client.call(...args);
    } finally {
      client.disconnect();
    }
  }

  async cleanup(): Promise<void> {
    this.thaw();
    await this.signal("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (c) => {
      reply += c.toString("latin1");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

export class ChildDaemon extends Restartable {
  private readonly dir = mkdtempSync(join(tmpdir(), "sidecache-chaos-"));
  readonly file = join(this.dir, "sidecache.yaml");

  constructor(
    readonly port: number,
    yaml: string,
    private readonly entry = "dist/cmd/sidecache.js",
  ) {
    super();
    writeFileSync(this.file, yaml);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts it and waits until /healthz answers; starts it again while it exits (it does not start while
   * PostgreSQL is down). Resolves to the number of starts it took.
   */
  async start(deadlineMs = 60_000): Promise<number> {
    const deadline = Date.now() + deadlineMs;
    for (let starts = 1; ; starts++) {
      const child = this.launch(process.execPath, [this.entry, "--config", this.file]);
      while (child.exitCode === null && child.signalCode === null) {
        if (await healthy(this.port)) return starts;
        if (Date.now() > deadline) {
          await this.signal("SIGKILL");
          throw new Error(`the daemon did not answer /healthz within ${deadlineMs} ms:\n${this.tail}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      if (Date.now() > deadline) throw new Error(`the daemon did not start:\n${this.tail}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async cleanup(): Promise<void> {
    this.thaw();
    await this.signal("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function healthy(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}
