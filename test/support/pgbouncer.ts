/**
 * A private PgBouncer (Debian's `pgbouncer`) on a free port in front of a PostgreSQL server: its own ini
 * and userlist in a temp folder, trust authentication, the pool mode asked for. PgBouncer refuses to run
 * as root, so it runs as the `postgres` OS user, like the private PostgreSQL.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface PrivatePgBouncer {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/<database> */
  url: string;
  /** the admin console: SHOW STATS, SHOW POOLS... */
  adminUrl: string;
  /** the log, for a failed test's message */
  log(): Promise<string>;
  stop(): Promise<void>;
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

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startPgBouncer(options: {
  /** the server behind it: postgres://user@host:port/database */
  target: string;
  poolMode: "session" | "transaction" | "statement";
  poolSize?: number;
}): Promise<PrivatePgBouncer> {
  const target = new URL(options.target);
  const database = target.pathname.slice(1) || "postgres";
  const dir = await mkdtemp(join(tmpdir(), "sidecache-pgbouncer-"));
  const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
  const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
  await chown(dir, uid, gid);
  const port = await freePort();
  const ini = join(dir, "pgbouncer.ini");
  await writeFile(
    ini,
    [
      "[databases]",
      `${database} = host=${target.hostname} port=${target.port || 5432} dbname=${database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "userlist.txt")}`,
      "admin_users = postgres",
      `pool_mode = ${options.poolMode}`,
      `default_pool_size = ${options.poolSize ?? 5}`,
      "max_client_conn = 500",
      `logfile = ${join(dir, "pgbouncer.log")}`,
      "",
    ].join("\n"),
  );
  await writeFile(join(dir, "userlist.txt"), `"${target.username || "postgres"}" ""\n`);
  const child: ChildProcess = spawn("runuser", ["-u", "postgres", "--", "pgbouncer", ini], {
    stdio: "ignore",
  });
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  const log = () =>
    run("cat", [join(dir, "pgbouncer.log")]).then(
      (r) => r.stdout,
      () => "",
    );
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`pgbouncer did not start:\n${await log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const user = target.username || "postgres";
  return {
    port,
    url: `postgres://${user}@127.0.0.1:${port}/${database}`,
    adminUrl: `postgres://${user}@127.0.0.1:${port}/pgbouncer`,
    log,
    async stop() {
      process.off("exit", reap);
      if (child.exitCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
