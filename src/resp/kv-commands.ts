/**
 * GET, SET, DEL, UNLINK, EXISTS, MGET, MSET: each finds the keyspace of its keys, checks the caller's
 * permission and calls the keyspace's strategy, the same objects the HTTP routes call, so every guarantee
 * of a strategy holds over RESP. What Redis answers in one step and the strategies in two (SET ... GET,
 * SET ... XX, DEL's count) is a read followed by a write conditional on the version read.
 */
import type { RequestContext } from "../backend/request-context.js";
import type { Permission } from "../config/types.js";
import { InvalidRequestError, UnknownKeyspaceError, VersionMismatchError } from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import type { Op } from "../proxy/context.js";
import type { WriteOrigin } from "../store/adapter.js";
import type { Conditions } from "../strategies/strategy.js";
import type { CommandContext, Handler } from "./command.js";
import { RedisError } from "./errors.js";
import { observed, refused, type Outcome } from "./observe.js";
import { array, bulk, integer, nil, OK } from "./reply.js";
import { respValue, splitKey, storedJson } from "./values.js";

/** Tries of a read-then-conditional-write before the command answers VERSION_MISMATCH. */
const ATTEMPTS = 3;
/** A read whose version a conditional write depends on: past the near cache, which may lag in bounded mode. */
const CURRENT = { skipNear: true };

interface Target {
  ks: Keyspace;
  /** the keyspace's name */
  name: string;
  key: string;
  /** the name of the caller's token, when auth is on */
  client?: string;
  /** the command's deadline, for its backend calls */
  request?: RequestContext;
}

export const get: Handler = (args, c) =>
  observed(c, "get", "", async (o) => {
    const t = target(c, args[1]!, "read", o);
    t.ks.hot?.touch(t.key);
    const r = t.ks.strategy.peek?.(t.key) ?? (await t.ks.strategy.get(t.key, { request: t.request }));
    if (!r.found) {
      o.status = 404;
      return nil(c.session.proto);
    }
    return bulk(respValue(r.value!));
  });

export const mget: Handler = async (args, c) => {
  const found = await readMany(c, args.slice(1), "MGET");
  const proto = c.session.proto;
  return array(found.map((v) => (v === undefined ? nil(proto) : bulk(respValue(v)))));
};

export const exists: Handler = async (args, c) => {
  const found = await readMany(c, args.slice(1), "EXISTS");
  return integer(found.filter((v) => v !== undefined).length);
};

interface SetOptions {
  nx: boolean;
  xx: boolean;
  get: boolean;
}

export const set: Handler = async (args, c) => {
  const opts = setOptions(args);
  return observed(c, "put", "", async (o) => {
    const t = target(c, args[1]!, "write", o);
    const value = storedJson(args[2]!, c.resp.proxy.server.maxValue);
    if (!opts.xx && !opts.get) {
      const conditions: Conditions = opts.nx ? { ifNoneMatch: true } : {};
      try {
        o.status = (await t.ks.strategy.put(t.key, value, conditions, originOf(t))).status;
        return OK;
      } catch (err) {
        if (!(opts.nx && err instanceof VersionMismatchError)) throw err;
        o.status = 412;
        return nil(c.session.proto);
      }
    }
    await refuseIfReadOnly(t);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const old = await t.ks.strategy.get(t.key, { ...CURRENT, request: t.request });
      const answer =
        opts.get && old.found ? bulk(respValue(old.value!)) : opts.get ? nil(c.session.proto) : OK;
      if ((opts.xx && !old.found) || (opts.nx && old.found)) {
        o.status = 412;
        return opts.get ? answer : nil(c.session.proto);
      }
      try {
        const when: Conditions = old.found ? { ifMatch: old.version } : { ifNoneMatch: true };
        o.status = (await t.ks.strategy.put(t.key, value, when, originOf(t))).status;
        return answer;
      } catch (err) {
        if (!(err instanceof VersionMismatchError)) throw err;
      }
    }
    throw conflict("SET");
  });
};

/** DEL and UNLINK: how many of the keys existed and were deleted. */
export const del: Handler = async (args, c) => {
  const targets = targetsOf(c, args.slice(1), "write", "delete", "DEL");
  let deleted = 0;
  for (const t of targets) {
    deleted += await observed(c, "delete", t.name, async (o) => {
      o.client = t.client;
      await refuseIfReadOnly(t);
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const r = await t.ks.strategy.get(t.key, { ...CURRENT, request: t.request });
        if (!r.found) {
          o.status = 204;
          return 0;
        }
        try {
          o.status = (await t.ks.strategy.delete(t.key, { ifMatch: r.version }, originOf(t))).status;
          return 1;
        } catch (err) {
          if (!(err instanceof VersionMismatchError)) throw err;
        }
      }
      throw conflict("DEL");
    });
  }
  return integer(deleted);
};

export const mset: Handler = async (args, c) => {
  if (args.length % 2 === 0) throw new RedisError("ERR", "wrong number of arguments for 'mset' command");
  const keys: Buffer[] = [];
  for (let i = 1; i < args.length; i += 2) keys.push(args[i]!);
  const targets = targetsOf(c, keys, "write", "mset", "MSET");
  const name = targets[0]!.name;
  if (targets.some((t) => t.name !== name)) {
    const o: Outcome = { keyspace: name, status: 400 };
    const err = new InvalidRequestError(
      "MSET writes all or nothing within one keyspace: its keys must all be of the same keyspace.",
    );
    refused(c, "mset", o, err);
    throw err;
  }
  return observed(c, "mset", name, async (o) => {
    o.client = targets[0]!.client;
    const maxValue = c.resp.proxy.server.maxValue;
    // As in Redis, a key given twice takes the last value.
    const items = new Map<string, string>();
    targets.forEach((t, i) => items.set(t.key, storedJson(args[2 + 2 * i]!, maxValue)));
    o.status = (await targets[0]!.ks.strategy.putMany(items, originOf(targets[0]!))).status;
    return OK;
  });
};

/** The JSON text of each key's value (undefined when absent), one getMany per keyspace. */
async function readMany(c: CommandContext, raw: Buffer[], command: string): Promise<(string | undefined)[]> {
  const targets = targetsOf(c, raw, "read", "mget", command);
  const groups = new Map<string, Target[]>();
  for (const t of targets) {
    const g = groups.get(t.name);
    if (g) g.push(t);
    else groups.set(t.name, [t]);
  }
  const values = new Map<string, Map<string, string | undefined>>();
  await Promise.all(
    [...groups].map(([name, group]) =>
      observed(c, "mget", name, async (o) => {
        o.client = group[0]!.client;
        const ks = group[0]!.ks;
        if (ks.hot) for (const t of group) ks.hot.touch(t.key);
        const results = await ks.strategy.getMany([...new Set(group.map((t) => t.key))], {
          request: c.request,
        });
        const byKey = new Map<string, string | undefined>();
        for (const [key, r] of results) byKey.set(key, r.found ? r.value : undefined);
        values.set(name, byKey);
      }),
    ),
  );
  return targets.map((t) => values.get(t.name)!.get(t.key));
}

/** The keyspace and key a Redis key names, once the caller may `need` it. */
function target(c: CommandContext, raw: Buffer, need: Permission, o: Outcome): Target {
  const { keyspace, key } = splitKey(raw);
  const ks = c.resp.proxy.keyspaces.get(keyspace);
  o.keyspace = ks ? keyspace : "(unknown)";
  if (!ks) throw new UnknownKeyspaceError(keyspace.slice(0, 100));
  const client = c.resp.proxy.auth.checkToken(c.session.token, need, keyspace);
  o.client = client;
  return { ks, name: keyspace, key, client, request: c.request };
}

/** Every key's target, checked before any work starts; a refusal is recorded as the command's outcome. */
function targetsOf(c: CommandContext, raw: Buffer[], need: Permission, op: Op, command: string): Target[] {
  const max = c.resp.proxy.server.maxBatch;
  const o: Outcome = { keyspace: "", status: 200 };
  try {
    if (raw.length > max) {
      throw new InvalidRequestError(`At most ${max} keys fit in one ${command}; got ${raw.length}.`);
    }
    return raw.map((r) => target(c, r, need, o));
  } catch (err) {
    refused(c, op, o, err);
    throw err;
  }
}

/** Who writes, for the audit log. */
function originOf(t: Target): WriteOrigin {
  return { client: t.client ?? null, via: "resp", request: t.request };
}

/** read-through refuses every write, whatever the key: let it say so before anything is read. */
async function refuseIfReadOnly(t: Target): Promise<void> {
  if (t.ks.config.strategy === "read-through") await t.ks.strategy.delete(t.key, {});
}

function setOptions(args: Buffer[]): SetOptions {
  const o: SetOptions = { nx: false, xx: false, get: false };
  for (let i = 3; i < args.length; i++) {
    const word = args[i]!.toString("latin1").toUpperCase();
    if (word === "NX" && !o.xx) o.nx = true;
    else if (word === "XX" && !o.nx) o.xx = true;
    else if (word === "GET") o.get = true;
    else if (word === "KEEPTTL") continue;
    else if (word === "EX" || word === "PX" || word === "EXAT" || word === "PXAT") {
      throw new InvalidRequestError(
        `SET ... ${word} is refused: entries expire after the keyspace's ttl, set in the configuration.`,
      );
    } else throw new RedisError("ERR", "syntax error");
  }
  return o;
}

function conflict(command: string): VersionMismatchError {
  return new VersionMismatchError(
    `The key changed between the read and the write of ${command} ${ATTEMPTS} times; nothing was written. Retry the command.`,
  );
}
