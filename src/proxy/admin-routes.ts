/** /v1/keyspaces..., /metrics, /healthz, /readyz. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidRequestError, MethodNotAllowedError, NotFoundError } from "../errors.js";
import { checkMediaType, parseJson, readBody } from "./body.js";
import type { Op, ProxyContext } from "./context.js";
import { keyspaceOf } from "./router.js";
import { sendJson } from "./respond.js";
import type { Keyspace } from "../keyspaces.js";
import { hasDeadLetters } from "../strategies/strategy.js";
import { warmRoute } from "./warm-routes.js";
import { auditRoute } from "./audit-routes.js";

export async function opsRoute(
  ctx: ProxyContext,
  path: string,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<number> {
  if (path !== "/healthz" && path !== "/readyz" && path !== "/metrics") {
    throw new NotFoundError(`Nothing is served at ${JSON.stringify(path.slice(0, 200))}.`);
  }
  if (method !== "GET" && method !== "HEAD")
    throw new MethodNotAllowedError(`${path} answers GET only.`, ["GET"]);
  if (ctx.auth.protectsOps) ctx.auth.check(req, "read", undefined);
  if (path === "/healthz") {
    sendJson(res, 200, '{"status":"ok"}');
    return 200;
  }
  if (path === "/readyz") {
    const checks = await ctx.health.readiness();
    const down = Object.values(checks).some((s) => s === "down");
    const breakers = ctx.health.breakers?.();
    const body = { status: down ? "unavailable" : "ok", checks, ...(breakers ? { breakers } : {}) };
    sendJson(res, down ? 503 : 200, JSON.stringify(body));
    return down ? 503 : 200;
  }
  const m = await ctx.health.exposition();
  res.writeHead(200, { "content-type": m.contentType });
  res.end(m.body);
  return 200;
}

export async function adminRoute(
  ctx: ProxyContext,
  parts: string[],
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
  meta: { keyspace: string; op: Op },
): Promise<number> {
  // GET /v1/keyspaces
  if (parts.length === 3 || (parts.length === 4 && parts[3] === "")) {
    meta.op = "keyspaces";
    if (method !== "GET") throw new MethodNotAllowedError("/v1/keyspaces answers GET only.", ["GET"]);
    ctx.auth.check(req, "admin", undefined);
    const out: Record<string, unknown> = {};
    for (const ks of ctx.keyspaces.all()) {
      const queue = await ks.strategy.queueStatus?.().catch(() => undefined);
      out[ks.config.name] = {
        strategy: ks.config.strategy,
        ...(ks.config.strategy === "write-through" ? { consistency: ks.config.consistency } : {}),
        table: ks.config.table,
        queue_depth: queue?.depth ?? 0,
        ...(queue ? { oldest_pending_seconds: queue.oldestSeconds, dead_letters: queue.deadLetters } : {}),
        hit_ratio: ctx.health.hitRatio(ks.config.name),
        last_check: ks.lastCheck ?? null,
      };
    }
    sendJson(res, 200, JSON.stringify({ keyspaces: out }));
    return 200;
  }
  const ks = keyspaceOf(ctx, parts[3]!, meta);
  const action = parts[4];
  if (action === "dead-letters") return deadLetterRoute(ctx, ks, parts.slice(5), method, req, res, meta);
  if (action === "warm" && parts.length === 5) {
    meta.op = "warm";
    return warmRoute(ctx, ks, method, req, res);
  }
  if (action === "audit" && parts.length === 5) {
    meta.op = "audit";
    return auditRoute(ctx, ks, method, req, res);
  }
  if (parts.length !== 5 || (action !== "flush" && action !== "check")) {
    throw new NotFoundError(
      "Keyspace actions are /v1/keyspaces/{keyspace}/flush, /check, /warm, /audit and /dead-letters.",
    );
  }
  meta.op = action;
  if (method !== "POST") throw new MethodNotAllowedError(`${action} answers POST only.`, ["POST"]);
  ctx.auth.check(req, "admin", ks.config.name);
  if (action === "flush") {
    const flushed = await ks.strategy.flush();
    sendJson(res, 200, JSON.stringify({ flushed }));
    return 200;
  }
  checkMediaType(req);
  const text = await readBody(req, 64 * 1024);
  const body = text.trim() === "" ? {} : parseJson(text);
  const options = checkOptions(body);
  if (!ctx.checker) throw new NotFoundError("The consistency checker is not running in this daemon.");
  const report = await ctx.checker.run(ks.config.name, options);
  sendJson(res, 200, JSON.stringify(report));
  return 200;
}

function checkOptions(body: unknown): { sample?: number; full?: boolean } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new InvalidRequestError(
      'The body must be a JSON object such as {"sample": 100} or {"full": true}.',
    );
  }
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (k !== "sample" && k !== "full")
      throw new InvalidRequestError(`Unknown field ${JSON.stringify(k)}; use sample or full.`);
  }
  if (
    b.sample !== undefined &&
    (!Number.isInteger(b.sample) || (b.sample as number) < 1 || (b.sample as number) > 1_000_000)
  ) {
    throw new InvalidRequestError("sample must be an integer from 1 to 1000000.");
  }
  if (b.full !== undefined && typeof b.full !== "boolean")
    throw new InvalidRequestError("full must be true or false.");
  return { sample: b.sample as number | undefined, full: b.full as boolean | undefined };
}

/**
 * GET /v1/keyspaces/{ks}/dead-letters[?count=&after=]   list
 * POST /v1/keyspaces/{ks}/dead-letters/{id}/replay       queue again with a fresh version
 * DELETE /v1/keyspaces/{ks}/dead-letters/{id}            drop for good
 */
async function deadLetterRoute(
  ctx: ProxyContext,
  ks: Keyspace,
  rest: string[],
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
  meta: { keyspace: string; op: Op },
): Promise<number> {
  meta.op = "deadletters";
  const client = ctx.auth.check(req, "admin", ks.config.name) ?? null;
  const strategy = ks.strategy;
  if (!hasDeadLetters(strategy)) {
    throw new NotFoundError(
      `Keyspace ${JSON.stringify(ks.config.name)} is not write-behind: it has no dead letters.`,
    );
  }
  const id = rest[0];
  if (id !== undefined && !/^\d{1,20}-\d{1,20}$/.test(id)) {
    throw new InvalidRequestError("A dead letter id looks like 1712345678901-0.");
  }
  if (rest.length === 0) {
    if (method !== "GET") throw new MethodNotAllowedError("The dead-letter list answers GET only.", ["GET"]);
    const query = new URL(req.url ?? "/", "http://x").searchParams;
    const count = Number(query.get("count") ?? 100);
    if (!Number.isInteger(count) || count < 1 || count > 1000) {
      throw new InvalidRequestError("count must be an integer from 1 to 1000.");
    }
    const after = query.get("after") ?? undefined;
    if (after !== undefined && !/^\d{1,20}-\d{1,20}$/.test(after)) {
      throw new InvalidRequestError("after must be a dead letter id such as 1712345678901-0.");
    }
    const letters = await strategy.listDeadLetters(count, after);
    sendJson(res, 200, JSON.stringify({ dead_letters: letters }));
    return 200;
  }
  if (rest.length === 1 && method === "DELETE") {
    if (!(await strategy.dropDeadLetter(id!))) throw new NotFoundError(`No dead letter ${id}.`);
    res.writeHead(204).end();
    return 204;
  }
  if (rest.length === 2 && rest[1] === "replay") {
    if (method !== "POST") throw new MethodNotAllowedError("replay answers POST only.", ["POST"]);
    const version = await strategy.replayDeadLetter(id!, { client, via: "http" });
    if (version === null) throw new NotFoundError(`No dead letter ${id}.`);
    sendJson(res, 202, JSON.stringify({ version }));
    return 202;
  }
  if (rest.length === 1) throw new MethodNotAllowedError("A dead letter answers DELETE only.", ["DELETE"]);
  throw new NotFoundError("Use /dead-letters, /dead-letters/{id} or /dead-letters/{id}/replay.");
}
