/** What the figures were measured on, printed beside every table. */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, totalmem, release } from "node:os";
import { readFileSync } from "node:fs";

export interface Machine {
  nproc: number;
  cpuModel: string;
  memGiB: number;
  kernel: string;
  node: string;
  loadGenerator: string;
  redis: string;
  postgres: string;
  /** 1-minute load average when the bench started: other work on the machine shows up here */
  loadAvgAtStart: number;
  pinning: string;
  date: string;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
  } catch (err) {
    // wrk -v exits 1 after printing its version
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    return `${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}`;
  }
}

export function nproc(): number {
  const n = Number(run("nproc", []).trim());
  return Number.isFinite(n) && n > 0 ? n : cpus().length;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? "unknown";
}

export function describeMachine(
  loadGenerator: string,
  pinning: string,
  versions: { redis: string; postgres: string },
  cores: number,
): Machine {
  return {
    nproc: cores,
    cpuModel: cpuModel(),
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadGenerator,
    redis: versions.redis,
    postgres: versions.postgres,
    loadAvgAtStart: Math.round(loadavg()[0]! * 100) / 100,
    pinning,
    date: new Date().toISOString(),
  };
}

/** "wrk 4.1.0" or undefined when wrk is not installed. */
export function wrkVersion(): string | undefined {
  const out = run("wrk", ["-v"]);
  const m = /^wrk (\S+)/m.exec(out);
  return m ? `wrk ${m[1]}` : undefined;
}

/** Installs wrk from the distribution when it is missing and we may (root, apt-get present). */
export function ensureWrk(log: (s: string) => void): string | undefined {
  const have = wrkVersion();
  if (have) return have;
  if (process.getuid?.() !== 0) return undefined;
  log("wrk not found; trying apt-get install -y wrk");
  try {
    execFileSync("apt-get", ["install", "-y", "wrk"], { stdio: "ignore", timeout: 120_000 });
  } catch {
    try {
      execFileSync("apt-get", ["update"], { stdio: "ignore", timeout: 120_000 });
      execFileSync("apt-get", ["install", "-y", "wrk"], { stdio: "ignore", timeout: 120_000 });
    } catch {
      return undefined;
    }
  }
  return wrkVersion();
}

export function hasTimeCommand(): boolean {
  try {
    execFileSync("/usr/bin/time", ["-f", "%U", "true"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
