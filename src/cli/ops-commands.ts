/**
 * Operator commands against a running daemon, over its admin API:
 *
 *   sidecache keyspaces
 *   sidecache dead-letters list --keyspace KS [--count N] [--after ID]
 *   sidecache dead-letters replay|drop --keyspace KS ID...
 *   sidecache warm --keyspace KS [--from query|hot] [--limit N] [--wait]
 *   sidecache audit KS [--key K] [--since T] [--until T] [--limit N] [--cursor C]
 *
 * --url (or SIDECACHE_URL, default http://127.0.0.1:7070) names the daemon, --token (or SIDECACHE_TOKEN)
 * an admin token. Tables on stdout, --json for the daemon's JSON. Exit 0; 1 when the daemon refused or
 * could not be reached (its error code and message on stderr); 2 for a usage error.
 */
import { request } from "undici";

export interface OpsOptions {
  url?: string;
  token?: string;
  keyspace?: string;
  count?: string;
  after?: string;
  json?: boolean;
  from?: string;
  limit?: string;
  wait?: boolean;
  key?: string;
  since?: string;
  until?: string;
  cursor?: string;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

const stdio: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

export const OPS_COMMANDS = ["keyspaces", "dead-letters", "warm", "audit"];

export const OPS_HELP = `  sidecache keyspaces [--url URL] [--token TOKEN] [--json]
                                            each keyspace of a running daemon: strategy, queue,
                                            dead letters, hit ratio, last check
  sidecache dead-letters list --keyspace KS [--count N] [--after ID] [--json]
  sidecache dead-letters replay --keyspace KS ID...
  sidecache dead-letters drop --keyspace KS ID...
                                            write-behind writes PostgreSQL refused: list them,
                                            queue them again, or drop them for good
  sidecache warm --keyspace KS [--from query|hot] [--limit N] [--wait]
                                            fill the keyspace's cache from its warm: query or its
                                            hot keys; --wait prints progress until done
  sidecache audit KS [--key K] [--since T] [--until T] [--limit N] [--cursor C] [--json]
                                            the keyspace's audit log, newest first: who wrote
                                            what and when; T is an RFC 3339 time or a duration
                                            back from now (15m, 24h, 7d)
      --url URL       the daemon (default $SIDECACHE_URL or http://127.0.0.1:7070)
      --token TOKEN   an admin token (default $SIDECACHE_TOKEN)`;

class UsageError extends Error {}

/** A failed call: the daemon's error, or no answer. */
class CallError extends Error {}

export async function runOpsCommand(args: string[], o: OpsOptions, io: Io = stdio): Promise<number> {
  try {
    const api = new Api(
      o.url ?? io.env.SIDECACHE_URL ?? "http://127.0.0.1:7070",
      o.token ?? io.env.SIDECACHE_TOKEN,
    );
    const [command, sub, ...rest] = args;
    if (command === "keyspaces") {
      if (sub !== undefined) throw new UsageError("keyspaces takes no argument");
      return await keyspaces(api, o, io);
    }
    if (command === "dead-letters") return await deadLetters(api, sub, rest, o, io);
    if (command === "warm") {
      if (sub !== undefined)
        throw new UsageError("warm takes no argument; name the keyspace with --keyspace");
      return await warm(api, o, io);
    }
    if (command === "audit") {
      if (rest.length > 0) throw new UsageError("audit takes one keyspace");
      return await audit(api, sub ?? o.keyspace, o, io);
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`sidecache: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CallError) {
      io.err(`sidecache: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

class Api {
  readonly base: URL;
  constructor(
    url: string,
    private readonly token: string | undefined,
  ) {
    try {
      this.base = new URL(url);
    } catch {
      throw new UsageError(`--url ${JSON.stringify(url)} is not a URL such as http://127.0.0.1:7070`);
    }
  }

  async call(method: string, path: string, json?: unknown): Promise<{ status: number; body: unknown }> {
    const url = new URL(path, this.base);
    let res;
    try {
      res = await request(url, {
        method: method as "GET",
        headers: {
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          ...(json === undefined ? {} : { "content-type": "application/json" }),
        },
        body: json === undefined ? undefined : JSON.stringify(json),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      throw new CallError(`could not reach ${this.base.origin}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    let body: unknown = undefined;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        throw new CallError(`${url.pathname} answered ${res.statusCode} with something that is not JSON`);
      }
    }
    if (res.statusCode >= 400) {
      const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new CallError(
        `${method} ${url.pathname}: ${res.statusCode} ${e?.code ?? ""}${e?.message ? `: ${e.message}` : ""}`,
      );
    }
    return { status: res.statusCode, body };
  }
}

interface KeyspaceInfo {
  strategy: string;
  consistency?: string;
  queue_depth: number;
  oldest_pending_seconds?: number;
  dead_letters?: number;
  hit_ratio: number | null;
  last_check: { sampled: number; inconsistent: number; started_at: string } | null;
}

async function keyspaces(api: Api, o: OpsOptions, io: Io): Promise<number> {
  const { body } = await api.call("GET", "/v1/keyspaces");
  if (o.json) {
    io.out(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  const rows = Object.entries((body as { keyspaces: Record<string, KeyspaceInfo> }).keyspaces).map(
    ([name, k]) => [
      name,
      k.strategy + (k.consistency ? ` ${k.consistency}` : ""),
      k.strategy === "write-behind" ? String(k.queue_depth) : "-",
      k.strategy === "write-behind" && k.queue_depth > 0
        ? `${(k.oldest_pending_seconds ?? 0).toFixed(1)}s`
        : "-",
      k.dead_letters === undefined ? "-" : String(k.dead_letters),
      k.hit_ratio === null ? "-" : `${(k.hit_ratio * 100).toFixed(1)}%`,
      k.last_check
        ? `${k.last_check.inconsistent}/${k.last_check.sampled} at ${k.last_check.started_at}`
        : "-",
    ],
  );
  io.out(
    table(
      ["KEYSPACE", "STRATEGY", "QUEUED", "OLDEST", "DEAD", "HIT RATIO", "LAST CHECK (inconsistent/sampled)"],
      rows,
    ),
  );
  return 0;
}

interface Letter {
  id: string;
  key: string;
  version: number;
  value: string | null;
  reason: string;
  attempts: number;
  at: number;
}

async function deadLetters(
  api: Api,
  sub: string | undefined,
  ids: string[],
  o: OpsOptions,
  io: Io,
): Promise<number> {
  if (!o.keyspace) throw new UsageError("dead-letters needs --keyspace KS");
  const base = `/v1/keyspaces/${encodeURIComponent(o.keyspace)}/dead-letters`;
  if (sub === "list") {
    if (ids.length > 0) throw new UsageError("dead-letters list takes no ids; use --after ID to page");
    const q = new URLSearchParams();
    if (o.count !== undefined) q.set("count", o.count);
    if (o.after !== undefined) q.set("after", o.after);
    const { body } = await api.call("GET", `${base}${q.size > 0 ? `?${q}` : ""}`);
    const letters = (body as { dead_letters: Letter[] }).dead_letters;
    if (o.json) {
      io.out(`${JSON.stringify(letters, null, 2)}\n`);
      return 0;
    }
    if (letters.length === 0) {
      io.out(`no dead letters in ${o.keyspace}\n`);
      return 0;
    }
    const rows = letters.map((l) => [
      l.id,
      JSON.stringify(l.key),
      String(l.version),
      l.value === null ? "delete" : "put",
      String(l.attempts),
      new Date(l.at).toISOString(),
      l.reason,
    ]);
    io.out(table(["ID", "KEY", "VERSION", "OP", "TRIES", "AT", "REASON"], rows));
    return 0;
  }
  if (sub !== "replay" && sub !== "drop") {
    throw new UsageError("dead-letters takes list, replay or drop");
  }
  if (ids.length === 0)
    throw new UsageError(`dead-letters ${sub} needs at least one id (see dead-letters list)`);
  let failed = 0;
  for (const id of ids) {
    try {
      if (sub === "replay") {
        const { body } = await api.call("POST", `${base}/${encodeURIComponent(id)}/replay`);
        io.out(`${id}: queued again as version ${(body as { version: number }).version}\n`);
      } else {
        await api.call("DELETE", `${base}/${encodeURIComponent(id)}`);
        io.out(`${id}: dropped\n`);
      }
    } catch (err) {
      if (!(err instanceof CallError)) throw err;
      io.err(`sidecache: ${id}: ${err.message}\n`);
      failed++;
    }
  }
  return failed > 0 ? 1 : 0;
}

interface WarmProgress {
  from: string;
  state: string;
  total: number | null;
  warmed: number;
  found: number;
  error?: string;
}

async function warm(api: Api, o: OpsOptions, io: Io): Promise<number> {
  if (!o.keyspace) throw new UsageError("warm needs --keyspace KS");
  if (o.from !== undefined && o.from !== "query" && o.from !== "hot") {
    throw new UsageError("--from is query or hot");
  }
  const limit = o.limit === undefined ? undefined : Number(o.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new UsageError("--limit is a whole number of keys, 1 or more");
  }
  const path = `/v1/keyspaces/${encodeURIComponent(o.keyspace)}/warm`;
  let p = (await api.call("POST", path, { from: o.from, limit })).body as WarmProgress;
  const line = (w: WarmProgress) =>
    `${o.keyspace}: ${w.state}, ${w.warmed}${w.total === null ? "" : `/${w.total}`} keys warmed from ${w.from}` +
    ` (${w.found} found)${w.error ? `: ${w.error}` : ""}\n`;
  io.out(line(p));
  while (o.wait && p.state === "running") {
    await new Promise((r) => setTimeout(r, 500));
    p = (await api.call("GET", path)).body as WarmProgress;
    io.out(line(p));
  }
  return p.state === "failed" ? 1 : 0;
}

interface AuditRecord {
  key: string;
  version: number;
  op: string;
  if_match: number | null;
  if_none_match: boolean;
  client: string | null;
  via: string | null;
  at: string;
  acknowledged_at: string | null;
}

async function audit(api: Api, keyspace: string | undefined, o: OpsOptions, io: Io): Promise<number> {
  if (!keyspace) throw new UsageError("audit needs a keyspace: sidecache audit KS");
  const q = new URLSearchParams();
  for (const name of ["key", "since", "until", "limit", "cursor"] as const) {
    const value = o[name];
    if (value !== undefined) q.set(name, value);
  }
  const path = `/v1/keyspaces/${encodeURIComponent(keyspace)}/audit${q.size > 0 ? `?${q}` : ""}`;
  const body = (await api.call("GET", path)).body as { records: AuditRecord[]; next_cursor: string | null };
  if (o.json) {
    io.out(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  if (body.records.length === 0) {
    io.out(`no audit records in ${keyspace}${q.size > 0 ? " that match" : ""}\n`);
    return 0;
  }
  const rows = body.records.map((r) => [
    r.at,
    JSON.stringify(r.key),
    String(r.version),
    r.op,
    r.if_none_match ? "if-none-match *" : r.if_match !== null ? `if-match ${r.if_match}` : "-",
    r.client ?? "-",
    r.via ?? "-",
    r.acknowledged_at ?? "-",
  ]);
  io.out(table(["AT", "KEY", "VERSION", "OP", "CONDITION", "CLIENT", "VIA", "ACKNOWLEDGED"], rows));
  if (body.next_cursor) io.out(`more: add --cursor ${body.next_cursor}\n`);
  return 0;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return `${[head, ...rows].map(line).join("\n")}\n`;
}
