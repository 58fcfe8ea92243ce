/** A private redis-server on a free port, for tests that kill and restart it. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PrivateRedis {
  port: number;
  url: string;
  /** SIGTERM, waits for the exit */
  stop(): Promise<void>;
  /** SIGKILL, waits for the exit */
  kill(): Promise<void>;
  /** starts it again on the same port (from its files, if it keeps any) and waits until it answers */
  start(): Promise<void>;
  /** the folder of its RDB and AOF files */
  dir: string;
}

const READY_DEADLINE_MS = 10_000;

export interface PrivateRedisOptions {
  /**
   * Persistence: none (default), "rdb" (snapshots only when asked: SAVE), or "aof" (appendfsync always).
   * Files live in `dir`, which a later start reads back.
   */
  persistence?: "none" | "rdb" | "aof";
  /** more redis-server arguments */
  args?: string[];
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), "sidecache-redis-"));
  const persistence =
    options.persistence === "aof"
      ? ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
      : ["--appendonly", "no", "--save", ""];

  const start = async () => {
    if (proc) throw new Error(`redis-server on port ${port} is already running`);
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, ...persistence, ...(options.args ?? [])],
      { stdio: "ignore" },
    );
    proc = child;
    const reap = () => child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => {
      process.off("exit", reap);
      if (proc === child) proc = undefined;
    });
    const deadline = Date.now() + READY_DEADLINE_MS;
    while (!(await answersPing(port))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`redis-server on port ${port} exited (${child.exitCode ?? child.signalCode})`);
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const signal = async (sig: NodeJS.Signals) => {
    const child = proc;
    if (!child) return;
    const exited = once(child, "exit");
    child.kill(sig);
    await exited;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    start,
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP port was given");
  return address.port;
}

function answersPing(port: number): Promise<boolean> {
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
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}
