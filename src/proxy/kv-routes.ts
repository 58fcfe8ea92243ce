/** /v1/kv/{ks}/...: reads and writes of values. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidRequestError, ValueTooLargeError } from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import type { RequestContext } from "../backend/request-context.js";
import type { WriteOrigin } from "../store/adapter.js";
import type { Conditions, ReadResult } from "../strategies/strategy.js";
import { checkMediaType, parseJson, readBody } from "./body.js";
import { endOfTurn } from "./end-of-turn.js";
import { checkKey } from "./keys.js";
import { errorBody, sendEmpty, sendJson, sendJsonWith } from "./respond.js";

/** Who writes a key over HTTP: the audit log's origin, and the request the answer names. */
export type HttpOrigin = WriteOrigin & { request: RequestContext };

export function getValue(
  ks: Keyspace,
  key: string,
  req: IncomingMessage,
  res: ServerResponse,
  request: RequestContext,
): number | Promise<number> {
  ks.hot?.touch(key);
  const skipNear = noCache(req);
  const now = skipNear ? undefined : ks.strategy.peek?.(key);
  if (now) {
    endOfTurn(() => answerRead(ks, res, now, request.id));
    return now.found ? 200 : 404;
  }
  return ks.strategy.get(key, { skipNear, request }).then((r) => answerRead(ks, res, r, request.id));
}

function answerRead(ks: Keyspace, res: ServerResponse, r: ReadResult, requestId: string): number {
  const status = r.found ? 200 : 404;
  const body = r.found
    ? r.value!
    : errorBody("not_found", `No value is stored under this key in ${JSON.stringify(ks.config.name)}.`);
  const headers = ["x-request-id", requestId, "x-cache", r.cache, "x-cache-tier", r.tier];
  if (r.version > 0) headers.push("etag", `"${r.version}"`);
  sendJsonWith(res, status, body, headers);
  return status;
}

export async function putValue(
  ks: Keyspace,
  key: string,
  req: IncomingMessage,
  res: ServerResponse,
  maxValue: number,
  origin: HttpOrigin,
): Promise<number> {
  checkMediaType(req);
  const conditions = parseConditions(req);
  const text = await readBody(req, maxValue);
  parseJson(text);
  const ack = await ks.strategy.put(key, text, conditions, origin);
  sendJsonWith(res, ack.status, `{"version":${ack.version}}`, [
    "x-request-id",
    origin.request.id,
    "etag",
    `"${ack.version}"`,
  ]);
  return ack.status;
}

export async function deleteValue(
  ks: Keyspace,
  key: string,
  req: IncomingMessage,
  res: ServerResponse,
  origin: HttpOrigin,
): Promise<number> {
  const ack = await ks.strategy.delete(key, parseConditions(req), origin);
  const id = { "x-request-id": origin.request.id };
  if (ack.status === 202) sendJson(res, 202, `{"version":${ack.version ?? 0}}`, id);
  else sendEmpty(res, ack.status, id);
  return ack.status;
}

export async function mget(
  ks: Keyspace,
  req: IncomingMessage,
  res: ServerResponse,
  limits: { maxBody: number; maxBatch: number },
  request: RequestContext,
): Promise<number> {
  checkMediaType(req);
  const body = parseJson(await readBody(req, limits.maxBody));
  const keys = field(body, "keys");
  if (!Array.isArray(keys))
    throw new InvalidRequestError('The body must be {"keys": [..]} with an array of keys.');
  if (keys.length > limits.maxBatch) {
    throw new InvalidRequestError(`At most ${limits.maxBatch} keys fit in one _mget; got ${keys.length}.`);
  }
  for (const k of keys) checkKey(k);
  if (ks.hot) for (const k of keys as string[]) ks.hot.touch(k);
  const results = await ks.strategy.getMany(keys as string[], { skipNear: noCache(req), request });
  const parts: string[] = [];
  let allHit = true;
  for (const [key, r] of results) {
    parts.push(`${JSON.stringify(key)}:${r.found ? r.value : "null"}`);
    if (r.cache !== "HIT") allHit = false;
  }
  sendJson(res, 200, `{"values":{${parts.join(",")}}}`, {
    "x-request-id": request.id,
    "x-cache": allHit ? "HIT" : "MISS",
  });
  return 200;
}

export async function mset(
  ks: Keyspace,
  req: IncomingMessage,
  res: ServerResponse,
  limits: { maxBody: number; maxBatch: number; maxValue: number },
  origin: HttpOrigin,
): Promise<number> {
  checkMediaType(req);
  const body = parseJson(await readBody(req, limits.maxBody));
  const items = field(body, "items");
  if (typeof items !== "object" || items === null || Array.isArray(items)) {
    throw new InvalidRequestError('The body must be {"items": {key: value, ..}}.');
  }
  const entries = Object.entries(items);
  if (entries.length === 0) throw new InvalidRequestError("_mset needs at least one item.");
  if (entries.length > limits.maxBatch) {
    throw new InvalidRequestError(
      `At most ${limits.maxBatch} items fit in one _mset; got ${entries.length}.`,
    );
  }
  const values = new Map<string, string>();
  for (const [key, value] of entries) {
    checkKey(key);
    const text = JSON.stringify(value);
    if (Buffer.byteLength(text) > limits.maxValue) throw new ValueTooLargeError(limits.maxValue);
    values.set(key, text);
  }
  const ack = await ks.strategy.putMany(values, origin);
  sendJson(res, ack.status, JSON.stringify({ versions: ack.versions }), {
    "x-request-id": origin.request.id,
  });
  return ack.status;
}

function field(body: unknown, name: string): unknown {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new InvalidRequestError(`The body must be a JSON object with a "${name}" field.`);
  }
  return Object.prototype.hasOwnProperty.call(body, name)
    ? (body as Record<string, unknown>)[name]
    : undefined;
}

/** If-Match: "<version>" and If-None-Match: * on writes. */
export function parseConditions(req: IncomingMessage): Conditions {
  const c: Conditions = {};
  const ifMatch = req.headers["if-match"];
  if (ifMatch !== undefined) {
    const m = /^\s*(?:W\/)?"(\d{1,16})"\s*$/.exec(ifMatch);
    if (!m) throw new InvalidRequestError('If-Match must be a version in quotes, as in If-Match: "42".');
    c.ifMatch = Number(m[1]);
  }
  const ifNone = req.headers["if-none-match"];
  if (ifNone !== undefined) {
    if (ifNone.trim() !== "*") throw new InvalidRequestError("If-None-Match on a write must be *.");
    c.ifNoneMatch = true;
  }
  return c;
}

/** Cache-Control: no-cache on a read skips the daemon's near cache (Redis still answers). */
function noCache(req: IncomingMessage): boolean {
  const cc = req.headers["cache-control"];
  return cc !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(cc);
}
