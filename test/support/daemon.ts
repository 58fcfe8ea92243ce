/** Daemons for tests: in-process (fast) or as a child process (for tests that kill it). */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.js";
import { Daemon } from "../../src/daemon.js";
import { silentLogger } from "../../src/log.js";

/** The shared test servers; .ci/run points these at private ones when the machine's can not be used as they are. */
export const REDIS_URL = process.env.SIDECACHE_TEST_REDIS ?? "redis://127.0.0.1:6379";
export const PG_URL = process.env.SIDECACHE_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/test";

/** A short random tag for prefixes and table names, unique per test file run. */
export function uniqueTag(): string {
  return `t${randomBytes(4).toString("hex")}`;
}

/** Starts a daemon in this process on a free port from YAML text. */
export async function startDaemon(yaml: string): Promise<Daemon> {
  const config = parseConfig(yaml, "test.yaml");
  return Daemon.start({ ...config, server: { ...config.server, port: 0 } }, { log: silentLogger });
}

export interface ChildDaemon {
  url: string;
  port: number;
  process: ChildProcess;
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Writes the YAML to a temp file and runs `node dist/cmd/sidecache.js --config FILE`; resolves once it listens. */
export async function spawnDaemon(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<ChildDaemon> {
  const dir = mkdtempSync(join(tmpdir(), "sidecache-"));
  const file = join(dir, "sidecache.yaml");
  // without a server section the daemon would take the default port, shared by every test file at once
  writeFileSync(file, /^server:/m.test(yaml) ? yaml : `${yaml}\nserver: { host: 127.0.0.1, port: 0 }\n`);
  const child = spawn(process.execPath, ["dist/cmd/sidecache.js", "--config", file], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start:\n${out}`)), 30_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /"port":(\d+)[^\n]*sidecache listening/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code}:\n${out}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    output: () => out,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
