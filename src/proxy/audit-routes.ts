/**
 * GET /v1/keyspaces/{ks}/audit[?key=&since=&until=&limit=&cursor=]   the keyspace's audit log, newest first
 *
 * since and until are RFC 3339 times or durations back from now (15m, 24h, 7d); a page ends with
 * next_cursor when more records follow, to be given as cursor for the next one. Needs admin on the keyspace.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidRequestError, MethodNotAllowedError, NotFoundError } from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import type { AuditPosition, AuditRecord } from "../store/adapter.js";
import { parseDuration } from "../config/units.js";
import type { ProxyContext } from "./context.js";
import { checkKey } from "./keys.js";
import { sendJson } from "./respond.js";

const PARAMS = ["key", "since", "until", "limit", "cursor"];
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

export async function auditRoute(
  ctx: ProxyContext,
  ks: Keyspace,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<number> {
  ctx.auth.check(req, "admin", ks.config.name);
  if (method !== "GET") throw new MethodNotAllowedError("audit answers GET only.", ["GET"]);
  const name = ks.config.name;
  const audit = ks.config.audit;
  if (!audit) {
    throw new NotFoundError(
      `Keyspace ${JSON.stringify(name)} keeps no audit log; set audit: true in its configuration.`,
    );
  }
  if (!ctx.audit) throw new NotFoundError("This daemon's store can not read audit logs.");
  const q = auditQuery(new URL(req.url ?? "/", "http://x").searchParams);
  const records = await ctx.audit.read({ table: audit.table, keyspace: name, ...q, limit: q.limit + 1 });
  const page = records.slice(0, q.limit);
  const last = page[page.length - 1];
  const next = records.length > q.limit && last ? encodeCursor(last) : null;
  sendJson(res, 200, JSON.stringify({ keyspace: name, records: page.map(recordJson), next_cursor: next }));
  return 200;
}

interface Query {
  key?: string;
  sinceMicros?: number;
  untilMicros?: number;
  after?: AuditPosition;
  limit: number;
}

function auditQuery(params: URLSearchParams): Query {
  for (const name of new Set(params.keys())) {
    if (!PARAMS.includes(name)) {
      throw new InvalidRequestError(`Unknown parameter ${JSON.stringify(name)}; use ${PARAMS.join(", ")}.`);
    }
    if (params.getAll(name).length > 1) throw new InvalidRequestError(`${name} is given more than once.`);
  }
  const q: Query = { limit: DEFAULT_LIMIT };
  const key = params.get("key");
  if (key !== null) {
    checkKey(key);
    q.key = key;
  }
  const since = params.get("since");
  if (since !== null) q.sinceMicros = timeMicros("since", since);
  const until = params.get("until");
  if (until !== null) q.untilMicros = timeMicros("until", until);
  const limit = params.get("limit");
  if (limit !== null) {
    if (!/^\d{1,7}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_LIMIT) {
      throw new InvalidRequestError(`limit must be an integer from 1 to ${MAX_LIMIT}.`);
    }
    q.limit = Number(limit);
  }
  const cursor = params.get("cursor");
  if (cursor !== null) q.after = decodeCursor(cursor);
  return q;
}

/** An RFC 3339 time, or a duration back from now; microseconds since the epoch. */
function timeMicros(name: string, text: string): number {
  const ago = parseDuration(text);
  if (ago !== undefined) return (Date.now() - ago) * 1000;
  const m = RFC3339.exec(text);
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(ms)) {
    throw new InvalidRequestError(
      `${name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z, or a duration back from now such as 15m, 24h or 7d.`,
    );
  }
  return ms * 1000 + Number((m[2] ?? "").padEnd(6, "0").slice(0, 6));
}

function encodeCursor(r: AuditRecord): string {
  return Buffer.from(JSON.stringify([r.atMicros, r.version, r.key])).toString("base64url");
}

function decodeCursor(text: string): AuditPosition {
  const bad = () =>
    new InvalidRequestError("cursor is not one this route gave; use the next_cursor of a previous page.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    !Number.isSafeInteger(parsed[0]) ||
    !Number.isSafeInteger(parsed[1]) ||
    typeof parsed[2] !== "string"
  ) {
    throw bad();
  }
  return { atMicros: parsed[0] as number, version: parsed[1] as number, key: parsed[2] };
}

/** RFC 3339 in UTC with microseconds. */
function isoMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  return `${new Date(ms).toISOString().slice(0, 23)}${String(us - ms * 1000).padStart(3, "0")}Z`;
}

function recordJson(r: AuditRecord): Record<string, unknown> {
  return {
    key: r.key,
    version: r.version,
    op: r.op,
    if_match: r.ifMatch,
    if_none_match: r.ifNoneMatch,
    client: r.client,
    via: r.via,
    at: isoMicros(r.atMicros),
    acknowledged_at: r.acknowledgedAtMicros === null ? null : isoMicros(r.acknowledgedAtMicros),
  };
}
