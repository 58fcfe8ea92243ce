/** What a command handler sees and what describes a command (for dispatch, arity and COMMAND's answers). */
import type { RequestContext } from "../backend/request-context.js";
import type { ProxyContext } from "../proxy/context.js";
import type { Protocol, Reply } from "./reply.js";

/** One connection's state. */
export interface Session {
  readonly id: number;
  /** the peer, as ip:port */
  readonly addr: string;
  proto: Protocol;
  name?: string;
  libName?: string;
  libVer?: string;
  /** the token given with AUTH or HELLO; checked against the access rules in force at each command */
  token?: string;
  /** QUIT: answer, then close */
  quit?: boolean;
}

/** What the listener shares with every command. */
export interface RespContext {
  proxy: ProxyContext;
  commands: ReadonlyMap<string, CommandSpec>;
  startedAt: number;
  /** the port the listener took */
  port(): number;
  connections(): number;
}

export interface CommandContext {
  resp: RespContext;
  session: Session;
  /** a command that calls the backends: its id and deadline */
  request?: RequestContext;
}

export type Handler = (args: Buffer[], c: CommandContext) => Reply | Promise<Reply>;

export interface CommandSpec {
  /** lower case */
  name: string;
  /** Redis' convention: N exactly N arguments (the name included), -N at least N */
  arity: number;
  /** as COMMAND INFO shows them: readonly, write, fast, loading, stale, noauth, ... */
  flags: string[];
  /** positions of the keys: first, last (-1: the last argument), step */
  keys: [number, number, number];
  group: string;
  summary: string;
  since: string;
  /** reads of the cache and database: may run alongside the reads next to it in a pipeline */
  read?: boolean;
  /** calls the backends: runs under the request deadline */
  backend?: boolean;
  /** allowed before AUTH */
  noAuth?: boolean;
  run: Handler;
}
