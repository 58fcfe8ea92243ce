/** /v1/keyspaces..., /metrics, /healthz, /readyz. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidRequestError, MethodNotAllowedError, NotFoundError } from "../errors.js";
import { checkMediaType, parseJson, readBody } from "./body.js";
import type { Op, ProxyContext } from "./context.js";
import { keyspaceOf } from "./router.js";
import { sendJson } from "./respond.js";

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
  if (parts.length !== 5 || (action !== "flush" && action !== "check")) {
    throw new NotFoundError("Keyspace actions are /v1/keyspaces/{keyspace}/flush and /check.");
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
