/** Child processes pinned to a core, and what /proc says about them (CPU ticks, resident memory). */
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
} from "node:fs";

/** The last 256 KiB of a file. */
function tail(file: string, bytes = 256 * 1024): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString();
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

let tasksetChecked: boolean | undefined;

/** Whether `taskset` can pin processes here (it is in util-linux; absent on some minimal images). */
export function canPin(): boolean {
  if (tasksetChecked === undefined) {
    try {
      execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
      tasksetChecked = true;
    } catch {
      tasksetChecked = false;
    }
  }
  return tasksetChecked;
}

/** Pins an already running process (this one, say) to one core; false when it can not. */
export function pinPid(pid: number, core: number): boolean {
  if (!canPin()) return false;
  try {
    execFileSync("taskset", ["-pc", String(core), String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export interface Child {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly core: number | undefined;
  output(): string;
  readonly exited: Promise<number | null>;
  /** Sends the signal (SIGTERM by default) and waits for the exit; SIGKILL after graceMs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

/**
 * Runs `cmd args` pinned to `core` with taskset, which execs the command: the pid is the command's own.
 * stdout and stderr are collected (the last 256 KiB).
 */
export function spawnPinned(
  core: number | undefined,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  /** write stdout and stderr to this file instead of a pipe (a daemon's log, as in production) */
  logFile?: string,
): Child {
  const pinned = core !== undefined && canPin();
  const fd = logFile ? openSync(logFile, "a") : undefined;
  const stdio: StdioOptions = fd !== undefined ? ["ignore", fd, fd] : ["ignore", "pipe", "pipe"];
  const child = pinned
    ? spawn("taskset", ["-c", String(core), cmd, ...args], { env: { ...process.env, ...env }, stdio })
    : spawn(cmd, args, { env: { ...process.env, ...env }, stdio });
  if (fd !== undefined) closeSync(fd);
  let out = "";
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 256 * 1024) out = out.slice(-256 * 1024);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    pid: child.pid ?? -1,
    core: pinned ? core : undefined,
    output: () => (logFile ? tail(logFile) : out),
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Resolves with the first match of `re` in the child's output (polled), or rejects on exit or after timeoutMs. */
export function waitForOutput(c: Child, re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = setInterval(() => {
      const m = re.exec(c.output());
      if (m) {
        clearInterval(poll);
        resolve(m);
      } else if (c.child.exitCode !== null || c.child.signalCode !== null) {
        clearInterval(poll);
        reject(
          new Error(
            `process exited (${c.child.exitCode ?? c.child.signalCode}) before it was ready:\n${c.output().slice(-4000)}`,
          ),
        );
      } else if (Date.now() > deadline) {
        clearInterval(poll);
        reject(new Error(`process not ready after ${timeoutMs} ms:\n${c.output().slice(-4000)}`));
      }
    }, 25);
  });
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds the process has used so far (/proc/PID/stat utime + stime). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name is in parentheses and may hold spaces; the fields after it start with the state.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Times the process's main thread went to sleep and was woken (/proc/PID/task/PID voluntary switches). */
export function mainThreadWakeups(pid: number): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(
    readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8"),
  );
  return m ? Number(m[1]) : 0;
}

/** Resident set size in bytes (/proc/PID/status VmRSS). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** The pid of a process listening on a TCP port on this machine (from /proc/net/tcp), if it can be found. */
export function pidListeningOn(port: number): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address, f[3] state (0A = LISTEN), f[9] inode
      if (f[1]?.endsWith(`:${hex}`) && f[3] === "0A" && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m && inodes.has(m[1]!)) return Number(pid);
      } catch {
        // the fd closed while we looked
      }
    }
  }
  return undefined;
}
