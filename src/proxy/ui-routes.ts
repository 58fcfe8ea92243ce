/**
 * GET /ui: the operators' status page (one HTML file, inline script and style, nothing external), and
 * GET /ui/status: what it shows, as JSON, polled by the page.
 *
 * The page is guarded like /metrics, /healthz and /readyz: open, or any valid token with `protect_ops`
 * (as a bearer token, or as the password of the browser's Basic prompt). The page itself holds no data.
 * /ui/status needs admin on some keyspace, as GET /v1/keyspaces does, and lists a keyspace's dead letters
 * only to a token with admin on it. The page sends the token as a bearer token, so nothing a browser sends
 * by itself (cookies, Basic credentials) can make it act; replay and drop use the admin API.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { MethodNotAllowedError, NotFoundError, SidecacheError, UnauthorizedError } from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import { hasDeadLetters } from "../strategies/strategy.js";
import type { StatusHistory } from "../ui/history.js";
import { STATUS_PAGE, STATUS_PAGE_CSP } from "../ui/page.js";
import type { ProxyContext } from "./context.js";
import { sendJson } from "./respond.js";

/** dead letters listed per keyspace on the page; the API pages through the rest */
const DEAD_LETTERS_SHOWN = 20;

export async function uiRoute(
  ctx: ProxyContext,
  status: StatusHistory | undefined,
  path: string,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<number> {
  if (path !== "/ui" && path !== "/ui/" && path !== "/ui/status") {
    throw new NotFoundError("The status page is /ui; its data is /ui/status.");
  }
  if (method !== "GET" && method !== "HEAD")
    throw new MethodNotAllowedError(`${path} answers GET only.`, ["GET"]);
  if (path === "/ui/status") {
    ctx.auth.check(req, "admin", undefined);
    sendJson(res, 200, JSON.stringify(await snapshot(ctx, status, req)), { "cache-control": "no-store" });
    return 200;
  }
  if (ctx.auth.protectsOps) {
    try {
      ctx.auth.checkPage(req, "read");
    } catch (err) {
      // A browser shows its own prompt for Basic; its password is the token.
      if (err instanceof UnauthorizedError) {
        throw new SidecacheError("unauthorized", 401, err.message, {
          "www-authenticate": 'Basic realm="sidecache", charset="UTF-8"',
        });
      }
      throw err;
    }
  }
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(STATUS_PAGE),
    "content-security-policy": STATUS_PAGE_CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  res.end(method === "HEAD" ? undefined : STATUS_PAGE);
  return 200;
}

async function snapshot(
  ctx: ProxyContext,
  status: StatusHistory | undefined,
  req: IncomingMessage,
): Promise<Record<string, unknown>> {
  const [checks, keyspaces] = await Promise.all([
    ctx.health.readiness(),
    Promise.all(ctx.keyspaces.all().map((ks) => keyspace(ctx, status, ks, req))),
  ]);
  const down = Object.values(checks).some((s) => s === "down");
  return {
    generated_at: new Date().toISOString(),
    interval_ms: status?.intervalMs ?? null,
    ready: { status: down ? "unavailable" : "ok", checks, breakers: ctx.health.breakers?.() ?? {} },
    keyspaces,
  };
}

async function keyspace(
  ctx: ProxyContext,
  status: StatusHistory | undefined,
  ks: Keyspace,
  req: IncomingMessage,
): Promise<Record<string, unknown>> {
  const name = ks.config.name;
  const queue = await ks.strategy.queueStatus?.().catch(() => undefined);
  let deadLetters: unknown[] | undefined;
  if (hasDeadLetters(ks.strategy) && mayAdmin(ctx, req, name)) {
    deadLetters = await ks.strategy.listDeadLetters(DEAD_LETTERS_SHOWN).catch(() => undefined);
  }
  return {
    name,
    strategy: ks.config.strategy,
    ...(ks.config.strategy === "write-through" ? { consistency: ks.config.consistency } : {}),
    table: ks.config.table,
    hit_ratio: ctx.health.hitRatio(name),
    points: status?.points(name) ?? [],
    queue: queue
      ? { depth: queue.depth, oldest_seconds: queue.oldestSeconds, dead_letters: queue.deadLetters }
      : null,
    ...(deadLetters ? { dead_letters: deadLetters } : {}),
    checks: status?.checks(name) ?? [],
    warm: ctx.warm?.progress(name) ?? null,
    checker: ks.config.checker.enabled ? ks.config.checker.schedule : null,
  };
}

function mayAdmin(ctx: ProxyContext, req: IncomingMessage, keyspace: string): boolean {
  try {
    ctx.auth.check(req, "admin", keyspace);
    return true;
  } catch {
    return false;
  }
}
