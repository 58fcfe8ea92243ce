/** The commands sidecache answers over RESP; anything else is `-ERR unknown command`. */
import type { CommandSpec, Handler } from "./command.js";
import { auth, client, echo, hello, ping, quit, select } from "./connection-commands.js";
import { command, info } from "./introspection.js";
import { del, exists, get, mget, mset, set } from "./kv-commands.js";

type Spec = Omit<CommandSpec, "name" | "run">;

const KEY: [number, number, number] = [1, 1, 1];
const KEYS: [number, number, number] = [1, -1, 1];
const NONE: [number, number, number] = [0, 0, 0];
const reads = { read: true, backend: true };
const writes = { backend: true };

const table: [string, Handler, Spec][] = [
  [
    "get",
    get,
    {
      arity: 2,
      flags: ["readonly", "fast"],
      keys: KEY,
      group: "string",
      summary: "Returns the value of a key.",
      since: "1.0.0",
      ...reads,
    },
  ],
  [
    "mget",
    mget,
    {
      arity: -2,
      flags: ["readonly", "fast"],
      keys: KEYS,
      group: "string",
      summary: "Returns the values of one or more keys.",
      since: "1.0.0",
      ...reads,
    },
  ],
  [
    "exists",
    exists,
    {
      arity: -2,
      flags: ["readonly", "fast"],
      keys: KEYS,
      group: "keyspace",
      summary: "Counts how many of the keys exist.",
      since: "1.0.0",
      ...reads,
    },
  ],
  [
    "set",
    set,
    {
      arity: -3,
      flags: ["write", "denyoom"],
      keys: KEY,
      group: "string",
      summary: "Sets the value of a key (NX, XX, GET; the keyspace sets the TTL).",
      since: "1.0.0",
      ...writes,
    },
  ],
  [
    "mset",
    mset,
    {
      arity: -3,
      flags: ["write", "denyoom"],
      keys: [1, -1, 2],
      group: "string",
      summary: "Sets the values of keys of one keyspace, all or nothing.",
      since: "1.0.1",
      ...writes,
    },
  ],
  [
    "del",
    del,
    {
      arity: -2,
      flags: ["write"],
      keys: KEYS,
      group: "keyspace",
      summary: "Deletes keys; answers how many existed.",
      since: "1.0.0",
      ...writes,
    },
  ],
  [
    "unlink",
    del,
    {
      arity: -2,
      flags: ["write", "fast"],
      keys: KEYS,
      group: "keyspace",
      summary: "Deletes keys, as DEL.",
      since: "4.0.0",
      ...writes,
    },
  ],
  [
    "ping",
    ping,
    {
      arity: -1,
      flags: ["fast"],
      keys: NONE,
      group: "connection",
      summary: "Answers PONG, or the message given.",
      since: "1.0.0",
    },
  ],
  [
    "echo",
    echo,
    {
      arity: 2,
      flags: ["fast"],
      keys: NONE,
      group: "connection",
      summary: "Answers the message given.",
      since: "1.0.0",
    },
  ],
  [
    "hello",
    hello,
    {
      arity: -1,
      flags: ["noscript", "loading", "stale", "fast", "no_auth"],
      keys: NONE,
      group: "connection",
      summary: "Chooses RESP2 or RESP3, may authenticate and name the connection.",
      since: "6.0.0",
      noAuth: true,
    },
  ],
  [
    "auth",
    auth,
    {
      arity: -2,
      flags: ["noscript", "loading", "stale", "fast", "no_auth"],
      keys: NONE,
      group: "connection",
      summary: "Authenticates the connection with a token.",
      since: "1.0.0",
      noAuth: true,
    },
  ],
  [
    "client",
    client,
    {
      arity: -2,
      flags: ["loading", "stale"],
      keys: NONE,
      group: "connection",
      summary: "SETNAME, GETNAME, ID, SETINFO and INFO of the connection.",
      since: "2.4.0",
    },
  ],
  [
    "select",
    select,
    {
      arity: 2,
      flags: ["loading", "stale", "fast"],
      keys: NONE,
      group: "connection",
      summary: "Selects database 0, the only one.",
      since: "1.0.0",
    },
  ],
  [
    "quit",
    quit,
    {
      arity: -1,
      flags: ["loading", "stale", "fast", "no_auth"],
      keys: NONE,
      group: "connection",
      summary: "Closes the connection.",
      since: "1.0.0",
      noAuth: true,
    },
  ],
  [
    "command",
    command,
    {
      arity: -1,
      flags: ["loading", "stale"],
      keys: NONE,
      group: "server",
      summary: "Describes the commands: COUNT, LIST, INFO, DOCS.",
      since: "2.8.13",
    },
  ],
  [
    "info",
    info,
    {
      arity: -1,
      flags: ["loading", "stale"],
      keys: NONE,
      group: "server",
      summary: "Server, clients, persistence, replication and keyspace sections.",
      since: "1.0.0",
    },
  ],
];

export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(
  table.map(([name, run, spec]) => [name, { name, run, ...spec }]),
);
