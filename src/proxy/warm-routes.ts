/**
 * POST /v1/keyspaces/{ks}/warm   start warming the keyspace's cache: {} or {"from": "query"|"hot", "limit": n}
 * GET  /v1/keyspaces/{ks}/warm   the progress of the last run
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidRequestError, MethodNotAllowedError, NotFoundError } from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import type { WarmRequest } from "../warm/warming.js";
import { checkMediaType, parseJson, readBody } from "./body.js";
import type { ProxyContext } from "./context.js";
import { sendJson } from "./respond.js";

export async function warmRoute(
  ctx: ProxyContext,
  ks: Keyspace,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<number> {
  ctx.auth.check(req, "admin", ks.config.name);
  if (!ctx.warm) throw new NotFoundError("Cache warming is not available in this daemon.");
  const name = ks.config.name;
  if (method === "GET") {
    const progress = ctx.warm.progress(name);
    if (!progress)
      throw new NotFoundError(`Keyspace ${JSON.stringify(name)} has not been warmed since start.`);
    sendJson(res, 200, JSON.stringify(progress));
    return 200;
  }
  if (method !== "POST") throw new MethodNotAllowedError("warm answers GET and POST.", ["GET", "POST"]);
  checkMediaType(req);
  const text = await readBody(req, 64 * 1024);
  const progress = ctx.warm.start(name, warmRequest(text.trim() === "" ? {} : parseJson(text)));
  sendJson(res, 202, JSON.stringify(progress));
  return 202;
}

function warmRequest(body: unknown): WarmRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new InvalidRequestError(
      'The body must be a JSON object such as {} or {"from": "hot", "limit": 1000}.',
    );
  }
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (k !== "from" && k !== "limit")
      throw new InvalidRequestError(`Unknown field ${JSON.stringify(k)}; use from or limit.`);
  }
  if (b.from !== undefined && b.from !== "query" && b.from !== "hot") {
    throw new InvalidRequestError('from must be "query" or "hot".');
  }
  if (
    b.limit !== undefined &&
    (!Number.isInteger(b.limit) || (b.limit as number) < 1 || (b.limit as number) > 10_000_000)
  ) {
    throw new InvalidRequestError("limit must be an integer from 1 to 10000000.");
  }
  return { from: b.from as WarmRequest["from"], limit: b.limit as number | undefined };
}
