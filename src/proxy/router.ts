/**
 * Maps each request to its route, checks access, answers errors in the protocol's error shape, reports metrics.
 * Each request has a context (id, deadline) handed down to its backend calls; past the deadline it is
 * answered 504 whatever is still running; one access log line per request.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestContext } from "../backend/request-context.js";
import type { Permission } from "../config/types.js";
import {
  InvalidKeyError,
  InvalidRequestError,
  MethodNotAllowedError,
  NotFoundError,
  SidecacheError,
  TimeoutError,
  UnknownKeyspaceError,
} from "../errors.js";
import type { Keyspace } from "../keyspaces.js";
import { adminRoute, opsRoute } from "./admin-routes.js";
import { uiRoute } from "./ui-routes.js";
import type { Op, ProxyContext } from "./context.js";
import { decodeKey } from "./keys.js";
import { deleteValue, getValue, mget, mset, putValue, type HttpOrigin } from "./kv-routes.js";
import { OPENAPI_PATH, serveOpenApi } from "./openapi.js";
import { Deadlines, type Watch } from "../backend/deadlines.js";
import { nextRequestId } from "./request-id.js";
import { sendError } from "./respond.js";

/** Bodies of _mget and _mset may hold many values. */
const BATCH_BODY_FACTOR = 16;

/** A client's X-Request-Id is kept when it is this tame; otherwise one is made up. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

interface Meta {
  /** the X-Request-Id answered */
  id: string;
  keyspace: string;
  op: Op;
  /** the name of the caller's token, when auth is on */
  client?: string;
}

export function createHandler(ctx: ProxyContext): (req: IncomingMessage, res: ServerResponse) => void {
  const deadlines = new Deadlines();
  return (req, res) => {
    const started = performance.now();
    const given = req.headers["x-request-id"];
    const id = typeof given === "string" && REQUEST_ID.test(given) ? given : nextRequestId();
    const meta: Meta = { id, keyspace: "", op: "ops" };
    const deadlineMs = ctx.server.requestDeadlineMs;
    const request: RequestContext = { id, deadline: Date.now() + deadlineMs };
    // set once the answer is awaited; finish() may run before (answered at once)
    const watched: { watch?: Watch } = {};
    const finish = (status: number) => {
      if (request.answered) return;
      request.answered = true;
      if (watched.watch) deadlines.end(watched.watch);
      const seconds = (performance.now() - started) / 1000;
      ctx.observer.request(meta.keyspace, meta.op, status, seconds);
      // A line per request costs the hit path a tenth of its throughput: by default only failures are
      // logged at info, and probes of /healthz, /readyz and /metrics never are.
      const failed = status >= 500 || status === 401 || status === 403;
      const level = failed || (ctx.accessLog && meta.op !== "ops") ? "info" : "debug";
      if (!ctx.log.isLevelEnabled(level)) return;
      ctx.log[level](
        {
          reqId: id,
          method: req.method,
          keyspace: meta.keyspace || undefined,
          op: meta.op,
          client: meta.client,
          status,
          ms: Math.round(seconds * 10_000) / 10,
        },
        "request",
      );
    };
    const fail = (err: unknown) => {
      if (!(err instanceof SidecacheError)) {
        ctx.log.error(
          { err, reqId: id, method: req.method, keyspace: meta.keyspace, op: meta.op },
          "request failed",
        );
      }
      if (res.headersSent) {
        res.destroy();
        finish(500);
        return;
      }
      res.setHeader("x-request-id", id);
      // A body left unread would be parsed as the next request on this connection.
      if (!req.complete) res.setHeader("connection", "close");
      finish(sendError(res, err));
    };
    let answer: number | Promise<number>;
    try {
      answer = route(ctx, req, res, meta, request);
    } catch (err) {
      // answered after this turn, as before: a body sent with the request is parsed by then (keep-alive holds)
      answer = Promise.reject(err);
    }
    // answered at once (a hit from the daemon's memory, most errors): no deadline to watch
    if (typeof answer === "number") return finish(answer);
    watched.watch = deadlines.watch(request.deadline, () => {
      if (request.answered) return;
      const write = meta.op === "put" || meta.op === "delete" || meta.op === "mset";
      fail(
        new TimeoutError(
          `The request took longer than its deadline of ${deadlineMs} ms` +
            (write ? "; the write may still complete." : "."),
        ),
      );
    });
    answer.then(finish, (err: unknown) => {
      // Answered already (the deadline passed): what the late work did is of no use to the client.
      if (request.answered) return;
      fail(err);
    });
  };
}

/** Answers at once where it can (the value is in the daemon's memory), with a promise otherwise. */
function route(
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  meta: Meta,
  request: RequestContext,
): number | Promise<number> {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  const parts = path.split("/");
  const method = req.method ?? "GET";
  // the answers of /v1/kv write all their headers at once (src/proxy/kv-routes.ts); the others get it here
  if (parts[2] !== "kv" || parts[1] !== "v1") res.setHeader("x-request-id", meta.id);

  if (parts[1] === "ui") return uiRoute(ctx, ctx.status, path, method, req, res);
  if (path === OPENAPI_PATH) return serveOpenApi(ctx, method, req, res);
  if (parts[1] !== "v1") return opsRoute(ctx, path, method, req, res);

  if (parts[2] === "kv") {
    // errors are answered by fail(), which sets the request id
    if (parts.length < 5) throw new NotFoundError("Use /v1/kv/{keyspace}/{key}.");
    const ks = keyspaceOf(ctx, parts[3]!, meta);
    if (parts.length > 5) throw new InvalidKeyError("Keys are one path segment: encode slashes as %2F.");
    const segment = parts[4]!;
    if (method === "POST" && (segment === "_mget" || segment === "_mset")) {
      meta.op = segment === "_mget" ? "mget" : "mset";
      authorize(ctx, req, segment === "_mget" ? "read" : "write", ks, meta);
      const limits = {
        maxBody: ctx.server.maxValue * BATCH_BODY_FACTOR,
        maxBatch: ctx.server.maxBatch,
        maxValue: ctx.server.maxValue,
      };
      return segment === "_mget"
        ? mget(ks, req, res, limits, request)
        : mset(ks, req, res, limits, originOf(meta, request));
    }
    switch (method) {
      case "GET":
        meta.op = "get";
        authorize(ctx, req, "read", ks, meta);
        return getValue(ks, decodeKey(segment), req, res, request);
      case "PUT":
        meta.op = "put";
        authorize(ctx, req, "write", ks, meta);
        return putValue(ks, decodeKey(segment), req, res, ctx.server.maxValue, originOf(meta, request));
      case "DELETE":
        meta.op = "delete";
        authorize(ctx, req, "write", ks, meta);
        return deleteValue(ks, decodeKey(segment), req, res, originOf(meta, request));
      default:
        throw new MethodNotAllowedError(`${method} is not allowed on a key; use GET, PUT or DELETE.`, [
          "GET",
          "PUT",
          "DELETE",
        ]);
    }
  }

  if (parts[2] === "keyspaces") return adminRoute(ctx, parts, method, req, res, meta);
  throw new NotFoundError(`Nothing is served at ${JSON.stringify(path.slice(0, 200))}.`);
}

export function keyspaceOf(ctx: ProxyContext, segment: string, meta: { keyspace: string }): Keyspace {
  let name: string;
  try {
    name = segment.includes("%") ? decodeURIComponent(segment) : segment;
  } catch {
    throw new InvalidRequestError("The keyspace name is not valid percent-encoded UTF-8.");
  }
  const ks = ctx.keyspaces.get(name);
  meta.keyspace = ks ? name : "(unknown)";
  if (!ks) throw new UnknownKeyspaceError(name.slice(0, 100));
  return ks;
}

/** Who writes, for the audit log: the caller's token name, once authorized; and the request's deadline. */
function originOf(meta: Meta, request: RequestContext): HttpOrigin {
  return { client: meta.client ?? null, via: "http", request };
}

function authorize(
  ctx: ProxyContext,
  req: IncomingMessage,
  need: Permission,
  ks: Keyspace,
  meta: Meta,
): void {
  meta.client = ctx.auth.check(req, need, ks.config.name);
}
