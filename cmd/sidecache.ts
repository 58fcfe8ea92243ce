#!/usr/bin/env node
/** The command line: serve (default), validate, check. Exit 0 ok, 1 invalid or inconsistent, 2 usage. */
import { parseArgs } from "node:util";
import { checkCdcServer } from "../src/cdc/index.js";
import { loadConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";
import { applyHeapPolicy } from "../src/heap-policy.js";
import { createLogger, flushLogs } from "../src/log.js";
import { OPS_COMMANDS, OPS_HELP, runOpsCommand } from "../src/cli/ops-commands.js";

const HELP = `sidecache — a caching sidecar in front of Redis and PostgreSQL

Usage:
  sidecache [--config FILE]                 start the daemon
  sidecache validate [--config FILE]        check the configuration file (and, with store.cdc, that
                                            PostgreSQL can stream changes); exit 0, or 1 with the problem
  sidecache check [--config FILE] [--keyspace KS] [--full]
                                            run one consistency check and print the report;
                                            exit 0 when consistent, 1 when not
${OPS_HELP}
Options:
  -c, --config FILE   configuration file (default config/sidecache.yaml)
  -k, --keyspace KS   the keyspace (check: only this one)
      --full          check every key instead of a sample
  -h, --help          show this help
  -v, --version       print the version

Signals: SIGTERM and SIGINT drain and stop; SIGHUP reloads the configuration file.`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c", default: "config/sidecache.yaml" },
        keyspace: { type: "string", short: "k" },
        full: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "v", default: false },
        url: { type: "string" },
        token: { type: "string" },
        count: { type: "string" },
        after: { type: "string" },
        json: { type: "boolean", default: false },
        from: { type: "string" },
        limit: { type: "string" },
        wait: { type: "boolean", default: false },
        key: { type: "string" },
        since: { type: "string" },
        until: { type: "string" },
        cursor: { type: "string" },
      },
    });
  } catch (err) {
    process.stderr.write(`sidecache: ${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${await version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? "serve";
  if (OPS_COMMANDS.includes(command)) return runOpsCommand(positionals, values);
  if (positionals.length > 1 || !["serve", "validate", "check"].includes(command)) {
    process.stderr.write(`sidecache: unknown command ${JSON.stringify(positionals.join(" "))}\n\n${HELP}\n`);
    return 2;
  }
  const file = values.config!;
  let config;
  try {
    config = await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sidecache: invalid configuration: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (command === "validate") {
    // With store.cdc the file alone does not say whether it can work: PostgreSQL is asked.
    const cdc = config.store.cdc;
    const problems = cdc ? await checkCdcServer(config.store.url, cdc, config.store.timeoutMs) : [];
    if (problems.length > 0) {
      for (const p of problems) process.stderr.write(`sidecache: ${file}: store.cdc: ${p}\n`);
      return 1;
    }
    process.stdout.write(
      `${file}: valid, ${config.keyspaces.size} keyspace(s): ${[...config.keyspaces.keys()].join(", ")}\n`,
    );
    return 0;
  }
  if (command === "check") {
    const { runCheckCommand } = await import("../src/checker/command.js");
    return runCheckCommand(config, { keyspace: values.keyspace, full: values.full });
  }
  return serve(file, config);
}

async function serve(file: string, config: Awaited<ReturnType<typeof loadConfig>>): Promise<number> {
  applyHeapPolicy();
  const log = createLogger(config.log.level);
  // Loaded here so that the commands that only call a running daemon start fast.
  const { Daemon } = await import("../src/daemon.js");
  const daemon = await Daemon.start(config, { log });
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "stopping");
      daemon.stop().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, "stop failed");
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      loadConfig(file)
        .then((next) => daemon.reload(next))
        .catch((err: unknown) => {
          const message = err instanceof ConfigError ? err.message : String(err);
          log.error({ error: message }, "reload refused; the previous configuration stays in force");
        });
    });
  });
}

async function version(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  (code) => {
    flushLogs();
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sidecache: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
