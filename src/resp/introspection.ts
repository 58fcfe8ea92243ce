/**
 * COMMAND and INFO: what clients ask at connect. ioredis waits for `loading:0` in INFO; redis-cli and others
 * read COMMAND DOCS and COMMAND INFO for hints and key positions. Answers describe sidecache's commands only.
 */
import type { CommandContext, CommandSpec, Handler } from "./command.js";
import { REDIS_VERSION } from "./connection-commands.js";
import { RedisError } from "./errors.js";
import { array, bulk, integer, map, nil, record, simple, type Reply } from "./reply.js";

export const command: Handler = (args, c) => {
  const all = [...c.resp.commands.values()];
  if (args.length === 1) return array(all.map((s) => commandInfo(s)));
  const sub = args[1]!.toString("latin1").toUpperCase();
  const named = args.slice(2).map((a) => a.toString("latin1").toLowerCase());
  switch (sub) {
    case "COUNT":
      return integer(all.length);
    case "LIST":
      return array(all.map((s) => bulk(s.name)));
    case "INFO": {
      if (named.length === 0) return array(all.map((s) => commandInfo(s)));
      return array(
        named.map((n) => {
          const spec = c.resp.commands.get(n);
          return spec ? commandInfo(spec) : nil(c.session.proto);
        }),
      );
    }
    case "DOCS": {
      const specs = named.length === 0 ? all : named.flatMap((n) => c.resp.commands.get(n) ?? []);
      return map(
        specs.map((s) => [bulk(s.name), docs(s, c)]),
        c.session.proto,
      );
    }
    default:
      throw new RedisError(
        "ERR",
        `unknown subcommand '${args[1]!.toString("latin1").slice(0, 64)}'. Try COMMAND HELP.`,
      );
  }
};

function commandInfo(s: CommandSpec): Reply {
  const [first, last, step] = s.keys;
  return array([
    bulk(s.name),
    integer(s.arity),
    array(s.flags.map((f) => simple(f))),
    integer(first),
    integer(last),
    integer(step),
    array([simple(`@${s.group}`)]),
    array([]),
    array([]),
    array([]),
  ]);
}

function docs(s: CommandSpec, c: CommandContext): Reply {
  return record({ summary: bulk(s.summary), since: bulk(s.since), group: bulk(s.group) }, c.session.proto);
}

const SECTIONS = ["server", "clients", "persistence", "replication", "keyspace"] as const;
type Section = (typeof SECTIONS)[number];

/** INFO [section ...]: server, clients, persistence (loading:0), replication (role:master), keyspace. */
export const info: Handler = (args, c) => {
  const asked = args.slice(1).map((a) => a.toString("latin1").toLowerCase());
  const every = asked.length === 0 || asked.some((a) => a === "all" || a === "everything" || a === "default");
  const chosen = SECTIONS.filter((s) => every || asked.includes(s));
  return bulk(chosen.map((s) => section(s, c)).join("\r\n"));
};

function section(name: Section, c: CommandContext): string {
  const lines = (title: string, fields: Record<string, string | number>) =>
    `# ${title}\r\n${Object.entries(fields)
      .map(([k, v]) => `${k}:${v}\r\n`)
      .join("")}`;
  switch (name) {
    case "server":
      return lines("Server", {
        redis_version: REDIS_VERSION,
        redis_mode: "standalone",
        server_name: "sidecache",
        os: `${process.platform} ${process.arch}`,
        arch_bits: 64,
        process_id: process.pid,
        tcp_port: c.resp.port(),
        uptime_in_seconds: Math.floor((Date.now() - c.resp.startedAt) / 1000),
      });
    case "clients":
      return lines("Clients", { connected_clients: c.resp.connections() });
    case "persistence":
      return lines("Persistence", { loading: 0, async_loading: 0 });
    case "replication":
      return lines("Replication", { role: "master", connected_slaves: 0 });
    case "keyspace":
      return "# Keyspace\r\n";
  }
}
