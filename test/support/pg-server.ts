/**
 * A private PostgreSQL 15 server for fault tests: its own data directory and port, so a test can stop,
 * kill and restart it without touching the shared server on 5432. Tests run as root; PostgreSQL refuses
 * to, so every server command runs as the `postgres` OS user.
 */
import { execFile } from "node:child_process";
import { chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const BIN = process.env.SIDECACHE_PG_BIN ?? "/usr/lib/postgresql/15/bin";

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** pg_ctl stop -m fast: sessions are terminated, the server shuts down cleanly */
  stop(): Promise<void>;
  /** starts it again on the same port and data directory */
  start(): Promise<void>;
  /** SIGKILL to the postmaster: a crash, no shutdown */
  kill(): Promise<void>;
  /** SIGSTOP to the postmaster and its backends: a server that hangs, answering nothing */
  pause(): Promise<void>;
  /** SIGCONT to the processes pause() stopped */
  resume(): Promise<void>;
  /** stops the server (immediately) if it runs and removes its directory */
  cleanup(): Promise<void>;
}

async function asPostgres(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run("runuser", ["-u", "postgres", "--", join(BIN, cmd), ...args], {
    timeout: 60_000,
  });
  return stdout;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
  const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
  return { uid, gid };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Server settings beyond the defaults, as `-c name=value` (e.g. `{ wal_level: "logical" }` for change data capture). */
export type PostgresSettings = Record<string, string | number>;

export async function startPrivatePostgres(settings: PostgresSettings = {}): Promise<PrivatePostgres> {
  const dir = await mkdtemp(join(tmpdir(), "sidecache-pg-"));
  const { uid, gid } = await postgresIds();
  await chown(dir, uid, gid);
  const data = join(dir, "data");
  const port = await freePort();
  await asPostgres("initdb", [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--no-locale",
    "--no-sync",
  ]);
  const extra = Object.entries(settings)
    .map(([name, value]) => ` -c ${name}=${value}`)
    .join("");
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off${extra}`;
  let running = false;

  async function postmasterPid(): Promise<number | null> {
    try {
      const text = await readFile(join(data, "postmaster.pid"), "utf8");
      const pid = Number(text.split("\n")[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  async function start(): Promise<void> {
    // After a kill the old backends may still hold shared memory for a moment: retry until they are gone.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await asPostgres("pg_ctl", [
          "-D",
          data,
          "-l",
          join(dir, "server.log"),
          "-w",
          "-t",
          "30",
          "-o",
          options,
          "start",
        ]);
        running = true;
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async function stop(): Promise<void> {
    await asPostgres("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
    running = false;
  }

  async function kill(): Promise<void> {
    const pid = await postmasterPid();
    if (pid === null) throw new Error("the private PostgreSQL is not running");
    process.kill(pid, "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    running = false;
  }

  let paused: number[] = [];
  async function pause(): Promise<void> {
    const pid = await postmasterPid();
    if (pid === null) throw new Error("the private PostgreSQL is not running");
    const { stdout } = await run("ps", ["-o", "pid=", "--ppid", String(pid)]);
    paused = [
      pid,
      ...stdout
        .split("\n")
        .map(Number)
        .filter((p) => p > 0),
    ];
    for (const p of paused) process.kill(p, "SIGSTOP");
  }

  async function resume(): Promise<void> {
    for (const p of paused) if (alive(p)) process.kill(p, "SIGCONT");
    paused = [];
  }

  async function cleanup(): Promise<void> {
    await resume();
    if (running) {
      await asPostgres("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined);
      running = false;
    }
    await rm(dir, { recursive: true, force: true });
  }

  try {
    await start();
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    kill,
    pause,
    resume,
    cleanup,
  };
}
