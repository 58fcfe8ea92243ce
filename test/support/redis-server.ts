/** A private redis-server on a free port, for tests that kill and restart it. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";

export interface PrivateRedis {
  port: number;
  url: string;
  /** SIGTERM, waits for the exit */
  stop(): Promise<void>;
  /** SIGKILL, waits for the exit */
  kill(): Promise<void>;
  /** starts it again on the same port (empty: nothing is persisted) and waits until it answers */
  start(): Promise<void>;
}

const READY_DEADLINE_MS = 10_000;

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;

  const start = async () => {
    if (proc) throw new Error(`redis-server on port ${port} is already running`);
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
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
