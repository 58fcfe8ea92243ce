/** PING, ECHO, HELLO, AUTH, CLIENT, SELECT, QUIT: the connection's own state, no backend involved. */
import { UnauthorizedError } from "../errors.js";
import type { CommandContext, Handler } from "./command.js";
import { RedisError, WrongPassError } from "./errors.js";
import { array, bulk, integer, nil, OK, record, simple, type Protocol } from "./reply.js";

/** The Redis version sidecache answers as: clients gate features on it, and it speaks what 7.2 speaks. */
export const REDIS_VERSION = "7.2.0";

export const ping: Handler = (args) => (args.length > 1 ? bulk(args[1]!) : simple("PONG"));

export const echo: Handler = (args) => bulk(args[1]!);

export const select: Handler = (args) => {
  if (word(args[1]!) !== "0") throw new RedisError("ERR", "DB index is out of range");
  return OK;
};

export const quit: Handler = (_args, c) => {
  c.session.quit = true;
  return OK;
};

/** AUTH token, or AUTH user token (the user is "default" or the token's name). */
export const auth: Handler = (args, c) => {
  if (args.length > 3) throw new RedisError("ERR", "syntax error");
  const [user, token] = args.length > 2 ? [text(args[1]!), text(args[2]!)] : [undefined, text(args[1]!)];
  if (!c.resp.proxy.auth.enabled) {
    // Redis' own words: clients configured with a password recognise them and carry on.
    if (user === undefined) {
      throw new RedisError(
        "ERR",
        "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
      );
    }
    return OK;
  }
  authenticate(c, user, token);
  return OK;
};

/** HELLO [2|3 [AUTH user token] [SETNAME name]]: switches the protocol, answers who the server is. */
export const hello: Handler = (args, c) => {
  let proto: Protocol = c.session.proto;
  if (args.length > 1) {
    const v = word(args[1]!);
    if (v !== "2" && v !== "3") throw new RedisError("NOPROTO", "unsupported protocol version");
    proto = v === "3" ? 3 : 2;
  }
  let authed = false;
  let name: string | undefined;
  for (let i = 2; i < args.length; i++) {
    const opt = word(args[i]!).toUpperCase();
    if (opt === "AUTH" && i + 2 < args.length) {
      if (c.resp.proxy.auth.enabled) authenticate(c, text(args[i + 1]!), text(args[i + 2]!));
      authed = true;
      i += 2;
    } else if (opt === "SETNAME" && i + 1 < args.length) {
      name = clientName(args[++i]!);
    } else throw new RedisError("ERR", `Syntax error in HELLO option '${word(args[i]!).slice(0, 64)}'`);
  }
  if (c.resp.proxy.auth.enabled && !authed && c.session.token === undefined) {
    throw new RedisError(
      "NOAUTH",
      "HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
    );
  }
  if (name !== undefined) c.session.name = name;
  c.session.proto = proto;
  return record(
    {
      server: bulk("redis"),
      version: bulk(REDIS_VERSION),
      proto: integer(proto),
      id: integer(c.session.id),
      mode: bulk("standalone"),
      role: bulk("master"),
      modules: array([]),
    },
    proto,
  );
};

/** CLIENT SETNAME | GETNAME | ID | SETINFO | INFO. */
export const client: Handler = (args, c) => {
  const sub = word(args[1]!).toUpperCase();
  const s = c.session;
  switch (sub) {
    case "SETNAME":
      arity(args, 3, "setname");
      s.name = clientName(args[2]!);
      return OK;
    case "GETNAME":
      arity(args, 2, "getname");
      return s.name ? bulk(s.name) : nil(s.proto);
    case "ID":
      arity(args, 2, "id");
      return integer(s.id);
    case "SETINFO": {
      arity(args, 4, "setinfo");
      const attr = word(args[2]!).toUpperCase();
      const value = text(args[3]!);
      if (/[^\x21-\x7e]/.test(value)) {
        throw new RedisError("ERR", `${attr} cannot contain spaces, newlines or special characters.`);
      }
      if (attr === "LIB-NAME") s.libName = value;
      else if (attr === "LIB-VER") s.libVer = value;
      else throw new RedisError("ERR", `Unrecognized option '${attr.slice(0, 64)}'`);
      return OK;
    }
    case "INFO":
      arity(args, 2, "info");
      return bulk(clientInfo(c) + "\n");
    default:
      throw new RedisError("ERR", `unknown subcommand '${word(args[1]!).slice(0, 64)}'. Try CLIENT HELP.`);
  }
};

function clientInfo(c: CommandContext): string {
  const s = c.session;
  const fields = [
    `id=${s.id}`,
    `addr=${s.addr}`,
    `name=${s.name ?? ""}`,
    `db=0`,
    `resp=${s.proto}`,
    `lib-name=${s.libName ?? ""}`,
    `lib-ver=${s.libVer ?? ""}`,
  ];
  return fields.join(" ");
}

/** Sets the session's token, or refuses: a refused AUTH leaves the session as it was. */
function authenticate(c: CommandContext, user: string | undefined, token: string): void {
  let name: string;
  try {
    name = c.resp.proxy.auth.authenticate(token);
  } catch (err) {
    if (err instanceof UnauthorizedError) throw new WrongPassError();
    throw err;
  }
  if (user !== undefined && user !== "default" && user !== name) throw new WrongPassError();
  c.session.token = token;
}

function clientName(raw: Buffer): string {
  const name = text(raw);
  if (/[^\x21-\x7e]/.test(name)) {
    throw new RedisError("ERR", "Client names cannot contain spaces, newlines or special characters.");
  }
  return name;
}

function arity(args: Buffer[], n: number, sub: string): void {
  if (args.length !== n) {
    throw new RedisError("ERR", `wrong number of arguments for 'client|${sub}' command`);
  }
}

function word(raw: Buffer): string {
  return raw.toString("latin1");
}

function text(raw: Buffer): string {
  return raw.toString("utf8");
}
